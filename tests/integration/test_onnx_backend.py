"""The int8 ONNX encoder: exported locally once, close to the float model, cached."""

import numpy as np
import pytest

from indexer.embedders import SentenceTransformerEmbedder, packaged_model_path
from indexer.onnx_backend import OnnxEmbedder

pytestmark = pytest.mark.real_model

TEXTS = [
    "vpn keeps disconnecting every few minutes",
    "I was charged twice for the same invoice",
    "printer on floor 2 shows offline after the driver update and nothing prints",
    "API returns 429 Too Many Requests when we sync contacts at night",
]


def test_onnx_int8_matches_the_float_model_and_is_cached(tmp_path):
    folder = packaged_model_path()
    onnx = OnnxEmbedder.from_model_folder(folder, cache_dir=tmp_path, threads=2)
    exported = list(tmp_path.rglob("model-int8.onnx"))
    assert len(exported) == 1 and not list(tmp_path.rglob(".fp32-*"))
    torch_model = SentenceTransformerEmbedder(folder, threads=2)
    a, b = onnx.embed(TEXTS), torch_model.embed(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert float(np.mean(np.sum(a * b, axis=1))) > 0.93
    # Rankings agree: each text's nearest neighbour among the float vectors is itself.
    assert (np.argmax(a @ b.T, axis=1) == np.arange(len(TEXTS))).all()
    assert onnx.model_id.endswith("+onnx-int8") and onnx.model_id != torch_model.model_id
    stamp = exported[0].stat().st_mtime_ns
    again = OnnxEmbedder.from_model_folder(folder, cache_dir=tmp_path, threads=2)
    assert exported[0].stat().st_mtime_ns == stamp
    assert np.allclose(again.embed(TEXTS), a, atol=1e-5)


def test_onnx_float_backend_computes_the_torch_vectors_and_shares_the_model_id(tmp_path):
    from indexer.embedders import clear_embedder_cache, load_embedder

    folder = packaged_model_path()
    onnx = OnnxEmbedder.from_model_folder(folder, cache_dir=tmp_path, threads=2, quantized=False)
    assert [p.name for p in tmp_path.rglob("*.onnx")] == ["model-fp32.onnx"]
    torch_model = SentenceTransformerEmbedder(folder, threads=2)
    many = TEXTS * 3  # more than a query's few texts: embedded in parallel
    for texts in (TEXTS[:1], TEXTS, many):
        a, b = onnx.embed(texts), torch_model.embed(texts)
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4
    # Same numbers, same model: an index built by one serves queries embedded by the other.
    assert onnx.model_id == torch_model.model_id
    assert sorted(onnx._sessions) == [1]  # many texts run one by one, threads at once, on it
    clear_embedder_cache()
    loaded = load_embedder("onnx", folder, threads=2, cache_dir=tmp_path)
    assert isinstance(loaded, OnnxEmbedder) and not loaded.quantized
    clear_embedder_cache()


def test_onnx_backend_falls_back_to_torch_when_the_export_fails(tmp_path, monkeypatch, caplog):
    from indexer import onnx_backend
    from indexer.embedders import clear_embedder_cache, load_embedder

    def broken(folder, target):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(onnx_backend, "export_fp32", broken)
    clear_embedder_cache()
    embedder = load_embedder("onnx", packaged_model_path(), threads=2, cache_dir=tmp_path)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert "embedding with PyTorch instead" in caplog.text
    clear_embedder_cache()


def test_int8_document_vectors_do_not_depend_on_the_texts_beside_them(tmp_path):
    from indexer.onnx_backend import Int8DocumentsEmbedder

    folder = packaged_model_path()
    encoder = Int8DocumentsEmbedder.from_model_folder(folder, cache_dir=tmp_path, threads=2)
    texts = [f"{t} (case {n})" for n in range(5) for t in TEXTS]  # 20: the parallel path
    seen: list[int] = []
    together = encoder.embed(texts, progress=seen.append)
    assert sum(seen) == len(texts) and together.shape == (len(texts), 384)
    reordered = encoder.embed(texts[::-1] + ["something else entirely " * 40] * 6)[: len(texts)][
        ::-1
    ]
    alone = np.vstack([encoder.embed([t]) for t in texts[:3]])
    assert np.array_equal(together, reordered) and np.array_equal(together[:3], alone)
    # Queries go through float32: the PyTorch model's own vectors.
    torch_model = SentenceTransformerEmbedder(folder, threads=2)
    assert np.abs(encoder.embed_queries(TEXTS) - torch_model.embed(TEXTS)).max() < 1e-4
    # Documents through int8 stay close to float32 and rank the same.
    floats = torch_model.embed(texts)
    assert float(np.mean(np.sum(together * floats, axis=1))) > 0.98
    assert (np.argmax(together @ floats.T, axis=1) == np.arange(len(texts))).all()
