"""Moving a home up: its SQLite database copied into an empty PostgreSQL database
(kb.store.copy does the copying; this is the use case the CLI calls)."""

from __future__ import annotations

from collections.abc import Callable

from kb.errors import KBError
from kb.store import PgStore, Store, describe_url, is_database_url, open_store
from kb.store.copy import copy_store


def check_target_url(target_url: str) -> None:
    """Raises KBError unless ``target_url`` names a PostgreSQL database."""
    if not is_database_url(target_url):
        raise KBError("--to must be a postgresql:// URL")


def copy_home_to(
    service, target_url: str, progress: Callable[[str, int, int], None] | None = None
) -> tuple[dict[str, int], str]:
    """Copy ``service``'s SQLite database to the empty database at ``target_url``; returns
    (rows per table, the target described without its password). Raises KBError on a URL
    that is not PostgreSQL's, on a home that is not SQLite, and (ConflictError) on a target
    that is not empty."""
    check_target_url(target_url)
    if service.config.database_url:
        raise KBError(
            "kb store copy reads an SQLite home: run it without KB_DATABASE_URL / --database-url"
        )
    source = service.store()
    assert isinstance(source, Store)
    target = open_store(service.config.home_path, database_url=target_url)
    assert isinstance(target, PgStore)
    try:
        return copy_store(source, target, progress), describe_url(target_url)
    finally:
        target.close()
