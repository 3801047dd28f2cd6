"""The PostgreSQL engine: one psycopg 3 connection that speaks the store's SQL.

The store's verbs are written once, in SQL both engines understand (``?`` placeholders,
``INSERT ... ON CONFLICT``, ``RETURNING``), and in the small part of sqlite-utils' table
API they use. :class:`PgDatabase` gives PostgreSQL that same face: it turns ``?`` into
psycopg's ``%s``, ``[name]`` into ``"name"``, and offers ``db[table].rows_where`` and
friends. Full-text search does not run here: each node keeps its own lexical index
(kb.store.lexical_replica), so BM25 ranks exactly as on SQLite.

Connections break when the server restarts or goes away. A statement that finds its
connection broken before a transaction began is tried once more on a fresh connection;
otherwise the caller gets :class:`kb.errors.StoreUnavailableError` (HTTP 503), quickly:
connecting gives up after ``CONNECT_TIMEOUT`` seconds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from kb.errors import ConfigError, StoreUnavailableError, storage_failure

CONNECT_TIMEOUT = 3
# Every write transaction takes this advisory lock first, so writes are serialised as on
# SQLite (BEGIN IMMEDIATE): read-then-write verbs stay correct, and change-log entries
# commit in the order of their numbers, which is what lets replicas follow the log by
# "everything after the last number I saw".
WRITE_LOCK = 0x6B62_0001
MIGRATE_LOCK = 0x6B62_0002
INDEXER_LOCK = 0x6B62_0003


def is_database_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def describe_url(url: str) -> str:
    """``host:port/database`` of a URL, never its password (for messages)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(an unreadable database URL)"
    name = unquote(parts.path.lstrip("/")) or "(default database)"
    return f"{host}:{port}/{name}"


def _password(url: str) -> str:
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def scrub(message: str, url: str) -> str:
    """The first line of a driver message, with the URL's password taken out."""
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else "unknown error"
    secret = _password(url)
    if secret:
        line = line.replace(secret, "***")
    return line


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """SQLite-flavoured SQL to psycopg's: ``?`` to ``%s`` and ``[name]`` to ``"name"``
    outside string literals; every ``%`` doubled (psycopg reads ``%`` as a placeholder)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'":
            end = i + 1
            while end < n:
                if sql[end] == "'":
                    if end + 1 < n and sql[end + 1] == "'":
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
            continue
        if ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        elif ch == "[":
            close = sql.find("]", i)
            name = sql[i + 1 : close] if close > 0 else ""
            if name and re.fullmatch(r"\w+", name):
                out.append(f'"{name}"')
                i = close + 1
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _param(value: Any) -> Any:
    # SQLite stores True as 1; PostgreSQL's integer columns refuse a boolean.
    return int(value) if isinstance(value, bool) else value


def _params(params: Sequence[Any] | None) -> list[Any]:
    return [_param(v) for v in (params or [])]


def _number_loader():
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        """``numeric`` (what sum() of integers gives) as int when whole, else float:
        the values SQLite's driver would have returned."""

        def load(self, data):
            text = bytes(data).decode()
            if text.lstrip("-").isdigit():
                return int(text)
            return float(text)

    return NumberLoader


class PgTable:
    """The part of sqlite-utils' Table that the store uses."""

    def __init__(self, db: PgDatabase, name: str):
        self.db = db
        self.name = name

    def exists(self) -> bool:
        row = self.db.execute("SELECT to_regclass(?)", [self.name]).fetchone()
        return row[0] is not None

    @property
    def count(self) -> int:
        return self.db.execute(f'SELECT count(*) FROM "{self.name}"').fetchone()[0]

    @property
    def rows(self) -> Iterator[dict]:
        return self.rows_where()

    def rows_where(
        self,
        where: str | None = None,
        where_args: Sequence[Any] | None = None,
        *,
        order_by: str | None = None,
        select: str = "*",
        limit: int | None = None,
    ) -> Iterator[dict]:
        sql = f'SELECT {select} FROM "{self.name}"'
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return iter(self.db.query(sql, where_args or []))

    def insert(self, record: dict[str, Any]) -> None:
        columns = list(record)
        marks = ", ".join("?" * len(columns))
        names = ", ".join(f'"{c}"' for c in columns)
        self.db.execute(
            f'INSERT INTO "{self.name}" ({names}) VALUES ({marks})', list(record.values())
        )

    def upsert(self, record: dict[str, Any], pk: str | Sequence[str]) -> None:
        self.upsert_all([record], pk=pk)

    def upsert_all(self, records: Iterable[dict[str, Any]], pk: str | Sequence[str]) -> None:
        keys = [pk] if isinstance(pk, str) else list(pk)
        by_columns: dict[tuple[str, ...], list[list[Any]]] = {}
        for record in records:
            by_columns.setdefault(tuple(record), []).append(list(record.values()))
        for columns, rows in by_columns.items():
            names = ", ".join(f'"{c}"' for c in columns)
            updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in keys)
            conflict = ", ".join(f'"{k}"' for k in keys)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            sql = (
                f'INSERT INTO "{self.name}" ({names}) VALUES ({", ".join("?" * len(columns))}) '
                f"ON CONFLICT ({conflict}) {action}"
            )
            self.db.executemany(sql, rows)

    def update(self, pk_value: Any, updates: dict[str, Any]) -> None:
        pk = self.db.primary_key(self.name)
        sets = ", ".join(f'"{c}" = ?' for c in updates)
        self.db.execute(
            f'UPDATE "{self.name}" SET {sets} WHERE "{pk}" = ?', [*updates.values(), pk_value]
        )


