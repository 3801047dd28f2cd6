"""Bookkeeping for the indexer: chunks, the vector cache, the change log, full-text search."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from kb.lexical import analyse
from kb.store import fts
from kb.store.base import utc_now
from kb.store.documents import _batches

# Which documents are offered as prior resolutions, as SQL over each table.
ELIGIBLE_INCIDENT_SQL = (
    "i.status IN ('resolved', 'closed') AND trim(coalesce(i.resolution, '')) != ''"
)
ELIGIBLE_ARTICLE_SQL = "a.status != 'archived'"
# The same test for a scan of the whole table in id order: with ``i.status`` bare, SQLite
# reads the rows through the (status, opened_at) index and sorts every eligible row for
# each page (3 s a page, 50 pages at a million incidents); an expression on it leaves the
# primary key's order to the planner, on both engines.
ELIGIBLE_INCIDENT_SCAN_SQL = ELIGIBLE_INCIDENT_SQL.replace("i.status IN", "(i.status || '') IN")
# Rows per page of the scans that read a whole table (a million rows are never one list).
SCAN_PAGE = 20_000


@dataclass(frozen=True)
class DocRef:
    kind: str  # "article" | "incident"
    id: str
    content_hash: str


@dataclass(frozen=True)
class ChunkText:
    position: int
    heading: str
    text: str
    text_hash: str


@dataclass(frozen=True)
class LogEntry:
    seq: int
    op: str
    chunk_id: int
    doc_kind: str
    doc_id: str


class IndexingMixin:
    """Verbs the indexer and the search path use; no SQL lives outside kb/."""

    def docs_to_index(self) -> list[DocRef]:
        """Eligible documents whose chunks are missing or were made from older content."""
        sql = f"""
            SELECT 'incident', i.id, i.content_hash FROM incidents i
            LEFT JOIN indexed_docs d ON d.doc_kind = 'incident' AND d.doc_id = i.id
            WHERE {ELIGIBLE_INCIDENT_SQL} AND (d.doc_hash IS NULL OR d.doc_hash != i.content_hash)
            UNION ALL
            SELECT 'article', a.id, a.content_hash FROM articles a
            LEFT JOIN indexed_docs d ON d.doc_kind = 'article' AND d.doc_id = a.id
            WHERE {ELIGIBLE_ARTICLE_SQL} AND (d.doc_hash IS NULL OR d.doc_hash != a.content_hash)
        """
        return [DocRef(*row) for row in self.db.execute(sql).fetchall()]

    def docs_to_unindex(self) -> list[DocRef]:
        """Indexed documents that were deleted or are no longer eligible."""
        sql = f"""
            SELECT d.doc_kind, d.doc_id, d.doc_hash FROM indexed_docs d
            LEFT JOIN incidents i ON d.doc_kind = 'incident' AND i.id = d.doc_id
            LEFT JOIN articles a ON d.doc_kind = 'article' AND a.id = d.doc_id
            WHERE (d.doc_kind = 'incident' AND (i.id IS NULL OR NOT ({ELIGIBLE_INCIDENT_SQL})))
               OR (d.doc_kind = 'article' AND (a.id IS NULL OR NOT ({ELIGIBLE_ARTICLE_SQL})))
        """
        return [DocRef(*row) for row in self.db.execute(sql).fetchall()]

    def index_changes_for(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[DocRef], list[DocRef]]:
        """For the given documents only: (to index, to unindex), as in docs_to_index and
        docs_to_unindex but without scanning the whole store."""
        to_index: list[DocRef] = []
        to_unindex: list[DocRef] = []
        for kind, doc_id in keys:
            if kind == "incident":
                sql = f"SELECT i.content_hash, {ELIGIBLE_INCIDENT_SQL} FROM incidents i WHERE i.id = ?"
            else:
                sql = (
                    f"SELECT a.content_hash, {ELIGIBLE_ARTICLE_SQL} FROM articles a WHERE a.id = ?"
                )
            row = self.db.execute(sql, [doc_id]).fetchone()
            indexed = self.db.execute(
                "SELECT doc_hash FROM indexed_docs WHERE doc_kind = ? AND doc_id = ?",
                [kind, doc_id],
            ).fetchone()
            if row and row[1]:
                if not indexed or indexed[0] != row[0]:
                    to_index.append(DocRef(kind, doc_id, row[0]))
            elif indexed:
                to_unindex.append(DocRef(kind, doc_id, indexed[0]))
        return to_index, to_unindex

    def current_doc_hash(self, kind: str, doc_id: str) -> str | None:
        table = "incidents" if kind == "incident" else "articles"
        row = self.db.execute(
            f"SELECT content_hash FROM [{table}] WHERE id = ?", [doc_id]
        ).fetchone()
        return row[0] if row else None

    def replace_doc_chunks(self, doc: DocRef, chunks: Sequence[ChunkText]) -> list[int]:
        """Swap a document's chunks for new ones, logging each removal and addition."""
        now = utc_now()
        # The language analysis (a language identifier per chunk) runs before the write lock.
        chunks = list(chunks)
        terms = [analyse(chunk.text) for chunk in chunks]
        with self.write():
            self._remove_chunks(doc.kind, doc.id, now)
            new_ids = []
            for chunk, chunk_terms in zip(chunks, terms, strict=True):
                cursor = self.db.execute(
                    "INSERT INTO chunks (doc_kind, doc_id, position, heading, text, text_hash, terms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [
                        doc.kind,
                        doc.id,
                        chunk.position,
                        chunk.heading,
                        chunk.text,
                        chunk.text_hash,
                        chunk_terms,
                    ],
                )
                new_ids.append(cursor.fetchone()[0])
            self._executemany(
                "INSERT INTO index_log (op, chunk_id, doc_kind, doc_id, at) VALUES ('add', ?, ?, ?, ?)",
                [(cid, doc.kind, doc.id, now) for cid in new_ids],
            )
            self.db.execute(
                "INSERT INTO indexed_docs (doc_kind, doc_id, doc_hash, indexed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (doc_kind, doc_id) DO UPDATE SET doc_hash = excluded.doc_hash, "
                "indexed_at = excluded.indexed_at",
                [doc.kind, doc.id, doc.content_hash, now],
            )
        return new_ids

    def forget_indexed_docs(self) -> None:
        """Mark every document as out of date, so the next run chunks all of them again.

        The rows stay (with an empty hash): if this run is killed half-way, a document that
        has since left search is still known to have chunks and is unindexed next time.
        """
        with self.write():
            self.db.execute("UPDATE indexed_docs SET doc_hash = ''")

    def unindex_doc(self, kind: str, doc_id: str) -> None:
        with self.write():
            self._remove_chunks(kind, doc_id, utc_now())
            self.db.execute(
                "DELETE FROM indexed_docs WHERE doc_kind = ? AND doc_id = ?", [kind, doc_id]
            )

    def _remove_chunks(self, kind: str, doc_id: str, now: str) -> None:
        old = [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM chunks WHERE doc_kind = ? AND doc_id = ?", [kind, doc_id]
            ).fetchall()
        ]
        if not old:
            return
        self.db.execute("DELETE FROM chunks WHERE doc_kind = ? AND doc_id = ?", [kind, doc_id])
        self._executemany(
            "INSERT INTO index_log (op, chunk_id, doc_kind, doc_id, at) VALUES ('remove', ?, ?, ?, ?)",
            [(cid, kind, doc_id, now) for cid in old],
        )

    # --- the vector cache ------------------------------------------------------------

    def cached_vectors(self, model_id: str, text_hashes: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for batch in _batches(list(dict.fromkeys(text_hashes))):
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(
                f"SELECT text_hash, vector FROM vectors WHERE model_id = ? AND text_hash IN ({marks})",
                [model_id, *batch],
            )
            found.update(dict(rows.fetchall()))
        return found

    def put_vectors(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        now = utc_now()
        with self.write():
            self._executemany(
                "INSERT INTO vectors (model_id, text_hash, vector, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model_id, text_hash) DO UPDATE SET vector = excluded.vector, "
                "created_at = excluded.created_at",
                [
                    (model_id, h, np.asarray(v, dtype=np.float32).tobytes(), now)
                    for h, v in vectors.items()
                ],
            )

    def chunks_without_vectors(self, model_id: str) -> list[tuple[str, str]]:
        """(text_hash, text) of chunk texts not yet embedded with this model."""
        rows = self.db.execute(
            """
            SELECT c.text_hash, min(c.text) FROM chunks c
            LEFT JOIN vectors v ON v.model_id = ? AND v.text_hash = c.text_hash
            WHERE v.text_hash IS NULL GROUP BY c.text_hash
            """,
            [model_id],
        )
        return rows.fetchall()

    def iter_chunk_vectors(
        self, model_id: str, batch_size: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (chunk ids, vectors) for a model, in batches of numpy arrays."""
        cursor = self.db.execute(
            """
            SELECT c.id, v.vector FROM chunks c
            JOIN vectors v ON v.model_id = ? AND v.text_hash = c.text_hash
            ORDER BY c.id
            """,
            [model_id],
        )
        while True:
            rows = cursor.fetchmany(batch_size)
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vectors

    def chunk_vectors(self, model_id: str, chunk_ids: Sequence[int]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        for batch in _batches(list(chunk_ids)):
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(
                f"""
                SELECT c.id, v.vector FROM chunks c
                JOIN vectors v ON v.model_id = ? AND v.text_hash = c.text_hash
                WHERE c.id IN ({marks})
                """,
                [model_id, *batch],
            )
            for cid, blob in rows.fetchall():
                found[cid] = np.frombuffer(blob, dtype=np.float32)
        return found

    # --- chunks, the change log ------------------------------------------------------

    def chunk_rows(self, chunk_ids: Sequence[int] | None = None) -> list[dict]:
        columns = "id, doc_kind, doc_id, position, heading, text"
        if chunk_ids is None:
            return list(self.db.query(f"SELECT {columns} FROM chunks ORDER BY id"))
        rows: list[dict] = []
        for batch in _batches(list(chunk_ids)):
            marks = ",".join("?" * len(batch))
            rows.extend(self.db.query(f"SELECT {columns} FROM chunks WHERE id IN ({marks})", batch))
        return rows

    def chunk_doc_map(self) -> Iterator[tuple[int, str, str]]:
        """(chunk id, doc kind, doc id) for every chunk, in id order, read in pages so a
        large store is never held in memory at once (wrap in ``read()`` for one snapshot)."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT id, doc_kind, doc_id FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
                [last, SCAN_PAGE],
            ).fetchall()
            yield from (tuple(r) for r in rows)
            if len(rows) < SCAN_PAGE:
                return
            last = rows[-1][0]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def count_indexed_docs(self) -> dict[str, int]:
        rows = self.db.execute("SELECT doc_kind, count(*) FROM indexed_docs GROUP BY doc_kind")
        return dict(rows.fetchall())

    def orphan_chunk_docs(self) -> list[tuple[str, str]]:
        """(kind, id) of documents that have chunks but no indexed_docs row, so neither
        docs_to_index nor docs_to_unindex would ever touch them (left by older versions)."""
        rows = self.db.execute(
            """
            SELECT DISTINCT c.doc_kind, c.doc_id FROM chunks c
            LEFT JOIN indexed_docs d ON d.doc_kind = c.doc_kind AND d.doc_id = c.doc_id
            WHERE d.doc_id IS NULL
            """
        )
        return [tuple(row) for row in rows.fetchall()]

    def log_head(self) -> int:
        row = self.db.execute("SELECT max(seq) FROM index_log").fetchone()
        return row[0] or 0

    def log_since(self, seq: int, limit: int = 100_000) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT seq, op, chunk_id, doc_kind, doc_id FROM index_log WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            [seq, limit],
        )
        return [LogEntry(*row) for row in rows.fetchall()]

    def searchable_documents(self, kind: str, ids: Sequence[str] | None = None) -> Iterable[dict]:
        """The fields the search path keeps in memory, for eligible documents only: a list
        for given ids, else every eligible document read in pages of SCAN_PAGE by id
        (wrap in ``read()`` for one snapshot)."""
        if kind == "incident":
            sql = (
                "SELECT i.id, i.title, i.resolution, i.resolution_code, i.product, i.category, "
                "i.status, i.article_id, i.resolved_at, i.assignment_group, i.priority, i.escalated, "
                "i.customer_tier FROM incidents i WHERE "
                + (ELIGIBLE_INCIDENT_SCAN_SQL if ids is None else ELIGIBLE_INCIDENT_SQL)
            )
        else:
            sql = (
                "SELECT a.id, a.title, a.body, a.product, a.category, a.status, a.audience, "
                "a.updated, a.review_by FROM articles a WHERE " + ELIGIBLE_ARTICLE_SQL
            )
        if ids is None:
            return self._all_searchable(sql, "i" if kind == "incident" else "a")
        rows: list[dict] = []
        alias = "i" if kind == "incident" else "a"
        for batch in _batches(list(ids)):
            marks = ",".join("?" * len(batch))
            rows.extend(self.db.query(f"{sql} AND {alias}.id IN ({marks})", list(batch)))
        return rows

    def _all_searchable(self, sql: str, alias: str) -> Iterator[dict]:
        last = ""
        while True:
            rows = list(
                self.db.query(
                    f"{sql} AND {alias}.id > ? ORDER BY {alias}.id LIMIT ?", [last, SCAN_PAGE]
                )
            )
            yield from rows
            if len(rows) < SCAN_PAGE:
                return
            last = rows[-1]["id"]

    # --- lexical search --------------------------------------------------------------

    def term_document_counts(self, stems: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each (Porter-stemmed) term (kb.store.fts)."""
        return fts.term_document_counts(self.db.execute, stems)

    def frequent_terms(self, min_chunks: int) -> dict[str, int]:
        """Every (stemmed) term held by at least ``min_chunks`` chunks (kb.store.fts)."""
        return fts.frequent_terms(self.db.execute, min_chunks)

    def fts_chunks(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """Chunk ids and BM25 scores of the chunks holding any of ``terms`` (kb.store.fts)."""
        return fts.fts_chunks(self.db.execute, terms, limit)
