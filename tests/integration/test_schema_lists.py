"""Lists that follow the schema: a table added by a migration must get a decision in each."""

from __future__ import annotations

from kb.store.pg_base import ERASURE_TABLES, KEEPS_NO_ERASED_TEXT


def _tables(store) -> set[str]:
    rows = store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows if not r[0].startswith(("chunks_fts", "sqlite_"))}


def test_every_table_has_an_erasure_decision(store):
    tables = _tables(store)
    undecided = tables - set(ERASURE_TABLES) - set(KEEPS_NO_ERASED_TEXT)
    assert not undecided, (
        f"add to ERASURE_TABLES or KEEPS_NO_ERASED_TEXT in kb/store/pg_base.py: {sorted(undecided)}"
    )
    assert not set(ERASURE_TABLES) & set(KEEPS_NO_ERASED_TEXT)
    assert not (set(ERASURE_TABLES) | set(KEEPS_NO_ERASED_TEXT)) - tables, (
        "a listed table no longer exists"
    )
