"""The FAISS index: inner product on unit vectors (cosine), keyed by chunk id.

Exact search (flat) while the collection is small; HNSW past ``HNSW_THRESHOLD`` vectors,
where exact search would cost too much per query. HNSW cannot delete, so removals are
kept as tombstones and filtered from results until the next full build.
"""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

HNSW_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def choose_kind(count: int) -> str:
    return "hnsw" if count >= HNSW_THRESHOLD else "flat"


class VectorIndex:
    def __init__(self, index: faiss.Index, kind: str, tombstones: set[int] | None = None):
        self.index = index
        self.kind = kind
        self.dimension = index.d
        self.tombstones: set[int] = tombstones or set()
        self._set_search_params()

    @classmethod
    def empty(cls, dimension: int, kind: str = "flat") -> VectorIndex:
        if kind == "flat":
            return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), "flat")
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            return cls(faiss.IndexIDMap2(hnsw), "hnsw")
        raise ValueError(f"unknown index kind {kind!r}")

    @classmethod
    def build(
        cls, batches: Iterable[tuple[np.ndarray, np.ndarray]], dimension: int, count: int,
        kind: str | None = None,
    ) -> VectorIndex:
        """Build from (ids, vectors) batches; the kind follows the count unless given."""
        index = cls.empty(dimension, kind or choose_kind(count))
        for ids, vectors in batches:
            index.index.add_with_ids(_as_matrix(vectors, dimension), ids.astype(np.int64))
        return index

    def _set_search_params(self) -> None:
        if self.kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = HNSW_EF_SEARCH

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)

    def contains(self, chunk_id: int) -> bool:
        if chunk_id in self.tombstones:
            return False
        return self.vector(chunk_id) is not None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors. Chunk ids are never reused and a chunk's text never changes, so an
        id that is already present is skipped (replaying the change log is idempotent)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = _as_matrix(vectors, self.dimension)
        fresh = np.array([not self._stored(int(i)) for i in ids], dtype=bool)
        if fresh.any():
            self.index.add_with_ids(vectors[fresh], ids[fresh])

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if self.kind == "flat":
            self.index.remove_ids(ids)
        else:
            present = [int(i) for i in ids if self._stored(int(i))]
            self.tombstones.update(present)

    def _stored(self, chunk_id: int) -> bool:
        try:
            self.index.reconstruct(chunk_id)
        except RuntimeError:
            return False
        return True

    def vector(self, chunk_id: int) -> np.ndarray | None:
        if chunk_id in self.tombstones:
            return None
        try:
            return self.index.reconstruct(int(chunk_id))
        except RuntimeError:
            return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row; missing slots have id -1."""
        queries = _as_matrix(queries, self.dimension)
        if self.index.ntotal == 0 or k <= 0:
            shape = (len(queries), max(k, 0))
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        extra = min(len(self.tombstones), 4 * k) if self.tombstones else 0
        fetch = min(int(self.index.ntotal), k + extra)
        scores, ids = self.index.search(queries, fetch)
        if not self.tombstones:
            return scores, ids
        out_scores = np.zeros((len(queries), k), dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            keep = [j for j in range(fetch) if ids[row, j] >= 0 and int(ids[row, j]) not in self.tombstones][:k]
            out_scores[row, : len(keep)] = scores[row, keep]
            out_ids[row, : len(keep)] = ids[row, keep]
        return out_scores, out_ids

    def all_ids(self) -> np.ndarray:
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        if self.tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64))]
        return ids

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str, tombstones: set[int] | None = None) -> VectorIndex:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index, kind, tombstones)


def _as_matrix(vectors: np.ndarray, dimension: int) -> np.ndarray:
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape[1] != dimension:
        raise ValueError(f"vectors have dimension {matrix.shape[1]}, index has {dimension}")
    return matrix
