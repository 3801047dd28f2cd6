"""A node's own full-text index of a shared database's chunks, kept in step with its log.

PostgreSQL's full-text ranking (ts_rank) is not BM25, and the lexical half of a query is
tuned to SQLite FTS5's BM25. So on a shared database each node keeps the chunks' text in
an FTS5 table of its own (``lexical.sqlite3`` in its data home), with the same tokenizer
as the embedded store: scores are the same numbers as on SQLite. The file is built from
the database and follows the change log, like the vector index; every worker of the node
shares it (SQLite's write lock lets one catch up at a time). It holds nothing that is not
in the database: deleting it is safe, the next query rebuilds it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from kb.lexical import FTS_TOKENIZER
from kb.store import fts
from kb.store.documents import _batches

BUSY_TIMEOUT_S = 30


class ChangeSource(Protocol):
    def log_head(self) -> int: ...
    def log_since(self, seq: int, limit: int = 100_000) -> list: ...
    def chunk_texts(self, chunk_ids: Sequence[int]) -> list[tuple[int, str, str]]: ...
    def chunk_text_pages(self) -> Iterator[list[tuple[int, str, str]]]: ...
    def database_id(self) -> str: ...
    def finished_erasures(self) -> int: ...


class LexicalReplica:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")  # a lost tail is rebuilt from the database
        self.conn.execute("PRAGMA secure_delete = ON")
        columns = [row[1] for row in self.conn.execute("PRAGMA table_info(chunks_fts)").fetchall()]
        if columns and "terms" not in columns:  # a file made before chunks had language terms
            self.conn.execute("DROP TABLE IF EXISTS chunks_fts_vocab")
            self.conn.execute("DROP TABLE chunks_fts")
            self.conn.execute("DROP TABLE IF EXISTS replica_meta")  # rebuilt from the database
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, terms, tokenize='{FTS_TOKENIZER}')"
        )
        self.conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts_vocab USING fts5vocab(chunks_fts, 'row')"
        )
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS replica_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self.seq = -1  # what this connection last saw; the file's own is in replica_meta

    def _meta(self, name: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM replica_meta WHERE name = ?", [name]).fetchone()
        return row[0] if row else default

    def _set_meta(self, name: str, value) -> None:
        self.conn.execute(
            "INSERT INTO replica_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [name, str(value)],
        )

    def sync(self, source: ChangeSource) -> int:
        """Bring the file up to the database's latest change; returns the log position."""
        head = source.log_head()
        if head == self.seq:
            return head
        with self._locked():
            seq = int(self._meta("seq", "-1"))
            database = source.database_id()
            if self._meta("database_id") != database or seq > head or seq < 0:
                seq = self._rebuild(source, database)
                head = max(head, seq)
            while seq < head:
                entries = source.log_since(seq)
                if not entries:
                    break
                self._apply(source, entries)
                seq = entries[-1].seq
                if any(e.op == "remove" for e in entries):
                    self._purge_if_erased(source)
            self._set_meta("seq", seq)
        self.seq = seq
        return seq

    @contextlib.contextmanager
    def _locked(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _rebuild(self, source: ChangeSource, database: str) -> int:
        # The log position first, then the chunks: whatever changes meanwhile is in the
        # log after that position and is replayed on top (a removal, or an add again).
        head = source.log_head()
        self.conn.execute("DELETE FROM chunks_fts")
        for rows in source.chunk_text_pages():
            self.conn.executemany(
                "INSERT INTO chunks_fts (rowid, text, terms) VALUES (?, ?, ?)", rows
            )
        self._set_meta("database_id", database)
        self._set_meta("erasures", source.finished_erasures())
        return head

    def _apply(self, source: ChangeSource, entries: list) -> None:
        final: dict[int, str] = {}
        for entry in entries:
            final[entry.chunk_id] = entry.op
        ids = list(final)
        for batch in _batches(ids):
            self.conn.execute(
                f"DELETE FROM chunks_fts WHERE rowid IN ({','.join('?' * len(batch))})", batch
            )
        added = [cid for cid, op in final.items() if op == "add"]
        if added:
            rows = source.chunk_texts(added)
            self.conn.executemany(
                "INSERT INTO chunks_fts (rowid, text, terms) VALUES (?, ?, ?)", rows
            )

    def _purge_if_erased(self, source: ChangeSource) -> None:
        done = source.finished_erasures()
        if done != int(self._meta("erasures", "0")):
            self.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
            self._set_meta("erasures", done)

    def compact(self) -> None:
        """Merge the index's segments and rebuild the file without free pages, so erased
        text is gone from it too."""
        self.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- the queries the store answers from here ------------------------------------------

    def term_document_counts(self, stems: Sequence[str]) -> dict[str, int]:
        return fts.term_document_counts(self.conn.execute, stems)

    def frequent_terms(self, min_chunks: int) -> dict[str, int]:
        return fts.frequent_terms(self.conn.execute, min_chunks)

    def fts_chunks(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        return fts.fts_chunks(self.conn.execute, terms, limit)

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
