"""`kb bench`: speed and memory figures of the whole service on a synthetic store.

One run builds a data home of N incidents (scripts.bench.corpus), indexes it through
``Service.index()`` as `kb index` does, and measures:

- embedding throughput (docs/s on a fixed sample of 2,000 composed texts, batches of 64)
  and the latency of embedding one short query;
- the index build (wall time and its report), the index and database sizes, the FAISS
  index kind and, when it is approximate, its recall@10 against exact search;
- suggest latency in-process (``record=False``) and single-threaded queries per second;
- the same for a keyword-only baseline: SQLite FTS5 over the same chunks and queries;
- over HTTP: a real ``kb serve`` on a free loopback port, C clients for S seconds posting
  to /api/v1/suggest; latency, throughput, errors, and the peak memory of the server's
  processes (sampled every 0.5 s).

Vectors: up to ``embed_all_below`` incidents every text is embedded for real. Above it the
fragment pool the corpus is made from is embedded once, and each incident's vector is
composed from its fragments' vectors (see ``compose_vectors``) and written to the store's
vector cache under the model's id, so ``Service.index()`` finds every vector cached. The
report says which mode was used.

The run stops by itself; its temporary home and its server are removed on the way out,
also after an error or an interrupt.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.chunking import incident_chunks
from indexer.index_files import current_version, read_config
from indexer.pipeline import Progress
from kb.app.service import Service
from kb.config import DEFAULT_EMBED_BACKEND, Config
from kb.errors import KBError
from kb.lexical import query_terms
from scripts.bench.corpus import SyntheticCorpus, compose_vectors, load_source
from scripts.bench.http_load import http_load, running_server
from search.ranking import DENSE_DEPTH, exact_scores
from search.suggester import SuggestRequest
from search.text import compose_query

THROUGHPUT_SAMPLE = 2_000
THROUGHPUT_BATCH = 64
RECALL_K = 10
KEYWORD_LIMIT = 10
WARMUP_QUERIES = 3


@dataclass
class BenchOptions:
    docs: int = 10_000
    queries: int = 200
    clients: int = 4
    seconds: float = 20.0  # 0: no HTTP part
    workers: int | None = None  # None: KB_WORKERS or one per core, as `kb serve`
    backend: str | None = None  # None: KB_EMBED_BACKEND
    keep: Path | None = None
    embed_all_below: int = 20_000
    resolutions: int = 500
    seed: int = 1
    timeout: float = 30.0
    server_start_timeout: float = 600.0
    articles_dir: Path | None = None  # None: the configured articles folder (KB_ARTICLES_DIR)


# --- small measuring tools ---------------------------------------------------------------


def latency_summary(milliseconds: Iterable[float]) -> dict[str, Any]:
    """count, p50/p95/p99 (nearest rank), mean and max of latencies in milliseconds."""
    values = sorted(milliseconds)
    if not values:
        return {
            "count": 0,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "mean_ms": None,
            "max_ms": None,
        }

    def rank(q: float) -> float:
        return values[max(1, min(len(values), -(-len(values) * q // 100))) - 1]

    return {
        "count": len(values),
        "p50_ms": round(rank(50), 3),
        "p95_ms": round(rank(95), 3),
        "p99_ms": round(rank(99), 3),
        "mean_ms": round(sum(values) / len(values), 3),
        "max_ms": round(values[-1], 3),
    }


def timed_calls(
    call: Callable[[Any], Any], items: list[Any], advance: Callable[[int], None] = lambda n: None
) -> tuple[list[float], float]:
    """Call once per item; (each call's milliseconds, total seconds)."""
    latencies = []
    began = time.perf_counter()
    for item in items:
        start = time.perf_counter()
        call(item)
        latencies.append((time.perf_counter() - start) * 1000)
        advance(1)
    return latencies, time.perf_counter() - began


def exact_top_k(
    queries: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], k: int
) -> np.ndarray:
    """Ids of the k highest inner products per query, by brute force over (ids, vectors)
    batches, keeping only a running top k (memory stays bounded at any store size)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for ids, vectors in batches:
        scores = queries @ vectors.T
        all_scores = np.hstack([best_scores, scores])
        all_ids = np.hstack([best_ids, np.broadcast_to(ids, scores.shape)])
        keep = np.argpartition(-all_scores, min(k, all_scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top k that an approximate search also returned."""
    hits = [
        len(set(f[f >= 0].tolist()) & set(e[e >= 0].tolist())) / max(1, int((e >= 0).sum()))
        for f, e in zip(found, exact, strict=True)
    ]
    return float(np.mean(hits)) if hits else 0.0


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def filesystem_of(path: Path) -> str:
    """The file system type a path lives on (tmpfs makes commits look free)."""
    import psutil

    path = str(Path(path).resolve())
    best = ("", "unknown")
    for part in psutil.disk_partitions(all=True):
        if path.startswith(part.mountpoint) and len(part.mountpoint) > len(best[0]):
            best = (part.mountpoint, part.fstype)
    return best[1]


