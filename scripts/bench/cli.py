"""`kb bench`: speed and memory figures on a synthetic store (see scripts.bench.run)."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kb.config import DEFAULT_EMBED_BACKEND, EMBED_BACKENDS
from scripts.common import AppContext, echo_json, pass_app, reports_errors, terminal_progress


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--docs",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Synthetic incidents in the store.",
)
@click.option(
    "--queries",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Queries for the latency figures (made like the corpus, not in it).",
)
@click.option(
    "--clients",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Concurrent HTTP clients.",
)
@click.option(
    "--seconds",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="How long the HTTP load runs (0: no HTTP part, no server).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="`kb serve` worker processes (default: $KB_WORKERS or one per core).",
)
@click.option(
    "--backend",
    type=click.Choice(EMBED_BACKENDS),
    default=None,
    help=f"Embedding backend (default: $KB_EMBED_BACKEND or {DEFAULT_EMBED_BACKEND}).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    default=None,
    metavar="PATH",
    help="Build the data home in PATH (new or empty) and keep it; default: a "
    "temporary folder, removed at the end.",
)
@click.option(
    "--embed-all-below",
    default=20_000,
    show_default=True,
    type=click.IntRange(0),
    help="Up to this many incidents every text is embedded; above it vectors are "
    "composed from embedded fragments.",
)
@click.option(
    "--resolutions",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Distinct resolutions the incidents share.",
)
@click.option(
    "--seed", default=1, show_default=True, type=int, help="Seed of the corpus and queries."
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 600),
    help="Time limit of one HTTP request, in seconds.",
)
@click.option(
    "--articles",
    "articles_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="The sample articles to build from (default: KB_ARTICLES_DIR, ./articles).",
)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="Measure on this PostgreSQL database (it must be empty; its tables are emptied "
    "afterwards) instead of SQLite in the bench's home (default: $KB_DATABASE_URL).",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print what a run of DOCS incidents needs of this machine (disk, memory, time, from "
    "figures measured per incident) and stop. A run that would not fit stops with this "
    "estimate before it starts.",
)
@pass_app
@reports_errors
def bench(
    app: AppContext,
    as_json: bool,
    docs: int,
    queries: int,
    clients: int,
    seconds: float,
    workers: int | None,
    backend: str | None,
    keep: str | None,
    embed_all_below: int,
    resolutions: int,
    seed: int,
    timeout: float,
    articles_dir: str | None,
    database_url: str | None,
    plan_only: bool,
) -> None:
    """Speed and memory figures on a synthetic store of DOCS incidents.

    Builds a data home from the sample knowledge base, indexes it as `kb index` does, and
    measures embedding, index build, suggest latency in-process and over HTTP (a real
    `kb serve` on a free loopback port), memory, sizes, and a keyword-only (SQLite FTS5)
    baseline on the same queries. It stops by itself and removes its home and server,
    also on Ctrl-C. Other KB_* settings (threads, batch size, model) apply as usual.
    """
    from scripts.bench.run import BenchOptions, run_benchmark, server_workers

    options = BenchOptions(
        docs=docs,
        queries=queries,
        clients=clients,
        seconds=seconds,
        workers=workers,
        backend=backend,
        keep=Path(keep) if keep else None,
        embed_all_below=embed_all_below,
        resolutions=resolutions,
        seed=seed,
        timeout=timeout,
    )
    if articles_dir:
        options.articles_dir = Path(articles_dir)
    config = app.config.with_overrides(database_url=database_url)
    config.check_database_url()
    from scripts.bench.capacity import check, plan

    serving = server_workers(workers, config) if seconds > 0 else 0
    where = Path(keep) if keep else Path(tempfile.gettempdir())
    if plan_only:
        estimate = plan(docs, where, serving)
        if as_json:
            echo_json(estimate)
        else:
            click.echo(f"kb bench --docs {docs} on this machine ({serving} workers):")
            for line in estimate["lines"]:
                click.echo(f"  {line}")
        return
    if not database_url and not config.database_url:
        check(docs, where, serving)
    with _terminate_as_exit():
        result = run_benchmark(config, options, progress=terminal_progress())
    if as_json:
        echo_json(result)
    else:
        for line in describe(result):
            click.echo(line)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the bench's clean-up runs."""

    def leave(signum, _frame):
        sys.exit(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[sig] = signal.signal(sig, leave)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


RATIO_LABELS = {
    "suggest_p50_vs_fts_p50": ("suggest p50 / FTS5 keyword p50", "x"),
    "suggest_p95_vs_fts_p95": ("suggest p95 / FTS5 keyword p95", "x"),
    "suggest_p99_vs_fts_p99": ("suggest p99 / FTS5 keyword p99", "x"),
    "fts_qps_vs_suggest_qps": ("FTS5 keyword queries per second / suggest's", "x"),
    "query_embedding_p50_share_of_suggest_p50": (
        "query embedding p50 as a share of suggest p50",
        "%",
    ),
    "http_p95_vs_in_process_p95": ("suggest p95 over HTTP / in-process", "x"),
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _latency_row(label: str, figures: dict[str, Any] | None) -> str:
    if not figures:
        return f"  {label:<26} not measured"
    qps = f"{figures['qps']:>8.1f}" if figures.get("qps") is not None else f"{'-':>8}"
    return (
        f"  {label:<26} {_ms(figures['p50_ms']):>8} {_ms(figures['p95_ms']):>8} "
        f"{_ms(figures['p99_ms']):>8} {qps}"
    )


def _encoder_rows(encoders: dict[str, Any] | None) -> list[str]:
    if not encoders or len(encoders["docs_per_s"]) < 2:
        return []
    ratios = encoders.get("vs_torch_float32") or {}
    return [
        f"  encoders, best of {encoders.get('rounds', 1)} round(s): "
        + ", ".join(
            f"{name} {speed} docs/s"
            + (f" ({ratios[name]}x torch float32)" if name in ratios else "")
            for name, speed in encoders["docs_per_s"].items()
        )
    ]


def describe(result: dict[str, Any]) -> list[str]:
    """The figures as a readable table."""
    b, corpus, index, emb = result["bench"], result["corpus"], result["index"], result["embedding"]
    sizes, memory, http = result["sizes"], result["memory"], result["suggest"]["http"]
    mb = 2**20
    lines = [
        f"kb bench: {corpus['incidents']} incidents + {corpus['articles']} articles "
        f"({corpus['chunks']} chunks), backend {b['backend']} ({b['model_id']}), "
        f"{b['cpu_count']} cores, {b['threads']} thread(s) per process, load average "
        f"{b['load_average_start'][0]} -> {b['load_average_end'][0]}",
        f"vectors: {b['vectors_mode']} ({b['vectors_mode_note']})",
        "",
        f"embedding        {emb['throughput_docs_per_s']} docs/s ({emb['sample_texts']} texts of "
        f"{emb['mean_words']} words); one short query p50 "
        f"{_ms(emb['query']['p50_ms'])} ms, p95 {_ms(emb['query']['p95_ms'])} ms",
        *_encoder_rows(emb.get("encoders")),
        f"index build      {index['build_s']:.1f} s ({index['report']['texts_embedded']} texts embedded, "
        f"{index['report']['texts_cached']} from cache); {index['kind']} index of {index['vectors']} vectors"
        + (f", recall@10 {index['recall_at_10']}" if index.get("recall_at_10") is not None else ""),
        f"sizes            index {sizes['index_folder_bytes'] / mb:.1f} MB, database "
        f"{sizes['database_bytes'] / mb:.1f} MB ({b.get('engine', 'sqlite')}"
        + (
            f", + WAL {sizes['database_wal_bytes'] / mb:.1f} MB)"
            if b.get("engine", "sqlite") == "sqlite"
            else f" at {b.get('database')}; node lexical index {sizes.get('lexical_bytes', 0) / mb:.1f} MB)"
        ),
        "",
        f"  {'latency (ms)':<26} {'p50':>8} {'p95':>8} {'p99':>8} {'per s':>8}",
        _latency_row("suggest, in-process", result["suggest"]["in_process"]),
        _latency_row("FTS5 keywords, in-process", result["keyword_baseline"]["in_process"]),
        _latency_row(f"suggest, HTTP x{http['clients']}" if http else "suggest, HTTP", http),
    ]
    if http:
        kinds = f" {http['error_kinds']}" if http["error_kinds"] else ""
        lines.append(
            f"  HTTP: {http['requests']} requests in {http['seconds']} s, {http['errors']} errors"
            f"{kinds}, {http['workers']} workers (started in {http['server_start_s']} s)"
        )
    lines.append("")
    for name, value in result["ratios"].items():
        if value is not None:
            label, unit = RATIO_LABELS.get(name, (name.replace("_", " "), "x"))
            lines.append(f"{label}: {value * 100:.0f} %" if unit == "%" else f"{label}: {value}x")
    server = memory["server"]
    if server:
        workers = ", ".join(f"{w['peak_rss_mb']}" for w in server["workers"])
        before = memory.get("bench_before_http") or {}
        lines.append(
            f"peak RSS MB: server master {server['master_peak_rss_mb']}, workers [{workers}], "
            f"tree {server['tree_peak_rss_mb']}; bench process {memory['bench_peak_rss_mb']}"
            + (f" (RSS {before['rss_mb']} while the server ran)" if before else "")
        )
        ends = [w for w in server["workers"] if "end_pss_mb" in w]
        if ends:
            figures = "; ".join(
                f"RSS {w['end_rss_mb']}, PSS {w['end_pss_mb']}, unique {w['end_uss_mb']}, "
                f"shared {w['end_shared_mb']}"
                for w in ends
            )
            lines.append(f"per worker after the load, MB: {figures}")
    else:
        lines.append(f"peak RSS MB: bench process {memory['bench_peak_rss_mb']}")
    busiest = max(b["load_average_start"][0], b["load_average_end"][0])
    if b["cpu_count"] and busiest > b["cpu_count"]:
        lines.append(
            f"note: the machine was busy (load average up to {busiest} on {b['cpu_count']} "
            "cores): the timings are pessimistic"
        )
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["stages_s"].items())
    lines.append(f"stages (s): {stages}; total {result['total_s']:.1f}")
    return lines
