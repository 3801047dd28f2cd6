"""The SQLite connection: WAL, durable commits, short immediate write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from kb.redaction import Redactor
from kb.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StoreBase:
    """Owns one SQLite connection. Not shared between threads or across a fork.

    Every write runs in :meth:`write`: ``BEGIN IMMEDIATE`` takes the write lock up front,
    so concurrent writers queue on the busy timeout instead of failing with
    "database is locked" when a read transaction tries to upgrade.
    """

    def __init__(self, path: str | Path, *, redactor: Redactor | None = None):
        self.path = Path(path)
        # Every incident text and recorded query passes this before it is written.
        self.redactor = redactor if redactor is not None else Redactor()
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self._configure()
        self._migrate()

    def _configure(self) -> None:
        conn = self.db.conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit that returned is on disk even if the machine loses power.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        # Deleted content is overwritten with zeros, in the database and its WAL: erased
        # text does not linger in free pages.
        conn.execute("PRAGMA secure_delete = ON")

    def _migrate(self) -> None:
        if self._pending_migrations():
            with self.write():
                if not self.db["_migrations"].exists():
                    self.db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
                for migration in self._pending_migrations():
                    migration(self.db)
                    self.db["_migrations"].insert(
                        {"name": migration.__name__, "applied_at": utc_now()}
                    )

    def _pending_migrations(self):
        if not self.db["_migrations"].exists():
            return list(MIGRATIONS)
        applied = {row["name"] for row in self.db["_migrations"].rows}
        return [m for m in MIGRATIONS if m.__name__ not in applied]

    def schema_version(self) -> int:
        return self.db["_migrations"].count

    def integrity_problems(self) -> list[str]:
        """What SQLite's quick_check finds wrong with the database file (empty when sound)."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        return [row[0] for row in rows if row[0] != "ok"]

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction. Nested calls join the outer transaction."""
        conn = self.db.conn
        if conn.in_transaction:
            yield self.db
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite_utils.Database]:
        """A consistent snapshot for several reads."""
        conn = self.db.conn
        if conn.in_transaction:
            yield self.db
            return
        conn.execute("BEGIN")
        try:
            yield self.db
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
