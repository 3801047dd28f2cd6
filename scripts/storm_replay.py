"""A storm injected into a normal stream of open incidents, in real time: how long from the
burst's first incident to the webhook post?

A loopback receiver stands in for the desk's chat or paging tool. Normal requests (one every
``--every`` seconds, drawn from a labelled query file) keep arriving; after ``--calm``
seconds a burst of alike incidents (``--burst`` of them, one every ``--burst-every`` s)
starts. The storm watcher runs as it does in a `kb serve` worker.

    python -m scripts.storm_replay --home /tmp/storm-home --queries /tmp/dev/b77/dev.jsonl

Use a new home for each run: the incidents of an earlier run are still open in it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

from kb.app.service import Service
from kb.app.storms import StormWatcher
from kb.config import load_config
from kb.models import Incident

BURST_TEMPLATES = (
    "Payroll portal login fails with error 503 since this morning",
    "cannot sign in to the payroll portal, it says 503 service unavailable",
    "payroll portal gives 503 when I try to log in",
    "Error 503 on the payroll portal login page",
)


@click.command()
@click.option(
    "--home", required=True, type=click.Path(file_okay=False), help="A data home (created if new)."
)
@click.option(
    "--queries",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help='JSONL with a "text" per line: the normal stream.',
)
@click.option("--every", default=0.3, show_default=True, help="Seconds between normal incidents.")
@click.option(
    "--calm", default=5.0, show_default=True, help="Seconds of normal stream before the burst."
)
@click.option("--burst", default=12, show_default=True, help="Incidents in the burst.")
@click.option(
    "--burst-every", default=0.5, show_default=True, help="Seconds between burst incidents."
)
@click.option("--seed", default=3, show_default=True)
def main(
    home: str, queries: str, every: float, calm: float, burst: int, burst_every: float, seed: int
) -> None:
    rng = random.Random(seed)
    normal = [
        json.loads(line)["text"] for line in Path(queries).read_text().split("\n") if line.strip()
    ]
    received: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = load_config(
        home=home,
        webhook_url=f"http://127.0.0.1:{server.server_port}/storm",
        webhook_secret="replay",
    )
    service = Service(config)
    store = service.store()
    service.suggester().open_incidents.current(
        store, force=True
    )  # the model loads before the clock runs
    watcher = StormWatcher(service).start()
    began = time.monotonic()
    burst_start = None
    sent_burst = 0
    counter = 0
    try:
        next_normal = next_burst = began
        while time.monotonic() - began < calm + burst * burst_every + 15 and not received:
            now = time.monotonic()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if now >= next_normal:
                counter += 1
                store.upsert_incidents(
                    [
                        Incident(
                            id=f"N-{seed}-{counter}",
                            title="",
                            description=rng.choice(normal),
                            status="open",
                            opened_at=stamp,
                        )
                    ]
                )
                next_normal = now + every
            if now - began >= calm and sent_burst < burst and now >= next_burst:
                burst_start = burst_start or now
                sent_burst += 1
                store.upsert_incidents(
                    [
                        Incident(
                            id=f"B-{seed}-{sent_burst}",
                            title="Payroll portal",
                            description=f"{rng.choice(BURST_TEMPLATES)} (user {sent_burst})",
                            status="open",
                            opened_at=stamp,
                            product="Payroll",
                        )
                    ]
                )
                next_burst = now + burst_every
            time.sleep(0.02)
    finally:
        watcher.stop()
        server.shutdown()
        server.server_close()
        service.close()
    if not received or burst_start is None:
        click.echo(f"no webhook post ({sent_burst} burst incidents sent, {counter} normal)")
        return
    tenth = (config.storm_min_size - 1) * burst_every
    click.echo(
        f"{counter} normal and {sent_burst} burst incidents; webhook {received[0] - burst_start:.1f} s after "
        f"the burst's first incident (the {config.storm_min_size}th arrived at {tenth:.1f} s)"
    )


if __name__ == "__main__":
    main()
