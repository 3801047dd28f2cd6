"""`kb store`: the database itself (moving an embedded home up to a shared PostgreSQL)."""

from __future__ import annotations

import sys
import time

import click

from kb.errors import KBError
from scripts.common import AppContext, home_option, pass_app, reports_errors


@click.group()
def store() -> None:
    """The database behind the service."""


@store.command(name="copy")
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="An empty PostgreSQL database: postgresql://USER@HOST:PORT/NAME.",
)
@home_option
@pass_app
@reports_errors
def store_copy(app: AppContext, target_url: str) -> None:
    """Copy this home's SQLite database into an empty PostgreSQL database.

    Every row is copied, ids included, in one transaction: an interrupted copy leaves the
    target empty. The home is only read. Afterwards start each node with
    KB_DATABASE_URL (or --database-url) set to the same URL; `kb serve` builds each node's
    lexical index and index version from the database (nothing is embedded again).
    """
    from kb.app.store_copy import check_target_url, copy_home_to

    check_target_url(target_url)
    if app.config.database_url:
        raise KBError(
            "kb store copy reads an SQLite home: run it without KB_DATABASE_URL / --database-url"
        )
    app.require_home()
    began = time.monotonic()
    bars: dict[str, object] = {}

    def progress(table: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            bar = bars.get(table)
            if bar is None:
                for old in bars.values():
                    old.__exit__(None, None, None)
                bars.clear()
                bar = bars[table] = click.progressbar(
                    length=max(total, 1), label=f"{table:<18}", file=sys.stderr
                )
                bar.__enter__()
            bar.update(done - bar.pos)
        elif done == total:
            click.echo(f"  {table}: {total} rows", err=True)

    try:
        copied, where = copy_home_to(app.service(), target_url, progress)
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
    rows = sum(copied.values())
    click.echo(
        f"Copied {rows} rows in {len(copied)} tables to {where} in {time.monotonic() - began:.1f} s"
    )
