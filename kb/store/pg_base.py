"""The PostgreSQL engine's connection: migrations, transactions, locks, and the verbs whose
SQL differs from SQLite's (full-text search, compaction, integrity).

Write transactions are serialised by one advisory lock (kb.store.pg), as SQLite's
``BEGIN IMMEDIATE`` serialises them; reads run in REPEATABLE READ snapshots. Full-text
queries go to the node's lexical index (kb.store.lexical_replica), brought up to the
database's latest change first, so an incident posted on any node is found by its words
on every node at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from kb.errors import storage_failure
from kb.redaction import Redactor
from kb.store.base import CommonBase, refuse_newer_schema, utc_now
from kb.store.documents import _batches
from kb.store.lexical_replica import LexicalReplica
from kb.store.migrations import MIGRATIONS
from kb.store.pg import INDEXER_LOCK, MIGRATE_LOCK, PgDatabase
from kb.store.pg_migrations import PG_MIGRATIONS

_PAGE = 20_000

# Tables whose text an erasure deletes: compact() rewrites them (VACUUM FULL) so that
# no dead row version keeps the erased text in the server's files.
ERASURE_TABLES = (
    "incidents",
    "chunks",
    "vectors",
    "suggestions",
    "articles",
    "article_versions",
    "indexed_docs",
    "index_log",
    "feedback",
    "feedback_events",
    "outgoing_events",
    "suggestion_previews",
    "article_flags",
)
# Every other table, with why an erasure leaves its files as they are (a test checks that
# each table of the schema is in one list or the other, so a new table gets a decision).
KEEPS_NO_ERASED_TEXT = {
    "_migrations": "schema versions",
    "api_tokens": "token names and hashes",
    "audit_log": "append-only; entries name records by id, never by their text",
    "erasures": "ids of erased records",
    "index_versions": "index version numbers",
    "ranking_profiles": "fitted numbers, refitted without the erased incident at once",
    "settings": "service settings",
    "sign_in_failures": "names and addresses of failed sign-ins, kept five minutes",
    "storms": "storm ids and incident ids",
    "users": "accounts",
}


class PgStoreBase(CommonBase):
    engine = "postgresql"

    def __init__(self, url: str, *, lexical_path: str | Path, redactor: Redactor | None = None):
        self.url = url
        self.redactor = redactor if redactor is not None else Redactor()
        self.db = PgDatabase(url)
        self.where = self.db.where
        self.lexical_path = Path(lexical_path)
        self._lexical: LexicalReplica | None = None
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    # --- schema ------------------------------------------------------------------------------

    def _applied(self) -> set[str] | None:
        if not self.db["_migrations"].exists():
            return None
        return {row["name"] for row in self.db["_migrations"].rows}

    def _migrate(self) -> None:
        applied = self._applied()
        if applied is not None:
            refuse_newer_schema(applied, self.where)
            if not [m for m in MIGRATIONS if m.__name__ not in applied]:
                return
        with self.write():
            # One node migrates; the others wait here, then find nothing left to do.
            self.db.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATE_LOCK])
            self.db.execute(
                'CREATE TABLE IF NOT EXISTS _migrations (name text COLLATE "C" PRIMARY KEY, '
                'applied_at text COLLATE "C")'
            )
            applied = self._applied() or set()
            refuse_newer_schema(applied, self.where)
            for migration in MIGRATIONS:
                name = migration.__name__
                if name in applied:
                    continue
                for statement in PG_MIGRATIONS[name]:
                    self.db.execute(statement)
                self.db["_migrations"].insert({"name": name, "applied_at": utc_now()})

    def integrity_problems(self) -> list[str]:
        """What looks wrong with the database: a reachable server needs no file check;
        report the schema against the code's migrations."""
        applied = self._applied() or set()
        missing = [m.__name__ for m in MIGRATIONS if m.__name__ not in applied]
        return [f"migration {name} is not applied" for name in missing]

    # --- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[PgDatabase]:
        """One write transaction, serialised with every other writer. Nested calls join
        the outer transaction."""
        if self.db.in_transaction:
            yield self.db
            return
        try:
            self.db.begin(write=True)
            try:
                yield self.db
            except BaseException:
                self.db.finish(commit=False)
                raise
            else:
                self.db.finish(commit=True)
        except Exception as exc:
            failure = storage_failure(exc, f"the database at {self.where}")
            if failure is None:
                raise
            raise failure from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[PgDatabase]:
        """A consistent snapshot for several reads."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.begin(write=False)
        try:
            yield self.db
        finally:
            self.db.finish(commit=False)

    def _executemany(self, sql: str, rows) -> None:
        self.db.executemany(sql, rows)

    @contextlib.contextmanager
    def indexer_lock(self, *, wait: bool = False) -> Iterator[None]:
        """One indexer at a time across every node: a session advisory lock, held on a
        connection of its own for as long as the indexer runs. Raises BlockingIOError
        when another node's indexer holds it."""
        holder = PgDatabase(self.url)
        try:
            if wait:
                holder.execute("SELECT pg_advisory_lock(?)", [INDEXER_LOCK])
            elif not holder.execute("SELECT pg_try_advisory_lock(?)", [INDEXER_LOCK]).fetchone()[0]:
                raise BlockingIOError("another indexer is running against this database")
            yield
        finally:
            holder.close()  # ending the session releases the lock

    # --- the node's lexical index --------------------------------------------------------------

    def lexical(self) -> LexicalReplica:
        """The node's full-text index, up to the database's latest change."""
        if self._lexical is None:
            self._lexical = LexicalReplica(self.lexical_path)
        self._lexical.sync(self)
        return self._lexical

    def chunk_texts(self, chunk_ids: Sequence[int]) -> list[tuple[int, str, str]]:
        """(id, text, language terms) of the chunks, for the node's lexical index."""
        rows: list[tuple[int, str, str]] = []
        for batch in _batches(list(chunk_ids)):
            rows.extend(
                tuple(r)
                for r in self.db.execute(
                    f"SELECT id, text, terms FROM chunks WHERE id IN ({','.join('?' * len(batch))})",
                    batch,
                ).fetchall()
            )
        return rows

    def chunk_text_pages(self) -> Iterator[list[tuple[int, str, str]]]:
        after = 0
        while True:
            rows = self.db.execute(
                "SELECT id, text, terms FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
                [after, _PAGE],
            ).fetchall()
            if not rows:
                return
            yield [tuple(r) for r in rows]
            after = rows[-1][0]

    def iter_chunk_vectors(
        self, model_id: str, batch_size: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (chunk ids, vectors) for a model, a page at a time (a client-side cursor
        would hold every vector in memory at once)."""
        after = -1
        while True:
            rows = self.db.execute(
                "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.model_id = ? AND v.text_hash = c.text_hash "
                "WHERE c.id > ? ORDER BY c.id LIMIT ?",
                [model_id, after, batch_size],
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            after = rows[-1][0]

    def term_document_counts(self, stems: Sequence[str]) -> dict[str, int]:
        return self.lexical().term_document_counts(stems)

    def frequent_terms(self, min_chunks: int) -> dict[str, int]:
        return self.lexical().frequent_terms(min_chunks)

    def fts_chunks(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        return self.lexical().fts_chunks(terms, limit)

    def compact(self) -> None:
        """Make deleted text unrecoverable: rewrite the tables an erasure touches (VACUUM
        FULL leaves no dead row versions behind) and this node's lexical index. Other
        nodes purge theirs when they see the erasure finish."""
        for table in ERASURE_TABLES:
            self.db.execute(f'VACUUM FULL "{table}"')
        with contextlib.suppress(
            Exception
        ):  # needs the pg_checkpoint role; the WAL recycles anyway
            self.db.execute("CHECKPOINT")
        self.lexical().compact()

    def database_bytes(self) -> int:
        """What the database takes on the server's disk."""
        return int(self.db.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def empty_every_table(self) -> None:
        """Remove every row (the schema stays): `kb bench` hands back the empty database it
        was given. Nothing else calls this."""
        tables = [
            r[0]
            for r in self.db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != '_migrations'"
            ).fetchall()
        ]
        if tables:
            self.db.execute(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )

    def close(self) -> None:
        self.db.close()
        if self._lexical is not None:
            self._lexical.close()
            self._lexical = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
