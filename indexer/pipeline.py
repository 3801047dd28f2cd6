"""Bring the index in step with the store: chunk, embed what is new, publish.

Embedding runs outside any transaction; each batch of chunks is then swapped in with one
short write transaction, so agents' feedback is never kept waiting behind the indexer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.chunking import article_chunks, incident_chunks
from indexer.embedders import Embedder
from indexer.index_files import current_version, load_index, publish_index, read_config
from indexer.vector_index import VectorIndex, choose_kind
from kb.errors import IndexMismatchError, IndexMissingError
from kb.store import ChunkText, DocRef, Store

DOC_BATCH = 256


@dataclass
class Progress:
    """Callbacks for long work; the CLI draws a bar, tests count calls."""

    start: Callable[[str, int], None] = lambda label, total: None
    advance: Callable[[int], None] = lambda n: None
    finish: Callable[[], None] = lambda: None


@dataclass
class IndexReport:
    docs_indexed: int = 0
    docs_removed: int = 0
    chunks_added: int = 0
    texts_embedded: int = 0
    texts_cached: int = 0
    vectors: int = 0
    version: str = ""
    rebuilt: bool = False
    seconds: float = 0.0
    skipped_changed: int = 0
    unchanged: bool = (
        False  # the published index already agreed with the store: nothing was published
    )
    notes: list[str] = field(default_factory=list)
    ranking: dict = field(default_factory=dict)  # what the fitted ranking profile chose

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def chunks_for(store: Store, docs: Sequence[DocRef]) -> dict[DocRef, list[ChunkText]]:
    incidents = {
        i.id: i for i in store.iter_incidents([d.id for d in docs if d.kind == "incident"])
    }
    out: dict[DocRef, list[ChunkText]] = {}
    for doc in docs:
        if doc.kind == "incident":
            if doc.id in incidents:
                out[doc] = incident_chunks(incidents[doc.id])
        else:
            try:
                out[doc] = article_chunks(store.get_article(doc.id))
            except KeyError:
                continue
    return out


def embed_missing(
    store: Store,
    embedder: Embedder,
    texts: dict[str, str],
    *,
    batch_size: int,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Embed texts (by hash) that the cache lacks for this model. Returns (embedded, cached)."""
    cached = store.cached_vectors(embedder.model_id, list(texts))
    missing = [h for h in texts if h not in cached]
    if progress and missing:
        progress.start("embedding", len(missing))
    bulk = getattr(embedder, "bulk_texts", None)  # a cluster takes larger handfuls
    step = bulk(batch_size) if callable(bulk) else max(batch_size * 8, 256)
    for start in range(0, len(missing), step):
        hashes = missing[start : start + step]
        vectors = embedder.embed(
            [texts[h] for h in hashes],
            batch_size=batch_size,
            progress=progress.advance if progress else None,
        )
        store.put_vectors(embedder.model_id, dict(zip(hashes, vectors, strict=True)))
    if progress and missing:
        progress.finish()
    return len(missing), len(texts) - len(missing)


def sync_documents(
    store: Store,
    embedder: Embedder,
    docs: Sequence[DocRef],
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    report: IndexReport | None = None,
) -> IndexReport:
    """Chunk and embed the given documents and swap their chunks in the store."""
    report = report or IndexReport()
    for start in range(0, len(docs), DOC_BATCH * 8):
        window = docs[start : start + DOC_BATCH * 8]
        chunked = chunks_for(store, window)
        texts = {c.text_hash: c.text for chunks in chunked.values() for c in chunks}
        embedded, cached = embed_missing(
            store, embedder, texts, batch_size=batch_size, progress=progress
        )
        report.texts_embedded += embedded
        report.texts_cached += cached
        items = list(chunked.items())
        for begin in range(0, len(items), DOC_BATCH):
            # One short transaction per batch of documents; a document edited while we
            # embedded is left for the next run.
            with store.write():
                for doc, chunks in items[begin : begin + DOC_BATCH]:
                    if store.current_doc_hash(doc.kind, doc.id) != doc.content_hash:
                        report.skipped_changed += 1
                        continue
                    store.replace_doc_chunks(doc, chunks)
                    report.docs_indexed += 1
                    report.chunks_added += len(chunks)
    return report


