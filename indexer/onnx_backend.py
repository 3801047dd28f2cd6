"""A faster encoder: the same model exported to ONNX and quantised to int8.

The export runs once per model, locally, from the model folder (``torch.onnx.export`` of
the transformer; mean pooling and normalisation stay in numpy, as in the
sentence-transformers pipeline), then ``onnxruntime.quantization.quantize_dynamic`` turns
the weights into int8. Files are cached per model fingerprint, so later starts only load.
Quality against the float model is measured with ``kb eval`` (see the README).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.embedders import ProgressFn, _batched_encode, model_fingerprint
from kb.errors import ConfigError

OPSET = 17


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


def export_int8(folder: Path, target_dir: Path) -> Path:
    """Export and quantise once; returns the int8 model path. Atomic: a crash leaves no file."""
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / "model-int8.onnx"
    if final.exists():
        return final
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    source = _transformer_folder(folder)
    transformer = AutoModel.from_pretrained(str(source), local_files_only=True)
    transformer.eval()

    class HiddenStates(torch.nn.Module):
        """Keyword arguments in, last hidden state out: stable across transformers versions."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = HiddenStates(transformer)
    dummy = {
        "input_ids": torch.ones((2, 16), dtype=torch.long),
        "attention_mask": torch.ones((2, 16), dtype=torch.long),
        "token_type_ids": torch.zeros((2, 16), dtype=torch.long),
    }
    fp32 = target_dir / f".fp32-{os.getpid()}.onnx"
    tmp = target_dir / f".int8-{os.getpid()}.onnx"
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow in the model
        torch.onnx.export(
            model, (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]), str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "last_hidden_state": axes},
            opset_version=OPSET, dynamo=False,
        )
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice about pre-processing at WARNING
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    fp32.unlink(missing_ok=True)
    os.replace(tmp, final)
    return final


class OnnxEmbedder:
    """int8 ONNX Runtime encoder with the model's own tokenizer (``tokenizers``, Rust)."""

    def __init__(self, folder: Path, onnx_path: Path, *, threads: int = 2):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = folder
        tokenizer_file = _transformer_folder(folder) / "tokenizer.json"
        if not tokenizer_file.exists():
            tokenizer_file = folder / "tokenizer.json"
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.max_length = _max_seq_length(folder)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.model_id = model_fingerprint(folder) + "+onnx-int8"
        probe = self._encode(["probe"])
        self.dimension = int(probe.shape[1])
        self._lock = threading.Lock()

    @classmethod
    def from_model_folder(cls, folder: Path, *, cache_dir: Path, threads: int = 2) -> OnnxEmbedder:
        """Export (first time only, into ``cache_dir``) and load the int8 model."""
        target = Path(cache_dir) / model_fingerprint(folder).replace("@", "-")
        return cls(folder, export_int8(folder, target), threads=threads)

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(["last_hidden_state"], feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        def encode(batch: list[str]) -> np.ndarray:
            with self._lock:
                return self._encode(batch)

        return _batched_encode(encode, texts, batch_size, progress, self.dimension)