def bench_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- the run -------------------------------------------------------------------------------


class Stages:
    """Wall time of each stage of the run, in order."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - began, 3)


def prepare_home(options: BenchOptions) -> tuple[Path, bool]:
    """The bench's data home and whether it is temporary. Raises KBError when --keep names
    a folder that holds anything (a bench never writes into someone's data)."""
    if options.keep is None:
        return Path(tempfile.mkdtemp(prefix="kb-bench-")), True
    home = Path(options.keep).expanduser().resolve()
    if home.exists() and any(home.iterdir()):
        raise KBError(f"--keep {home}: the folder is not empty; give a new or empty folder")
    home.mkdir(parents=True, exist_ok=True)
    return home, False


def run_benchmark(
    config: Config, options: BenchOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Build the store, measure, clean up; returns the figures (see the module docstring).

    Raises KBError for bad options or a server that does not start; whatever happens, the
    temporary home is removed and the server stopped.
    """
    if options.docs < 1 or options.queries < 1:
        raise KBError("--docs and --queries must be at least 1")
    progress = progress or Progress()
    home, temporary = prepare_home(options)
    try:
        backend = options.backend or config.embed_backend or DEFAULT_EMBED_BACKEND
        bench_config = config.with_overrides(home=str(home), embed_backend=backend)
        service = Service(bench_config)
        owns_database = False
        try:
            _require_empty(service.store())
            owns_database = bool(bench_config.database_url)
            return _measure(service, bench_config, options, progress, kept=not temporary)
        finally:
            if owns_database and temporary:  # hand back the empty database it was given
                with contextlib.suppress(KBError):
                    service.store().empty_every_table()
            service.close()
            progress.finish()
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _measure(
    service: Service, config: Config, options: BenchOptions, progress: Progress, *, kept: bool
) -> dict[str, Any]:
    stages = Stages()
    began = time.perf_counter()
    composed = options.docs > options.embed_all_below
    result: dict[str, Any] = {
        "bench": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": options_dict(options),
            "backend": config.embed_backend,
            "vectors_mode": "composed" if composed else "embedded",
            "vectors_mode_note": (
                f"{options.docs} incidents > --embed-all-below {options.embed_all_below}: the fragment "
                "pool was embedded once and each incident's vector composed from its fragments' "
                "vectors (plus seeded noise) and cached, so the index build found every incident "
                "vector cached"
                if composed
                else "every text was embedded for real by the index build"
            ),
            "cpu_count": os.cpu_count(),
            "threads": config.cpu_threads(),
            "load_average_start": _load_average(),
            "python": platform.python_version(),
            "home": str(config.home_path) if kept else None,
            "home_filesystem": filesystem_of(config.home_path),
            "engine": service.store().engine,
            "database": service.store().where if config.database_url else None,
        }
    }
    with stages("load_model"):
        embedder = service.embedder()
    result["bench"]["model_id"] = embedder.model_id
    corpus = _build_store(service, options, composed, progress, stages, result)
    queries = corpus.queries(options.queries)

    with stages("index_build"):
        report = service.index(progress=progress)
    index_config = read_config(service.index_root)
    result["index"] = _index_figures(
        report,
        stages.seconds["index_build"],
        index_config,
        service.store().latest_ranking_profile(embedder.model_id),
    )
    result["corpus"]["chunks"] = index_config.get("store_chunks")

    result["embedding"] = _embedding_figures(service, embedder, corpus, queries, progress, stages)
    _measure_queries(service, config, queries, progress, stages, result)
    result["index"].update(_recall_figures(service, queries, result["index"]["kind"], stages))
    result["memory"] = {"server": None}
    if options.seconds > 0:
        result["memory"]["bench_before_http"] = _release_memory(service)
        with stages("http"):
            _measure_http(service, config, options, queries, progress, result)
    result["memory"]["bench_peak_rss_mb"] = bench_peak_rss_mb()
    result["sizes"] = _sizes(service)
    result["ratios"] = _ratios(result)
    result["stages_s"] = stages.seconds
    result["total_s"] = round(time.perf_counter() - began, 2)
    result["bench"]["load_average_end"] = _load_average()
    return result


def _build_store(
    service: Service,
    options: BenchOptions,
    composed: bool,
    progress: Progress,
    stages: Stages,
    result: dict[str, Any],
) -> SyntheticCorpus:
    """Import the sample articles and the synthetic incidents; in composed mode also put
    each incident's composed vector in the vector cache."""
    embedder, store = service.embedder(), service.store()
    with stages("build_corpus"):
        source = load_source(
            options.articles_dir or Path(service.config.articles_dir),
            resolutions=options.resolutions,
        )
        corpus = SyntheticCorpus(source, options.seed)
        store.upsert_articles(source.articles, changed_by="kb bench")
    pool_vectors = None
    if composed:
        with stages("embed_fragment_pool"):
            progress.start("fragments", len(source.titles) + len(source.fragments))
            pool_vectors = (
                embedder.embed(source.titles, progress=progress.advance),
                embedder.embed(source.fragments, progress=progress.advance),
            )
    linked = 0
    noise = np.random.default_rng([options.seed, 3])
    progress.start("corpus", options.docs)
    for batch in corpus.batches(options.docs):
        with stages("import_incidents"):
            store.upsert_incidents(batch.incidents, source="kb bench")
        linked += sum(1 for i in batch.incidents if i.article_id)
        if pool_vectors is not None:
            with stages("compose_vectors"):
                vectors = compose_vectors(*pool_vectors, batch, noise)
                store.put_vectors(
                    embedder.model_id,
                    {
                        chunk.text_hash: vectors[row]
                        for row, incident in enumerate(batch.incidents)
                        # keyed as the store keeps the text: redacted
                        for chunk in incident_chunks(store.redacted_incident(incident))
                    },
                )
        progress.advance(len(batch.incidents))
    result["corpus"] = {
        "incidents": options.docs,
        "articles": len(source.articles),
        "titles": len(source.titles),
        "fragments": len(source.fragments),
        "resolutions": len(source.resolutions),
        "incidents_linked_to_articles": linked,
    }
    return corpus


def _measure_queries(
    service: Service,
    config: Config,
    queries: list[tuple[str, str]],
    progress: Progress,
    stages: Stages,
    result: dict[str, Any],
) -> None:
    """Suggest (in-process, nothing recorded) and the FTS5 keyword baseline, same queries."""
    store, suggester = service.store(), service.suggester()
    with stages("load_search_state"):
        suggester.ensure_state(store)

    def suggest(query: tuple[str, str]) -> None:
        suggester.suggest(
            store, SuggestRequest(title=query[0], description=query[1], k=5), record=False
        )

    def keywords(query: tuple[str, str]) -> None:
        text, _ = compose_query(query[0], query[1], config.max_query_chars)
        store.fts_chunks(query_terms(text), KEYWORD_LIMIT)

    # Untimed first: a keyword pass warms SQLite's pages for both measurements, and the
    # first suggestions pay for lazy set-up.
    for query in queries:
        keywords(query)
    for query in queries[:WARMUP_QUERIES]:
        suggest(query)
    load = _load_average()
    with stages("suggest_in_process"):
        progress.start("suggest", len(queries))
        latencies, total = timed_calls(suggest, queries, progress.advance)
    result["suggest"] = {
        "in_process": {
            **latency_summary(latencies),
            "qps": round(len(queries) / total, 2),
            "record": False,
            "load_average": load,
        },
        "http": None,
    }
    load = _load_average()
    with stages("keyword_in_process"):
        progress.start("keywords", len(queries))
        latencies, total = timed_calls(keywords, queries, progress.advance)
    result["keyword_baseline"] = {
        "engine": "sqlite-fts5 bm25"
        + (" (the node's lexical index)" if store.engine == "postgresql" else ""),
        "limit": KEYWORD_LIMIT,
        "what": "the content words of the same queries, quoted and ORed (the suggest path's "
        "lexical half), top 10 chunk ids",
        "in_process": {
            **latency_summary(latencies),
            "qps": round(len(queries) / total, 2),
            "load_average": load,
        },
        "http": None,
        "http_note": "not measured: the service has no keyword-only endpoint",
    }


def _release_memory(service: Service) -> dict[str, float]:
    """Drop the bench's own search state before the server starts, so that what the bench
    holds does not stand beside the workers it measures (a node serves without an indexer
    in its workers' way); returns the bench process's memory then."""
    import psutil

    service.drop_search_state()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc: hand freed arenas back to the system
    info = psutil.Process().memory_full_info()
    return {"rss_mb": round(info.rss / 2**20, 1), "uss_mb": round(info.uss / 2**20, 1)}


def server_workers(asked: int | None, config: Config) -> int:
    """The bench server's workers: --workers, else KB_WORKERS, else one per core."""
    return asked or (config.workers if config.workers > 0 else os.cpu_count() or 1)


def _measure_http(
    service: Service,
    config: Config,
    options: BenchOptions,
    queries: list[tuple[str, str]],
    progress: Progress,
    result: dict[str, Any],
) -> None:
    workers = server_workers(options.workers, config)
    token = service.store().create_token("kb-bench", "agent")
    with running_server(
        config.home_path,
        workers=workers,
        backend=config.embed_backend,
        timeout=options.server_start_timeout,
        database_url=config.database_url,
    ) as (server, sampler, started):
        server_pid = server.process.pid
        load_average = _load_average()
        progress.start("http", int(options.seconds) + 1)
        load = http_load(
            server.url,
            token,
            queries,
            clients=options.clients,
            seconds=options.seconds,
            timeout=options.timeout,
            advance=progress.advance,
        )
        sampler.settle()
    result["suggest"]["http"] = {
        "workers": workers,
        "server_start_s": round(started, 2),
        **load.to_dict(),
        **latency_summary(load.answered_ms()),
        "record": True,
        "load_average": load_average,
        "note": "each request records its suggestion, as served; the clients are threads of "
        "the bench process on the same machine",
    }
    result["memory"]["server"] = {"pid": server_pid, **sampler.report()}


def _index_figures(
    report, seconds: float, index_config: dict, profile: dict | None
) -> dict[str, Any]:
    fitted = (profile or {}).get("fitted", {})
    return {
        "build_s": round(seconds, 3),
        "report": report.to_dict(),
        "kind": index_config.get("index_kind"),
        "vectors": index_config.get("count"),
        "dimension": index_config.get("dimension"),
        # Part of build_s: the ranking profile fitted on replayed incidents before publishing.
        "profile_fit_s": fitted.get("seconds"),
        "profile_replay_queries": fitted.get("replay_queries"),
        "profile_source": (profile or {}).get("source"),
    }


def throughput_seconds(embedder, texts: list[str], progress: Progress, label: str) -> float:
    """Seconds to embed ``texts`` in batches, after one untimed warm-up batch."""
    embedder.embed(texts[:THROUGHPUT_BATCH], batch_size=THROUGHPUT_BATCH)
    progress.start(label, len(texts))
    began = time.perf_counter()
    embedder.embed(texts, batch_size=THROUGHPUT_BATCH, progress=progress.advance)
    return time.perf_counter() - began


# The references every configured encoder is compared with, on the same texts and threads.
REFERENCE_BACKENDS = ("torch", "onnx")
# Each encoder embeds the sample this many times, the encoders taking turns, so that a
# passing disturbance (another process, the page cache settling after the index build)
# costs one round of one encoder rather than deciding a ratio.
THROUGHPUT_ROUNDS = 2


def _encoder_speeds(
    service: Service, backend: str, embedder, texts: list[str], progress: Progress
) -> dict[str, Any]:
    """Docs/s of the configured encoder, PyTorch float32 and ONNX float32 on the same texts
    and threads, in interleaved rounds; each encoder's best round, and the ratios to PyTorch
    float32 (the hashing backend has no model to compare)."""
    encoders = {backend: embedder}
    if backend != "hashing":
        from indexer.embedders import load_embedder

        folder = service.model_folder()
        for name in REFERENCE_BACKENDS:
            if name not in encoders:
                encoders[name] = load_embedder(
                    name,
                    folder,
                    threads=service.config.cpu_threads(),
                    cache_dir=service.home / "models" / "onnx",
                )
    rounds: dict[str, list[float]] = {name: [] for name in encoders}
    for turn in range(THROUGHPUT_ROUNDS):
        for name, encoder in encoders.items():
            seconds = throughput_seconds(
                encoder, texts, progress, f"{name} {turn + 1}/{THROUGHPUT_ROUNDS}"
            )
            rounds[name].append(round(len(texts) / seconds, 1))
    speeds = {name: max(values) for name, values in rounds.items()}
    torch = speeds.get("torch")
    return {
        "docs_per_s": speeds,
        "vs_torch_float32": {name: round(value / torch, 2) for name, value in speeds.items()}
        if torch
        else None,
        "rounds": THROUGHPUT_ROUNDS,
        "rounds_docs_per_s": rounds,
        "note": f"the same sample texts, batch size and threads for each encoder, {THROUGHPUT_ROUNDS} "
        "rounds taking turns, the best round of each; torch and onnx are float32, the "
        "configured one is what `kb index` uses",
    }


def _embedding_figures(
    service: Service,
    embedder,
    corpus: SyntheticCorpus,
    queries: list[tuple[str, str]],
    progress: Progress,
    stages: Stages,
) -> dict[str, Any]:
    texts = corpus.sample_texts(THROUGHPUT_SAMPLE)
    with stages("embedding_throughput"):
        encoders = _encoder_speeds(service, service.config.embed_backend, embedder, texts, progress)
    speed = encoders["docs_per_s"][service.config.embed_backend]
    short = [title for title, _ in queries]
    load = _load_average()
    with stages("query_embedding"):
        progress.start("query emb", len(short))
        latencies, _ = timed_calls(
            lambda text: embedder.embed([text], batch_size=1), short, progress.advance
        )
    return {
        "throughput_docs_per_s": speed,
        "sample_texts": len(texts),
        "batch_size": THROUGHPUT_BATCH,
        "seconds": round(len(texts) / speed, 3),
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "encoders": encoders,
        "query": {
            **latency_summary(latencies),
            "what": "one short query (a title) per call",
            "mean_words": round(sum(len(t.split()) for t in short) / len(short), 1),
            "load_average": load,
        },
    }


def _recall_figures(
    service: Service, queries: list[tuple[str, str]], kind: str, stages: Stages
) -> dict[str, Any]:
    if kind == "flat":
        return {"recall_at_10": None, "recall_note": "flat index: search is exact"}
    store, suggester = service.store(), service.suggester()
    with stages("recall"):
        state = suggester.ensure_state(store)
        vectors = np.vstack(
            [
                suggester.embed_query(compose_query(t, d, suggester.max_query_chars)[0])[:1]
                for t, d in queries
            ]
        )
        with state.lock:
            _, found = state.index.search(
                vectors, DENSE_DEPTH if state.index.approximate else RECALL_K
            )
        exact = exact_top_k(vectors, store.iter_chunk_vectors(state.model_id), RECALL_K)
    if not state.index.approximate:
        return {
            "recall_at_10": round(recall_at_k(found, exact), 4),
            "recall_note": f"{kind} against brute force over the store's vectors, first window of each query",
        }
    # As the search path does: the compressed index's top DENSE_DEPTH, re-scored exactly.
    rescored = np.full((len(vectors), RECALL_K), -1, dtype=np.int64)
    for row in range(len(vectors)):
        scores = exact_scores(
            state, store, vectors[row : row + 1], [int(c) for c in found[row] if c >= 0]
        )
        best = sorted(scores, key=lambda c: -scores[c])[:RECALL_K]
        rescored[row, : len(best)] = best
    return {
        "recall_at_10": round(recall_at_k(rescored, exact), 4),
        "recall_at_10_compressed_scores": round(recall_at_k(found[:, :RECALL_K], exact), 4),
        "rescored_candidates": DENSE_DEPTH,
        "recall_note": f"{kind}: its top {DENSE_DEPTH} re-scored with the store's exact vectors, against "
        "brute force over the store's vectors, first window of each query",
    }


def _require_empty(store) -> None:
    if store.count_incidents() or store.count_chunks() or store.db["articles"].count:
        raise KBError(
            f"the bench builds its own store: the database at {store.where} must be empty"
        )


def _sizes(service: Service) -> dict[str, Any]:
    db = service.config.db_path
    version = current_version(service.index_root)
    store = service.store()
    if store.engine == "postgresql":
        return {
            "index_folder_bytes": folder_bytes(service.index_root),
            "index_file_bytes": file_bytes(service.index_root / version / "vectors.faiss")
            if version
            else 0,
            "database_bytes": store.database_bytes(),
            "database_wal_bytes": None,
            "lexical_bytes": file_bytes(store.lexical_path)
            + file_bytes(store.lexical_path.with_name(store.lexical_path.name + "-wal")),
        }
    return {
        "index_folder_bytes": folder_bytes(service.index_root),
        "index_file_bytes": file_bytes(service.index_root / version / "vectors.faiss")
        if version
        else 0,
        "database_bytes": file_bytes(db),
        "database_wal_bytes": file_bytes(db.with_name(db.name + "-wal")),
    }


def _ratios(result: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a, b):
        return round(a / b, 1) if a is not None and b else None

    suggest, keyword = result["suggest"]["in_process"], result["keyword_baseline"]["in_process"]
    out = {
        f"suggest_{p}_vs_fts_{p}": ratio(suggest[f"{p}_ms"], keyword[f"{p}_ms"])
        for p in ("p50", "p95", "p99")
    }
    out["fts_qps_vs_suggest_qps"] = ratio(keyword["qps"], suggest["qps"])
    out["query_embedding_p50_share_of_suggest_p50"] = (
        round(result["embedding"]["query"]["p50_ms"] / suggest["p50_ms"], 2)
        if suggest["p50_ms"]
        else None
    )
    http = result["suggest"]["http"]
    if http and http["p95_ms"] is not None:
        out["http_p95_vs_in_process_p95"] = ratio(http["p95_ms"], suggest["p95_ms"])
    return out


def options_dict(options: BenchOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
