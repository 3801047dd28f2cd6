"""The store: the only place that knows SQL.

SQLite (through sqlite-utils) is the embedded default; PostgreSQL (psycopg 3) is the
engine for several nodes sharing one database (``KB_DATABASE_URL``). Everything outside
``kb/`` talks to :class:`Store` verbs, which read and write alike on both engines.
"""

from __future__ import annotations

from pathlib import Path

from kb.redaction import Redactor
from kb.store.access import AccessMixin, Principal
from kb.store.base import StoreBase, utc_now
from kb.store.documents import DocumentsMixin, UpsertCounts
from kb.store.events import EventsMixin
from kb.store.flags import FlagsMixin
from kb.store.indexing import ChunkText, DocRef, IndexingMixin, LogEntry
from kb.store.metrics import MetricsMixin
from kb.store.pg import describe_url, is_database_url
from kb.store.pg_base import PgStoreBase
from kb.store.privacy import PrivacyMixin
from kb.store.storms import StormsMixin
from kb.store.suggestions import FeedbackRecord, SuggestionsMixin


class Store(
    DocumentsMixin,
    IndexingMixin,
    SuggestionsMixin,
    AccessMixin,
    MetricsMixin,
    PrivacyMixin,
    StormsMixin,
    EventsMixin,
    FlagsMixin,
    StoreBase,
):
    """One connection to the service's SQLite database. Open one per thread and per process."""


class PgStore(
    PgStoreBase,
    DocumentsMixin,
    IndexingMixin,
    SuggestionsMixin,
    AccessMixin,
    MetricsMixin,
    PrivacyMixin,
    StormsMixin,
    EventsMixin,
    FlagsMixin,
):
    """One connection to a shared PostgreSQL database (the engine's own verbs first)."""


LEXICAL_FILE = "lexical.sqlite3"


def open_store(
    home: str | Path,
    *,
    database_url: str = "",
    create: bool = True,
    redactor: Redactor | None = None,
) -> Store | PgStore:
    """Open the store: the SQLite database in a data home, or, with ``database_url``, the
    PostgreSQL database it names (the home then keeps the node's local files only).

    Raises FileNotFoundError when the home does not exist and create is False;
    StoreUnavailableError when the database cannot be reached.
    """
    home = Path(home)
    if not home.exists():
        if not create:
            raise FileNotFoundError(home)
        home.mkdir(parents=True, exist_ok=True)
    if database_url:
        return PgStore(database_url, lexical_path=home / LEXICAL_FILE, redactor=redactor)
    return Store(home / "kb.sqlite3", redactor=redactor)


__all__ = [
    "ChunkText",
    "DocRef",
    "FeedbackRecord",
    "LogEntry",
    "PgStore",
    "Principal",
    "Store",
    "UpsertCounts",
    "describe_url",
    "is_database_url",
    "open_store",
    "utc_now",
]
