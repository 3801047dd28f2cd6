"""The store's connection: verbs both engines share, and the SQLite engine (WAL, durable
commits, short immediate write transactions). The PostgreSQL engine is kb.store.pg_base."""

from __future__ import annotations

import contextlib
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from kb.errors import SchemaTooNewError, storage_failure
from kb.redaction import Redactor
from kb.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def refuse_newer_schema(applied: set[str], where: str) -> None:
    """Raise SchemaTooNewError when the database holds migrations this code does not know."""
    unknown = sorted(applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        raise SchemaTooNewError(
            f"the database at {where} has schema version {len(applied)} (up to {unknown[-1]}), newer than "
            f"this version of kb knows ({len(MIGRATIONS)}): upgrade kb on this machine before starting it"
        )


class CommonBase:
    """Verbs that read and write the same way on both engines."""

    engine = ""
    where = ""

    def schema_version(self) -> int:
        return self.db["_migrations"].count

    def _executemany(self, sql: str, rows) -> None:
        raise NotImplementedError

    # --- shared settings ---------------------------------------------------------------

    def setting(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE name = ?", [name]).fetchone()
        return row[0] if row else None

    def setting_or_create(self, name: str, make) -> str:
        """The stored value of ``name``; the first caller stores ``make()``. Two callers at
        once agree: one insert wins, both read it."""
        value = self.setting(name)
        if value is not None:
            return value
        with self.write():
            self.db.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                [name, make()],
            )
            return self.setting(name)

    def database_id(self) -> str:
        """A random name of this database, made once: a node's local files built from
        another database are recognised and rebuilt. Read once per connection."""
        known = getattr(self, "_database_id", None)
        if known is None:
            known = self._database_id = self.setting_or_create(
                "database_id", lambda: secrets.token_hex(8)
            )
        return known

    # --- index versions, as published by any node ----------------------------------------

    def record_index_version(
        self, version: str, model_id: str, model_path: str, log_seq: int, published_at: str
    ) -> None:
        with self.write():
            self.db.execute(
                "INSERT INTO index_versions (version, model_id, model_path, log_seq, published_at, node) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
                [version, model_id, model_path, log_seq, published_at, socket.gethostname()],
            )

    def latest_index_version(self) -> dict | None:
        rows = self.db.query(
            "SELECT version, model_id, model_path, log_seq, published_at, node FROM index_versions "
            "ORDER BY published_at DESC, version DESC LIMIT 1"
        )
        return dict(rows[0]) if rows else None

    def finished_erasures(self) -> int:
        """How many erasures have finished (a node's local copies purge when it grows)."""
        return self.db.execute("SELECT count(*) FROM erasures WHERE state = 'done'").fetchone()[0]

    @contextlib.contextmanager
    def indexer_lock(self, *, wait: bool = False) -> Iterator[None]:
        """One indexer at a time across every process using this database. On SQLite the
        data home's lock file (indexer.index_files.indexing_lock) already is that."""
        yield


class StoreBase(CommonBase):
    """Owns one SQLite connection. Not shared between threads or across a fork.

    Every write runs in :meth:`write`: ``BEGIN IMMEDIATE`` takes the write lock up front,
    so concurrent writers queue on the busy timeout instead of failing with
    "database is locked" when a read transaction tries to upgrade.
    """

    engine = "sqlite"

    def __init__(self, path: str | Path, *, redactor: Redactor | None = None):
        self.path = Path(path)
        self.where = str(self.path)
        # Every incident text and recorded query passes this before it is written.
        self.redactor = redactor if redactor is not None else Redactor()
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        try:
            self._configure()
            self._migrate()
        except BaseException:
            self.db.close()
            raise

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
        refuse_newer_schema(applied, self.where)
        return [m for m in MIGRATIONS if m.__name__ not in applied]

    def _executemany(self, sql: str, rows) -> None:
        self.db.conn.executemany(sql, rows)

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
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A full disk or a read-only file: one line that says so, and no change made.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = storage_failure(exc, self.where)
            if failure is None:
                raise
            raise failure from exc

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
