"""Latency of POST /api/v1/suggest over HTTP for the incidents of a query file.

    python -m scripts.suggest_latency --home H --queries Q.jsonl [--min-words 80]

Starts ``kb serve`` on a free loopback port for the data home H (which must be indexed),
creates an integration token, sends each query of at least ``--min-words`` words once,
one at a time (after a few warm-up requests), prints p50 / p95 / p99, and stops the
server. At most ``--limit`` queries are sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
import numpy as np

from kb.app.evaluation import read_labelled_queries
from scripts.live import LiveServer

WARM_UP = 10


def _request(url: str, token: str, text: str, timeout: float) -> float:
    body = json.dumps({"description": text, "k": 5}).encode("utf-8")
    request = urllib.request.Request(
        url, body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
    return (time.perf_counter() - began) * 1000


@click.command()
@click.option(
    "--home",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="An indexed data home.",
)
@click.option(
    "--queries",
    "queries_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help='JSONL of {"text": ...} lines (kb eval\'s format).',
)
@click.option(
    "--min-words",
    default=80,
    show_default=True,
    type=click.IntRange(0),
    help="Only texts this long.",
)
@click.option(
    "--limit",
    default=200,
    show_default=True,
    type=click.IntRange(1, 5000),
    help="At most this many requests.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 16),
    help="kb serve --workers (default: one per core).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(
    home: str, queries_file: str, min_words: int, limit: int, workers: int | None, as_json: bool
) -> None:
    """p50/p95/p99 of suggest over HTTP against a real kb serve, one request at a time."""
    texts = [
        q.text for q in read_labelled_queries(queries_file) if len(q.text.split()) >= min_words
    ][:limit]
    if not texts:
        raise click.ClickException(f"no query of {min_words} words or more in {queries_file}")
    kb = str(Path(sys.executable).parent / "kb")
    env = dict(os.environ, KB_HOME=str(Path(home).resolve()))
    made = subprocess.run(
        [kb, "tokens", "create", f"latency-{int(time.time())}", "--role", "integration"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip().split()[-1]
    server = LiveServer(Path(home).resolve(), env=env, workers=workers or (os.cpu_count() or 1))
    base = f"{server.url}/api/v1"
    try:
        server.start(timeout=120)
        for text in texts[:WARM_UP]:
            _request(f"{base}/suggest", token, text, 30)
        with click.progressbar(texts, label="suggest", file=sys.stderr) as bar:
            latencies = np.array([_request(f"{base}/suggest", token, text, 30) for text in bar])
    finally:
        server.stop()
    figures = {
        "requests": len(latencies),
        "min_words": min_words,
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        **{f"p{p}_ms": round(float(np.percentile(latencies, p)), 1) for p in (50, 95, 99)},
    }
    if as_json:
        click.echo(json.dumps(figures))
    else:
        click.echo(
            f"{figures['requests']} requests of >= {min_words} words (mean {figures['mean_words']}): "
            f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms"
        )


if __name__ == "__main__":
    main()
