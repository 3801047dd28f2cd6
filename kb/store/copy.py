"""Moving up: copy an SQLite data home's database into an empty PostgreSQL database.

Every table the migrations made is copied row for row, ids included (a chunk's id is its
vector's id in every index), in one transaction on the target: a copy that fails or is
interrupted leaves the target as empty as it was. Full-text tables are not copied: each
node builds its own lexical index from the chunks. The settings come along (the session
key, so signed-in people stay signed in), except the database's own random name.
"""

from __future__ import annotations

from collections.abc import Callable

from kb.errors import ConflictError
from kb.store.base import StoreBase
from kb.store.pg_base import PgStoreBase

# Parents before children (feedback names suggestions); any other table follows.
FIRST = (
    "articles",
    "article_versions",
    "incidents",
    "chunks",
    "vectors",
    "indexed_docs",
    "index_log",
    "suggestions",
    "feedback",
    "feedback_events",
)
SKIP = {"_migrations", "sqlite_sequence"}
SKIP_SETTINGS = {"database_id"}
BATCH = 2000

Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in all)


def source_tables(source: StoreBase) -> list[str]:
    names = [
        row[0]
        for row in source.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
    ]
    names = [n for n in names if n not in SKIP and not n.startswith("chunks_fts")]
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


def identity_columns(target: PgStoreBase) -> dict[str, str]:
    """The columns of the target's schema whose values come from a sequence (serial or
    identity), by table: each sequence must continue after the copied ids. Read from the
    schema itself, so a table added by a migration is never forgotten."""
    rows = target.db.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
    ).fetchall()
    return {table: column for table, column in rows}


def _columns_of_target(target: PgStoreBase, table: str) -> list[str]:
    rows = target.db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def check_empty(target: PgStoreBase, tables: list[str]) -> None:
    full = [
        t
        for t in tables
        if t != "settings" and target.db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()
    ]
    stored = target.db.execute("SELECT name FROM settings WHERE name != 'database_id'").fetchall()
    if full or stored:
        raise ConflictError(
            f"the database at {target.where} is not empty (it holds {', '.join(full or ['settings'])}): "
            "copy into a new, empty database"
        )


def copy_store(
    source: StoreBase, target: PgStoreBase, progress: Progress | None = None
) -> dict[str, int]:
    """Copy every row of ``source`` into ``target`` (empty, migrated to the same version).
    Returns the rows copied per table. Raises ConflictError for a target that holds data."""
    if source.schema_version() != target.schema_version():
        raise ConflictError(
            f"schema versions differ: {source.schema_version()} here, "
            f"{target.schema_version()} at {target.where}"
        )
    tables = source_tables(source)
    check_empty(target, tables)
    copied: dict[str, int] = {}
    with source.read(), target.write():
        for table in tables:
            wanted = set(_columns_of_target(target, table))
            columns = [
                row[1]
                for row in source.db.execute(f"PRAGMA table_info([{table}])").fetchall()
                if row[1] in wanted
            ]
            where = ""
            if table == "settings":
                where = " WHERE name NOT IN ('" + "', '".join(sorted(SKIP_SETTINGS)) + "')"
            total = source.db.execute(f"SELECT count(*) FROM [{table}]{where}").fetchone()[0]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" * len(columns))
            insert = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
            select = f"SELECT {', '.join(f'[{c}]' for c in columns)} FROM [{table}]{where}"
            cursor = source.db.execute(select)
            done = 0
            if progress:
                progress(table, 0, total)
            while rows := cursor.fetchmany(BATCH):
                target._executemany(insert, rows)
                done += len(rows)
                if progress:
                    progress(table, done, total)
            copied[table] = done
        for table, column in identity_columns(target).items():
            if table in copied:
                target.db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f'coalesce(max("{column}"), 0) + 1, false) FROM "{table}"'
                )
    return copied