class PgDatabase:
    """One PostgreSQL connection with the store's SQL dialect. Not shared between threads."""

    def __init__(self, url: str):
        self.url = url
        self.where = describe_url(url)
        self._conn = None
        self._pks: dict[str, str] = {}
        self.in_transaction = False
        self._connect()

    # --- the connection ------------------------------------------------------------------

    def _connect(self):
        import psycopg

        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="kb"
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot reach the database at {self.where}: {scrub(str(exc), self.url)}"
            ) from None
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"bad database URL for {self.where}: {scrub(str(exc), self.url)}"
            ) from None
        conn.adapters.register_loader("numeric", _number_loader())
        self._conn = conn
        return conn

    @property
    def conn(self):
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self.in_transaction:
                raise StoreUnavailableError(f"lost the connection to the database at {self.where}")
            self._close_quietly()
            self._connect()
        return self._conn

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass
        self._conn = None

    def _run(self, action):
        """Run ``action(connection)``; a connection found broken outside a transaction is
        replaced and the action tried once more."""
        import psycopg

        for attempt in (1, 2):
            conn = self.conn
            try:
                return action(conn)
            except psycopg.OperationalError as exc:
                broken = conn.broken or conn.closed
                if broken and not self.in_transaction and attempt == 1:
                    self._close_quietly()
                    continue
                if broken:
                    self._close_quietly()
                failure = storage_failure(exc, f"the database at {self.where}")
                if failure is not None:  # its disk is full
                    raise failure from None
                raise StoreUnavailableError(
                    f"the database at {self.where} is unavailable: {scrub(str(exc), self.url)}"
                ) from None
        raise AssertionError("unreachable")

    # --- statements ------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None):
        text, args = translate(sql), _params(params)

        def action(conn):
            cursor = conn.cursor()
            cursor.execute(text, args)
            return cursor

        return self._run(action)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text = translate(sql)
        batch = [_params(r) for r in rows]
        if not batch:
            return

        def action(conn):
            with conn.cursor() as cursor:
                cursor.executemany(text, batch)

        self._run(action)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict]:
        from psycopg.rows import dict_row

        text, args = translate(sql), _params(params)

        def action(conn):
            with conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(text, args)
                return cursor.fetchall()

        return self._run(action)

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def primary_key(self, table: str) -> str:
        if table not in self._pks:
            row = self.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary",
                [table],
            ).fetchone()
            self._pks[table] = row[0]
        return self._pks[table]

    # --- transactions ----------------------------------------------------------------------

    def begin(self, *, write: bool) -> None:
        def action(conn):
            conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ")
            if write:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])

        self._run(action)
        self.in_transaction = True

    def finish(self, *, commit: bool) -> None:
        import psycopg

        try:
            if self._conn is not None and not self._conn.broken:
                self._conn.execute("COMMIT" if commit else "ROLLBACK")
            elif commit:
                raise StoreUnavailableError(f"lost the connection to the database at {self.where}")
        except psycopg.OperationalError as exc:
            self._close_quietly()
            if commit:
                raise StoreUnavailableError(
                    f"the database at {self.where} is unavailable: {scrub(str(exc), self.url)}"
                ) from None
        finally:
            self.in_transaction = False

    def close(self) -> None:
        self._close_quietly()
