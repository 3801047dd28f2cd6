"""The FTS5 queries of lexical search, in one place for the two FTS5 indexes that answer
them: the embedded store's ``chunks_fts`` (kb.store.indexing) and a node's own lexical
index on a shared database (kb.store.lexical_replica). Both name their tables alike;
``execute(sql, params)`` is either connection's execute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kb.lexical import fts_match_expression
from kb.store.documents import _batches

Execute = Callable[[str, Sequence[Any]], Any]


def term_document_counts(execute: Execute, stems: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each (Porter-stemmed) term; absent terms are left out."""
    wanted = list(dict.fromkeys(s for s in stems if s))
    counts: dict[str, int] = {}
    for batch in _batches(wanted):
        rows = execute(
            f"SELECT term, doc FROM chunks_fts_vocab WHERE term IN ({','.join('?' * len(batch))})",
            batch,
        )
        counts.update(dict(rows.fetchall()))
    return counts


def frequent_terms(execute: Execute, min_chunks: int) -> dict[str, int]:
    """Every (stemmed) term held by at least ``min_chunks`` chunks, with its count.
    Reads the whole FTS5 vocabulary: seconds on a store of a million chunks."""
    return dict(
        execute("SELECT term, doc FROM chunks_fts_vocab WHERE doc >= ?", [min_chunks]).fetchall()
    )


def fts_chunks(execute: Execute, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
    """Chunk ids and BM25 scores (higher is better) of the chunks holding any of ``terms``
    (words, or space-joined phrases matched whole). Each is quoted here
    (kb.lexical.fts_match_expression), so no text can reach FTS5 as query syntax."""
    match = fts_match_expression(list(terms))
    if not match:
        return []
    rows = execute(
        "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY bm25(chunks_fts) LIMIT ?",
        [match, limit],
    )
    return rows.fetchall()
