"""Faster encoders: the same model exported to ONNX, as float32 or quantised to int8.

The export runs once per model, locally, from the model folder (``torch.onnx.export`` of
the transformer; mean pooling and normalisation stay in numpy, as in the
sentence-transformers pipeline). The float32 export computes what the PyTorch model
computes (the default ``onnx`` backend); ``onnxruntime.quantization.quantize_dynamic`` turns
its weights into int8 for the ``onnx-int8`` backend. Files are cached per model
fingerprint, so later starts only load. Quality of the int8 model against the float one is
measured with ``kb eval`` (see docs/decisions/bulk-embedding.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from indexer.encoding import (
    SMALL_BATCH,
    ProgressFn,
    clip_by_offsets,
    model_fingerprint,
    threads_for,
)
from kb.errors import ConfigError

OPSET = 17


# Texts per task when many texts are embedded one by one on several threads (progress is
# reported per task).
ONNX_BATCH = 16


def _max_seq_length(folder: Path, default: int = 256) -> int:
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (FileNotFoundError, KeyError, ValueError):
        return default


def _transformer_folder(folder: Path) -> Path:
    """Where the Hugging Face model files are inside a sentence-transformers folder."""
    if (folder / "config.json").exists():
        return folder
    modules = json.loads((folder / "modules.json").read_text())
    for module in modules:
        if module.get("type", "").endswith("Transformer"):
            return folder / module.get("path", "")
    raise ConfigError(f"{folder}: no transformer module found")


def _publish(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def export_fp32(folder: Path, target_dir: Path) -> Path:
    """Export the transformer once; returns the float32 model path. Atomic: a crash (or a
    second process exporting at the same time) never leaves a partial file under the
    final name."""
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / "model-fp32.onnx"
    if final.exists():
        return final
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars in command output
    source = _transformer_folder(folder)
    transformer = AutoModel.from_pretrained(str(source), local_files_only=True)
    transformer.eval()

    class HiddenStates(torch.nn.Module):
        """Keyword arguments in, last hidden state out: stable across transformers versions."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = HiddenStates(transformer)
    dummy = {
        "input_ids": torch.ones((2, 16), dtype=torch.long),
        "attention_mask": torch.ones((2, 16), dtype=torch.long),
        "token_type_ids": torch.zeros((2, 16), dtype=torch.long),
    }
    tmp = target_dir / f".fp32-{os.getpid()}-{threading.get_ident()}.onnx"
    axes = {0: "batch", 1: "sequence"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow in the model
            torch.onnx.export(
                model,
                (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
                opset_version=OPSET,
                dynamo=False,
            )
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def export_int8(folder: Path, target_dir: Path, *, per_channel: bool = False) -> Path:
    """Export (float32 first, kept) and quantise the weights to int8 once; returns the int8
    model path. Atomic like export_fp32.

    ``per_channel`` gives each output channel of a weight matrix its own scale: as fast, and
    much closer to float32 (mean cosine to the float32 vectors 0.993 instead of 0.960 on the
    bench's texts); the ``onnx-int8`` backend keeps the per-tensor file it always had."""
    final = target_dir / ("model-int8-per-channel.onnx" if per_channel else "model-int8.onnx")
    if final.exists():
        return final
    fp32 = export_fp32(folder, target_dir)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target_dir / f".int8-{os.getpid()}-{threading.get_ident()}.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice about pre-processing at WARNING
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel)
        _publish(tmp, final)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    return final


class OnnxEmbedder:
    """ONNX Runtime encoder with the model's own tokenizer (``tokenizers``, Rust).

    ``quantized=False`` runs the float32 export: the same function as the PyTorch model (the
    vectors agree to about 1e-7), so it shares the model's id and its index; it is simply
    faster on a CPU. ``quantized=True`` runs the int8 export, a different (slightly less
    accurate) model with its own id.

    Like the PyTorch encoder, a query (a few texts) runs on one thread, leaving the other
    cores to the keyword half of the search (a long report's window on two), and many
    texts use every thread given, one text per thread at a time (see ``embed``). Each
    thread count gets its own session, made on first use, so a serving worker holds one
    or two.
    """

    def __init__(self, folder: Path, onnx_path: Path, *, threads: int = 2, quantized: bool = True):
        from tokenizers import Tokenizer

        self.folder = folder
        self.onnx_path = onnx_path
        self.threads = max(1, threads)
        self.quantized = quantized
        tokenizer_file = _transformer_folder(folder) / "tokenizer.json"
        if not tokenizer_file.exists():
            tokenizer_file = folder / "tokenizer.json"
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.max_length = _max_seq_length(folder)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._sessions: dict[int, object] = {}
        self._input_names: set[str] = set()
        self._lock = threading.Lock()
        self.model_id = model_fingerprint(folder) + ("+onnx-int8" if quantized else "")
        with self._lock:
            probe = self._encode(["probe"], threads=1)
        self.dimension = int(probe.shape[1])

    @classmethod
    def from_model_folder(
        cls,
        folder: Path,
        *,
        cache_dir: Path,
        threads: int = 2,
        quantized: bool = True,
        per_channel: bool = False,
    ) -> OnnxEmbedder:
        """Export (first time only, into ``cache_dir``) and load."""
        target = Path(cache_dir) / model_fingerprint(folder).replace("@", "-")
        path = (
            export_int8(folder, target, per_channel=per_channel)
            if quantized
            else export_fp32(folder, target)
        )
        return cls(folder, path, threads=threads, quantized=quantized)

    def _session(self, threads: int):
        session = self._sessions.get(threads)
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
            self._sessions[threads] = session
            self._input_names = {i.name for i in session.get_inputs()}
        return session

    def _encode(self, texts: list[str], *, threads: int) -> np.ndarray:
        session = self._session(threads)
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(["last_hidden_state"], feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def clip(self, text: str, max_tokens: int) -> str:
        """The longest start of ``text`` that fits in ``max_tokens`` word pieces."""
        return clip_by_offsets(
            text, self.tokenizer.encode(text, add_special_tokens=False).offsets, max_tokens
        )

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Each text is one run of the model, never padded beside others.

        A few texts (a query) run on ``threads_for`` threads. Many texts run one by one on
        the one-thread session, ``threads`` runs at once (ONNX Runtime lets go of the GIL
        while it runs): on a CPU that is faster than batches whose every operation is split
        over the threads, which then wait for each other (see docs/decisions/bulk-embedding.md, Bulk
        embedding), and a text alone needs no padding. For the int8 exports it also makes
        a text's vector its own: the activations of a run are quantised with one scale,
        so a text embedded in a batch would get a vector that depends on the texts beside
        it. ``batch_size`` (at most ONNX_BATCH) is the number of texts per progress step.
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if len(texts) <= SMALL_BATCH:
            threads = threads_for(len(texts), self.threads, sum(len(t) for t in texts))
            with self._lock:
                for row, text in enumerate(texts):
                    out[row] = self._encode([text], threads=threads)[0]
            if progress and texts:
                progress(len(texts))
            return out
        with self._lock:
            self._session(1)
        step = max(1, min(batch_size, ONNX_BATCH))

        def run(start: int) -> int:
            stop = min(start + step, len(texts))
            for row in range(start, stop):
                out[row] = self._encode([texts[row]], threads=1)[0]
            return stop - start

        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="embed") as pool:
            for done in pool.map(run, range(0, len(texts), step)):
                if progress:
                    progress(done)
        return out


class Int8DocumentsEmbedder:
    """Documents through the int8 export (per-channel scales), queries through the float32
    export.

    Bulk indexing spends its time on documents, where the int8 export is much faster; a
    query is one short call, where float32 keeps every bit of the model's precision. The
    stored vectors come from the int8 export, so the pair has a model id of its own (its
    own vector cache and index)."""

    def __init__(self, documents: OnnxEmbedder, queries: OnnxEmbedder):
        self.documents = documents
        self.queries = queries
        self.folder = documents.folder
        self.model_id = model_fingerprint(documents.folder) + "+int8-docs"
        self.dimension = documents.dimension

    @classmethod
    def from_model_folder(
        cls, folder: Path, *, cache_dir: Path, threads: int = 2
    ) -> Int8DocumentsEmbedder:
        return cls(
            OnnxEmbedder.from_model_folder(
                folder, cache_dir=cache_dir, threads=threads, quantized=True, per_channel=True
            ),
            OnnxEmbedder.from_model_folder(
                folder, cache_dir=cache_dir, threads=threads, quantized=False
            ),
        )

    def clip(self, text: str, max_tokens: int) -> str:
        return self.queries.clip(text, max_tokens)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        return self.documents.embed(texts, batch_size=batch_size, progress=progress)

    def embed_queries(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        return self.queries.embed(texts, batch_size=batch_size)
