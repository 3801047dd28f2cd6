"""`kb bench`: tiny runs through the CLI (hashing embedder), checked for shape and for
figures that agree with each other; the timings themselves are never asserted."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

import scripts.bench.run
from indexer.chunking import incident_chunks, incident_text
from indexer.embedders import HashingEmbedder
from indexer.pipeline import Progress
from indexer.vector_index import VectorIndex
from kb.config import load_config
from kb.store import open_store
from scripts.bench.corpus import SyntheticCorpus, load_source
from scripts.bench.run import BenchOptions, exact_top_k, latency_summary, recall_at_k, run_benchmark
from scripts.cli import cli
from tests.conftest import REPO

ARTICLES = REPO / "articles"
LATENCY_KEYS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


@pytest.fixture
def bench_tmp(tmp_path, monkeypatch):
    """Temporary homes go here, so a test can see that they are removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    monkeypatch.setenv("KB_THREADS", "1")
    return folder


def run_bench(*args: str) -> dict:
    result = CliRunner().invoke(
        cli, ["bench", "--json", "--backend", "hashing", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def check_latency(figures: dict, count: int | None = None) -> None:
    values = [figures[k] for k in LATENCY_KEYS]
    assert all(v is not None and v > 0 for v in values), figures
    assert values == sorted(values), figures  # p50 <= p95 <= p99 <= max
    if count is not None:
        assert figures["count"] == count
    assert figures.get("qps", 1) > 0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_tiny_run_with_http(bench_tmp):
    out = run_bench(
        "--docs", "300", "--queries", "20", "--seconds", "2", "--clients", "2", "--workers", "1"
    )
    assert set(out) >= {
        "bench",
        "corpus",
        "index",
        "embedding",
        "suggest",
        "keyword_baseline",
        "memory",
        "sizes",
        "ratios",
        "stages_s",
        "total_s",
    }
    assert out["bench"]["vectors_mode"] == "embedded" and out["bench"]["home"] is None
    assert out["bench"]["model_id"] == "hashing-384-v1"
    corpus, index = out["corpus"], out["index"]
    assert corpus["incidents"] == 300 and corpus["articles"] > 0
    assert 0 < corpus["incidents_linked_to_articles"] < 300
    # Every chunk went into the index, every text embedded for real.
    assert index["vectors"] == corpus["chunks"] == index["report"]["chunks_added"]
    assert (
        index["report"]["texts_cached"] == 0
        and index["report"]["texts_embedded"] == corpus["chunks"]
    )
    assert index["kind"] == "flat" and index["recall_at_10"] is None
    assert index["build_s"] > 0

    emb = out["embedding"]
    assert emb["sample_texts"] == 2000 and emb["throughput_docs_per_s"] > 0
    check_latency(emb["query"], count=20)
    check_latency(out["suggest"]["in_process"], count=20)
    check_latency(out["keyword_baseline"]["in_process"], count=20)

    http = out["suggest"]["http"]
    check_latency(http)
    assert http["requests"] > 0 and http["errors"] == 0 and http["ok"] == http["requests"]
    assert http["count"] == http["requests"] and http["workers"] == 1 and http["clients"] == 2
    server = out["memory"]["server"]
    assert server["master_peak_rss_mb"] > 0 and len(server["workers"]) == 1
    assert server["tree_peak_rss_mb"] >= server["workers"][0]["peak_rss_mb"] > 0
    worker = server["workers"][0]
    assert (
        0
        < worker["end_uss_mb"]
        <= worker["end_pss_mb"]
        <= worker["end_rss_mb"]
        <= worker["peak_rss_mb"]
    )
    assert out["memory"]["bench_peak_rss_mb"] > 0
    before = out["memory"]["bench_before_http"]  # its own search state let go of
    assert 0 < before["uss_mb"] <= before["rss_mb"] <= out["memory"]["bench_peak_rss_mb"]
    assert all(
        out["sizes"][k] > 0 for k in ("index_folder_bytes", "index_file_bytes", "database_bytes")
    )
    assert all(v > 0 for v in out["ratios"].values() if v is not None)
    assert out["ratios"]["suggest_p95_vs_fts_p95"] is not None
    # Stopped and cleaned up by itself.
    assert gone(server["pid"])
    assert list(bench_tmp.iterdir()) == []


def test_a_compressed_index_is_served_mapped_and_rescored(bench_tmp, monkeypatch):
    """KB_INDEX_KIND=hnsw-sq8 on a small store: the bench's recall is measured as the search
    path ranks (re-scored with exact vectors), and the server's workers serve the mapped index."""
    monkeypatch.setenv("KB_INDEX_KIND", "hnsw-sq8")
    out = run_bench(
        "--docs", "400", "--queries", "20", "--seconds", "2", "--clients", "2", "--workers", "1"
    )
    index = out["index"]
    assert index["kind"] == "hnsw-sq8" and index["rescored_candidates"] == 100
    assert (
        0.9 <= index["recall_at_10"] <= 1.0 and 0 < index["recall_at_10_compressed_scores"] <= 1.0
    )
    http = out["suggest"]["http"]
    assert http["requests"] > 0 and http["errors"] == 0
    assert (
        out["sizes"]["index_file_bytes"] < index["vectors"] * 384 * 4
    )  # one byte per dimension, plus the graph


def test_composed_vectors_are_cached_and_resemble_real_ones(bench_tmp, tmp_path):
    keep = tmp_path / "kept"
    out = run_bench(
        "--docs",
        "300",
        "--queries",
        "10",
        "--seconds",
        "0",
        "--embed-all-below",
        "100",
        "--keep",
        str(keep),
    )
    assert (
        out["bench"]["vectors_mode"] == "composed"
        and "composed" in out["bench"]["vectors_mode_note"]
    )
    assert out["bench"]["home"] == str(keep.resolve())
    report = out["index"]["report"]
    # Only the articles' chunks were embedded by the index build; every incident was cached.
    assert report["texts_cached"] == 300
    assert report["texts_embedded"] == out["corpus"]["chunks"] - 300
    assert out["suggest"]["http"] is None and out["memory"]["server"] is None
    check_latency(out["suggest"]["in_process"], count=10)

    embedder = HashingEmbedder()
    with open_store(keep, create=False) as store:
        assert store.count_incidents() == 300
        incidents = list(store.iter_incidents())[:50]
        hashes = [incident_chunks(i)[0].text_hash for i in incidents]
        cached = store.cached_vectors(embedder.model_id, hashes)
    composed = np.vstack([np.frombuffer(cached[h], dtype=np.float32) for h in hashes])
    real = embedder.embed([incident_text(i.title, i.description) for i in incidents])
    cosine = np.sum(composed * real, axis=1)
    assert np.allclose(np.linalg.norm(composed, axis=1), 1.0, atol=1e-4)
    assert cosine.mean() > 0.8, cosine


def test_keep_refuses_a_folder_that_holds_anything(bench_tmp, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "kb.sqlite3").write_text("someone's data")
    result = CliRunner().invoke(cli, ["bench", "--docs", "10", "--keep", str(tmp_path / "busy")])
    assert result.exit_code == 1 and "not empty" in result.output
    assert (tmp_path / "busy" / "kb.sqlite3").read_text() == "someone's data"


def test_a_missing_articles_folder_is_named_with_the_way_to_name_another(bench_tmp, tmp_path):
    result = CliRunner().invoke(
        cli, ["bench", "--docs", "10", "--seconds", "0", "--articles", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == 1
    assert "nowhere does not exist" in result.output and "--articles" in result.output


def test_interrupt_during_http_stops_the_server_and_removes_the_home(bench_tmp, monkeypatch):
    seen: list[int] = []

    def interrupted(*args, **kwargs):
        seen.extend(p.pid for p in psutil.Process().children(recursive=True))
        raise KeyboardInterrupt

    monkeypatch.setattr(scripts.bench.run, "http_load", interrupted)
    config = load_config(embed_backend="hashing", threads=1)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(
            config,
            BenchOptions(
                docs=40, queries=5, seconds=5, clients=1, workers=1, articles_dir=ARTICLES
            ),
        )
    assert len(seen) >= 2  # gunicorn's master and its worker were running
    assert all(gone(pid) for pid in seen)
    assert list(bench_tmp.iterdir()) == []


def test_encoders_take_turns_and_each_keeps_its_best_round(service, monkeypatch):
    calls: list[str] = []

    class Recording:
        def __init__(self, name):
            self.name = name

        def embed(self, texts, *, batch_size=64, progress=None):
            calls.append(self.name)
            if progress:
                progress(len(texts))
            return np.zeros((len(texts), 4), dtype=np.float32)

    import indexer.embedders

    monkeypatch.setattr(indexer.embedders, "load_embedder", lambda name, *a, **k: Recording(name))
    progress = Progress()
    figures = scripts.bench.run._encoder_speeds(
        service, "onnx-int8-docs", Recording("onnx-int8-docs"), ["some text"] * 8, progress
    )
    rounds = scripts.bench.run.THROUGHPUT_ROUNDS
    names = ["onnx-int8-docs", "torch", "onnx"]
    # A warm-up and a timed call per encoder and round, the encoders in turn.
    assert calls == [name for _ in range(rounds) for name in names for _ in (0, 1)]
    assert set(figures["docs_per_s"]) == set(names) == set(figures["rounds_docs_per_s"])
    for name in names:
        assert len(figures["rounds_docs_per_s"][name]) == rounds
        assert figures["docs_per_s"][name] == max(figures["rounds_docs_per_s"][name])
    assert figures["vs_torch_float32"]["torch"] == 1.0
    hashing = scripts.bench.run._encoder_speeds(
        service, "hashing", Recording("hashing"), ["x"] * 4, progress
    )
    assert list(hashing["docs_per_s"]) == ["hashing"] and hashing["vs_torch_float32"] is None


def test_latency_summary_uses_nearest_rank():
    figures = latency_summary(float(v) for v in range(100, 0, -1))
    assert (figures["p50_ms"], figures["p95_ms"], figures["p99_ms"], figures["max_ms"]) == (
        50,
        95,
        99,
        100,
    )
    assert latency_summary([])["p50_ms"] is None


def test_recall_against_exact_search():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(100, 3100, dtype=np.int64)
    queries = vectors[:40] + rng.normal(scale=0.3, size=(40, 32)).astype(np.float32)
    batches = [(ids[i : i + 700], vectors[i : i + 700]) for i in range(0, 3000, 700)]
    exact = exact_top_k(queries, batches, 10)
    expected = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    assert all(set(a) == set(b) for a, b in zip(exact, expected, strict=True))

    flat = VectorIndex.build([(ids, vectors)], 32, len(ids), kind="flat")
    assert recall_at_k(flat.search(queries, 10)[1], exact) == 1.0
    hnsw = VectorIndex.build([(ids, vectors)], 32, len(ids), kind="hnsw")
    recall = recall_at_k(hnsw.search(queries, 10)[1], exact)
    assert 0.5 < recall <= 1.0
    assert recall_at_k(np.full((40, 10), -1), exact) == 0.0


def test_corpus_is_seeded_and_queries_are_not_in_it():
    source = load_source(ARTICLES, resolutions=50)
    first = [i for b in SyntheticCorpus(source, 3).batches(400) for i in b.incidents]
    larger = [i for b in SyntheticCorpus(source, 3).batches(5100) for i in b.incidents]
    other = [i for b in SyntheticCorpus(source, 4).batches(400) for i in b.incidents]
    assert first == larger[:400] and first != other and len(larger) == 5100
    texts = {incident_text(i.title, i.description) for i in first}
    assert len(texts) == 400 and len({i.id for i in first}) == 400
    assert len({i.resolution for i in first}) <= 50
    queries = SyntheticCorpus(source, 3).queries(100)
    assert not texts & {incident_text(t, d) for t, d in queries}
    assert SyntheticCorpus(source, 3).sample_texts(5) == SyntheticCorpus(source, 3).sample_texts(5)
