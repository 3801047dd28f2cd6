"""What every embedder backend shares: the interface, thread counts, batching by length,
model fingerprints. indexer.embedders (PyTorch, hashing, the factory) and
indexer.onnx_backend both build on this module, and neither imports the other's internals.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.errors import ConfigError

ProgressFn = Callable[[int], None]
SMALL_BATCH = 4


# A query longer than this many characters (about a hundred word pieces) is a long report.
LONG_QUERY_CHARS = 400
LONG_QUERY_THREADS = 2


def threads_for(count: int, threads: int, chars: int = 0) -> int:
    """Threads for one embed call of ``count`` texts of ``chars`` characters in all.

    A short query runs on one thread: more barely help it, and the other core is then
    free for the FTS5 half of the query. A long report's query window (112-128 word pieces)
    takes 29 ms on one thread and 18 ms on two, so it runs on LONG_QUERY_THREADS even in a
    server worker given one thread per core (where two long queries at once share the
    cores for a moment). Batches use all the threads that were given."""
    if count > SMALL_BATCH:
        return threads
    if chars > LONG_QUERY_CHARS:
        return max(1, min(LONG_QUERY_THREADS, os.cpu_count() or 1))
    return 1


def clip_by_offsets(text: str, offsets: Sequence[tuple[int, int]], max_tokens: int) -> str:
    """``text`` cut after its ``max_tokens``-th token, given each token's character span
    (special tokens excluded)."""
    if len(offsets) <= max_tokens:
        return text
    return text[: offsets[max_tokens - 1][1]]


def require_model_folder(folder: Path) -> None:
    if not (folder / "modules.json").exists() and not (folder / "config.json").exists():
        raise ConfigError(f"{folder} is not a sentence-transformers model folder")


class Embedder(Protocol):
    model_id: str
    dimension: int

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def model_fingerprint(folder: Path) -> str:
    """A short id for a model folder: its name plus a hash of its weights and config."""
    digest = hashlib.sha256()
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        path = folder / name
        if path.exists():
            digest.update(path.read_bytes())
    for path in weights:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}".encode())
        with path.open("rb") as handle:
            # The head and tail of the weights tell versions apart without reading 90 MB.
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, stat.st_size - (1 << 20)))
            digest.update(handle.read())
    label = folder.name if folder.name != "model" else folder.parent.name
    return f"{label}@{digest.hexdigest()[:12]}"


def set_thread_counts(threads: int) -> None:
    """Pin PyTorch, FAISS and BLAS to a fixed number of threads for this process."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    import faiss

    faiss.omp_set_num_threads(threads)


def batched_encode(
    encode: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    batch_size: int,
    progress: ProgressFn | None,
    dimension: int,
) -> np.ndarray:
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    # Sorting by length keeps padding small inside each batch.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = encode([texts[i] for i in idx])
        if progress:
            progress(len(idx))
    return out