def update_index(
    store: Store,
    embedder: Embedder,
    index_root: Path,
    *,
    rebuild: bool = False,
    batch_size: int = 64,
    progress: Progress | None = None,
    before_publish: Callable[[VectorIndex, int], None] | None = None,
    meta: dict | None = None,
    kind: str | None = None,
) -> IndexReport:
    """Make the published index agree with the store; incremental unless ``rebuild``.

    ``before_publish(index, log_seq)`` runs on the finished index before it is published
    (the search layer fits its ranking profile there, so workers never load an index
    without its profile). ``kind`` forces an index kind (else it follows the store's size).
    The caller holds :func:`indexer.index_files.indexing_lock`.
    """
    began = time.monotonic()
    report = IndexReport(rebuilt=rebuild)
    for doc in store.docs_to_unindex():
        store.unindex_doc(doc.kind, doc.id)
        report.docs_removed += 1
    if rebuild:
        store.forget_indexed_docs()
    pending = store.docs_to_index()
    if progress and pending:
        progress.start("chunking", len(pending))
    sync_documents(
        store, embedder, pending, batch_size=batch_size, progress=progress, report=report
    )
    # Chunks whose text this model has not embedded yet (after a model change).
    leftovers = dict(store.chunks_without_vectors(embedder.model_id))
    if leftovers:
        embedded, _ = embed_missing(
            store, embedder, leftovers, batch_size=batch_size, progress=progress
        )
        report.texts_embedded += embedded
    head = store.log_head()
    index = None if rebuild else _load_for_update(index_root, embedder.model_id, report)
    if index is not None:
        loaded, seq = index
        apply_log(store, loaded, embedder.model_id, seq)
        vindex = loaded
        if (kind or choose_kind(len(vindex))) != vindex.kind or len(vindex.tombstones) > 0.2 * max(
            len(vindex), 1
        ):
            vindex = None
    else:
        vindex = None
    if vindex is None:
        report.rebuilt = True
        count = store.count_chunks()
        vindex = VectorIndex.build(
            store.iter_chunk_vectors(embedder.model_id), embedder.dimension, count, kind
        )
    report.vectors = len(vindex)
    if before_publish is not None:
        before_publish(vindex, head)
    report.version = publish_index(
        index_root,
        vindex,
        {
            "model_id": embedder.model_id,
            "log_seq": head,
            "store_chunks": store.count_chunks(),
            **(meta or {}),
        },
    )
    report.seconds = round(time.monotonic() - began, 3)
    return report


def _load_for_update(index_root: Path, model_id: str, report: IndexReport):
    if current_version(index_root) is None:
        return None
    try:
        index, config = load_index(index_root, model_id, writable=True)
    except IndexMismatchError as exc:
        report.notes.append(f"rebuilding: {exc}")
        return None
    except (IndexMissingError, OSError, RuntimeError) as exc:
        report.notes.append(f"rebuilding: the current index could not be read ({exc})")
        return None
    return index, int(config.get("log_seq", 0))


def apply_log(store: Store, index: VectorIndex, model_id: str, since_seq: int) -> int:
    """Replay the store's change log after ``since_seq`` onto an index; returns the new head."""
    entries = store.log_since(since_seq)
    if not entries:
        return since_seq
    final: dict[int, str] = {}
    for entry in entries:
        final[entry.chunk_id] = entry.op
    removed = np.array([cid for cid, op in final.items() if op == "remove"], dtype=np.int64)
    index.remove(removed)
    added = [cid for cid, op in final.items() if op == "add"]
    vectors = store.chunk_vectors(model_id, added)
    present = [cid for cid in added if cid in vectors]
    if present:
        index.add(np.array(present, dtype=np.int64), np.vstack([vectors[c] for c in present]))
    head = entries[-1].seq
    if len(entries) == 100_000:
        return apply_log(store, index, model_id, head)
    return head


def check_index(store: Store, index_root: Path, model_id: str) -> list[str]:
    """Differences between the published index and the store (empty when they agree)."""
    problems: list[str] = []
    try:
        config = read_config(index_root)
        index, config = load_index(index_root, model_id)
    except (IndexMissingError, IndexMismatchError) as exc:
        return [str(exc)]
    apply_log(store, index, model_id, int(config.get("log_seq", 0)))
    store_ids = {cid for cid, _, _ in store.chunk_doc_map()}
    index_ids = set(index.all_ids().tolist())
    if store_ids - index_ids:
        problems.append(
            f"{len(store_ids - index_ids)} chunks in the store are missing from the index"
        )
    if index_ids - store_ids:
        problems.append(
            f"{len(index_ids - store_ids)} vectors in the index have no chunk in the store"
        )
    pending = store.docs_to_index()
    if pending:
        problems.append(f"{len(pending)} documents are new or changed and not yet indexed")
    stale = store.docs_to_unindex()
    if stale:
        problems.append(f"{len(stale)} documents are indexed but no longer searchable")
    missing_vectors = store.chunks_without_vectors(model_id)
    if missing_vectors:
        problems.append(f"{len(missing_vectors)} chunk texts have no vector for model {model_id}")
    return problems
