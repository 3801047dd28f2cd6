"""The FAISS index: inner product on unit vectors (cosine), keyed by chunk id.

The kind follows the size of the store:

- ``flat``: exact search, while the collection is small (below ``HNSW_THRESHOLD``);
- ``hnsw``: a graph over full float32 vectors, where exact search would cost too much;
- ``hnsw-sq8`` (from ``COMPRESSED_THRESHOLD``): the same graph over vectors compressed to
  one byte per dimension (8-bit scalar quantisation, a quarter of the memory). Its scores
  are approximate, so the search path re-scores its candidates with the exact vectors
  kept in the store (``approximate`` tells it to).

HNSW cannot delete, so removals are kept as tombstones and filtered from results until
the next full build.

A published ``hnsw-sq8`` file is read memory-mapped (``read(..., mmap=True)``): its
compressed vectors stay in the page cache, shared by every worker on the machine, and
only the graph is read into each worker. A mapped index is read-only; vectors added
after it was published (the change log replayed by a worker) go to a small exact index
beside it, searched with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from kb.config import INDEX_KINDS

HNSW_THRESHOLD = 50_000
COMPRESSED_THRESHOLD = 250_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# Candidates the graph search keeps, per kind: the 8-bit graph needs a wider search to keep
# recall@10 within half a point of exact search at a million vectors (measured on the
# bench's composed vectors: 300k, 128 -> 0.9885, 256 -> 0.996, 512 -> 0.9985 after re-scoring).
HNSW_EF_SEARCH = {"hnsw": 128, "hnsw-sq8": 512}
# Vectors the 8-bit quantiser learns each dimension's range from.
SQ_TRAINING = 100_000
KINDS = INDEX_KINDS


def choose_kind(count: int) -> str:
    if count >= COMPRESSED_THRESHOLD:
        return "hnsw-sq8"
    return "hnsw" if count >= HNSW_THRESHOLD else "flat"


class VectorIndex:
    def __init__(
        self,
        index: faiss.Index,
        kind: str,
        tombstones: set[int] | None = None,
        *,
        mapped: bool = False,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}")
        self.index = index
        self.kind = kind
        self.dimension = index.d
        self.tombstones: set[int] = tombstones or set()
        self.mapped = mapped
        # hnsw-sq8 keeps its ids itself (sorted, with their positions) instead of FAISS's
        # id -> position hash map; a mapped index adds to ``delta``.
        self._sorted_ids: np.ndarray | None = None
        self._positions: np.ndarray | None = None
        self.delta: faiss.Index | None = None
        self._set_search_params()

    @property
    def approximate(self) -> bool:
        """Whether search scores are approximate (compressed vectors): the caller re-scores
        candidates with exact vectors."""
        return self.kind == "hnsw-sq8"

    @classmethod
    def empty(cls, dimension: int, kind: str = "flat") -> VectorIndex:
        if kind == "flat":
            return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), "flat")
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            return cls(faiss.IndexIDMap2(hnsw), "hnsw")
        if kind == "hnsw-sq8":
            hnsw = faiss.IndexHNSWSQ(
                dimension, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT
            )
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            return cls(faiss.IndexIDMap(hnsw), "hnsw-sq8")
        raise ValueError(f"unknown index kind {kind!r}")

    @classmethod
    def build(
        cls,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        dimension: int,
        count: int,
        kind: str | None = None,
    ) -> VectorIndex:
        """Build from (ids, vectors) batches; the kind follows the count unless given."""
        index = cls.empty(dimension, kind or choose_kind(count))
        held: list[tuple[np.ndarray, np.ndarray]] = []
        for ids, vectors in batches:
            ids, vectors = ids.astype(np.int64), _as_matrix(vectors, dimension)
            if not index.index.is_trained:
                # The quantiser learns its ranges from the first SQ_TRAINING vectors.
                held.append((ids, vectors))
                if sum(len(i) for i, _ in held) < SQ_TRAINING:
                    continue
                index._train(np.vstack([v for _, v in held]))
                batch_list, held = held, []
            else:
                batch_list = [(ids, vectors)]
            for batch_ids, batch_vectors in batch_list:
                index.index.add_with_ids(batch_vectors, batch_ids)
        if held:
            index._train(np.vstack([v for _, v in held]))
            for batch_ids, batch_vectors in held:
                index.index.add_with_ids(batch_vectors, batch_ids)
        index._ids_changed()
        return index

    def _train(self, sample: np.ndarray) -> None:
        self.index.index.train(sample)

    def _set_search_params(self) -> None:
        if self.kind in HNSW_EF_SEARCH:  # the graph kinds
            faiss.downcast_index(self.index.index).hnsw.efSearch = HNSW_EF_SEARCH[self.kind]

    def _ids_changed(self) -> None:
        if self.kind != "hnsw-sq8":
            return
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        self._sorted_ids, self._positions = ids[order], order.astype(np.int64)

    def __len__(self) -> int:
        extra = int(self.delta.ntotal) if self.delta is not None else 0
        return int(self.index.ntotal) + extra - len(self.tombstones)

    def contains(self, chunk_id: int) -> bool:
        if chunk_id in self.tombstones:
            return False
        return self._stored(int(chunk_id))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors. Chunk ids are never reused and a chunk's text never changes, so an
        id that is already present is skipped (replaying the change log is idempotent)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = _as_matrix(vectors, self.dimension)
        fresh = np.array([not self._stored(int(i)) for i in ids], dtype=bool)
        if not fresh.any():
            return
        if self.mapped:
            if self.delta is None:
                self.delta = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
            self.delta.add_with_ids(vectors[fresh], ids[fresh])
            return
        if not self.index.is_trained:
            self._train(vectors[fresh])
        self.index.add_with_ids(vectors[fresh], ids[fresh])
        self._ids_changed()

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if self.delta is not None:
            self.delta.remove_ids(ids)
        if self.kind == "flat":
            self.index.remove_ids(ids)
        else:
            present = [int(i) for i in ids if self._in_base(int(i))]
            self.tombstones.update(present)

    def _in_base(self, chunk_id: int) -> bool:
        if self.kind == "hnsw-sq8":
            return self._base_position(chunk_id) is not None
        try:
            self.index.reconstruct(chunk_id)
        except RuntimeError:
            return False
        return True

    def _base_position(self, chunk_id: int) -> int | None:
        ids = self._sorted_ids
        if ids is None or not len(ids):
            return None
        at = int(np.searchsorted(ids, chunk_id))
        if at < len(ids) and int(ids[at]) == chunk_id:
            return int(self._positions[at])
        return None

    def _stored(self, chunk_id: int) -> bool:
        if self.delta is not None and self._delta_vector(chunk_id) is not None:
            return True
        return self._in_base(chunk_id)

    def _delta_vector(self, chunk_id: int) -> np.ndarray | None:
        try:
            return self.delta.reconstruct(chunk_id)
        except RuntimeError:
            return None

    def vector(self, chunk_id: int) -> np.ndarray | None:
        """A chunk's vector: exact on flat and hnsw, decoded from 8 bits on hnsw-sq8."""
        chunk_id = int(chunk_id)
        if chunk_id in self.tombstones:
            return None
        if self.delta is not None:
            found = self._delta_vector(chunk_id)
            if found is not None:
                return found
        if self.kind == "hnsw-sq8":
            position = self._base_position(chunk_id)
            return None if position is None else self.index.index.reconstruct(position)
        try:
            return self.index.reconstruct(chunk_id)
        except RuntimeError:
            return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row; missing slots have id -1."""
        queries = _as_matrix(queries, self.dimension)
        if len(self) <= 0 or k <= 0:
            shape = (len(queries), max(k, 0))
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        extra = min(len(self.tombstones), 4 * k) if self.tombstones else 0
        fetch = min(int(self.index.ntotal), k + extra)
        parts = [self.index.search(queries, fetch)] if fetch > 0 else []
        if self.delta is not None and self.delta.ntotal:
            parts.append(self.delta.search(queries, min(int(self.delta.ntotal), k)))
        scores = np.hstack([p[0] for p in parts])
        ids = np.hstack([p[1] for p in parts])
        if len(parts) == 1 and not self.tombstones:
            return scores, ids
        out_scores = np.zeros((len(queries), k), dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            order = np.argsort(-scores[row], kind="stable")
            keep = [
                j
                for j in order.tolist()
                if ids[row, j] >= 0 and int(ids[row, j]) not in self.tombstones
            ][:k]
            out_scores[row, : len(keep)] = scores[row, keep]
            out_ids[row, : len(keep)] = ids[row, keep]
        return out_scores, out_ids

    def all_ids(self) -> np.ndarray:
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        if self.delta is not None and self.delta.ntotal:
            ids = np.concatenate([ids, faiss.vector_to_array(self.delta.id_map).astype(np.int64)])
        if self.tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64))]
        return ids

    def write(self, path: Path) -> None:
        """Write the index file (fsynced). A mapped index with vectors added since it was
        read cannot be written: read it with ``mmap=False`` to update it."""
        if self.delta is not None and self.delta.ntotal:
            raise RuntimeError("a memory-mapped index with added vectors cannot be written")
        faiss.write_index(self.index, str(path))
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())

    @classmethod
    def read(
        cls, path: Path, kind: str, tombstones: set[int] | None = None, *, mmap: bool = True
    ) -> VectorIndex:
        """Read an index file; an hnsw-sq8 file is memory-mapped unless ``mmap`` is False
        (the indexer reads it to update it)."""
        mapped = mmap and kind == "hnsw-sq8"
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mapped else 0
        index = cls(faiss.read_index(str(path), flags), kind, tombstones, mapped=mapped)
        index._ids_changed()
        return index


def _as_matrix(vectors: np.ndarray, dimension: int) -> np.ndarray:
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape[1] != dimension:
        raise ValueError(f"vectors have dimension {matrix.shape[1]}, index has {dimension}")
    return matrix
