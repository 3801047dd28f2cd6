"""The HTTP half of `kb bench`: a real `kb serve` (scripts.live), the memory of its
processes, and concurrent clients posting suggest requests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.live import LiveServer, RssSampler

WARMUP_REQUESTS = 3


@dataclass
class LoadResult:
    clients: int
    seconds: float
    timeout: float
    hung: int
    samples: list[tuple[float, str]] = field(default_factory=list)  # (ms, "ok" | error kind)
    messages: list[str] = field(default_factory=list)

    @property
    def outcomes(self) -> Counter:
        return Counter(outcome for _, outcome in self.samples)

    def answered_ms(self) -> list[float]:
        return [ms for ms, outcome in self.samples if outcome == "ok"]

    def to_dict(self) -> dict[str, Any]:
        """Counts and rates; the caller adds the latency summary of ``answered_ms()``."""
        outcomes = self.outcomes
        kinds = {k: v for k, v in sorted(outcomes.items()) if k != "ok"}
        if self.hung:
            kinds["hung"] = self.hung
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "timeout_s": self.timeout,
            "requests": len(self.samples),
            "ok": outcomes["ok"],
            "errors": len(self.samples) - outcomes["ok"] + self.hung,
            "error_kinds": kinds,
            "qps": round(outcomes["ok"] / self.seconds, 2) if self.seconds else 0.0,
            "messages": self.messages,
        }


@contextlib.contextmanager
def running_server(
    home: Path, *, workers: int, backend: str, timeout: float, database_url: str = ""
) -> Iterator[tuple[LiveServer, RssSampler, float]]:
    """`kb serve` on the bench's home (the test harness, scripts.live), with its memory
    sampled from the start; yields (server, sampler, seconds to ready) and stops both."""
    env = dict(os.environ, KB_EMBED_BACKEND=backend)
    if database_url:
        env["KB_DATABASE_URL"] = database_url
    server = LiveServer(home, env=env, workers=workers, log_path=home / "bench-serve.log")
    sampler = None
    try:
        began = time.monotonic()
        server.start(wait=False)
        sampler = RssSampler(server.process.pid).start()
        server.wait_ready(timeout)
        yield server, sampler, time.monotonic() - began
    finally:
        if sampler is not None:
            sampler.stop()
        server.stop()


def http_load(
    url: str,
    token: str,
    queries: list[tuple[str, str]],
    *,
    clients: int,
    seconds: float,
    timeout: float,
    advance: Callable[[int], None] = lambda n: None,
) -> LoadResult:
    """``clients`` threads, each with a keep-alive connection, post suggest requests for
    ``seconds``; every request has a time limit.

    Each client first sends a few untimed requests: a worker's first answers pay for lazy
    set-up that a running service has long behind it.
    """
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"title": t, "description": d, "k": 5}) for t, d in queries]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    results: list[list[tuple[float, str]]] = [[] for _ in range(clients)]
    messages: list[str] = []
    timed = threading.Event()

    def post(conn: http.client.HTTPConnection | None, body: str):
        if conn is None:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        start = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/suggest", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            outcome = "ok" if response.status == 200 else f"http_{response.status}"
            if outcome != "ok" and len(messages) < 10:
                messages.append(f"HTTP {response.status}: {raw[:200]!r}")
            keep = not response.will_close
        except TimeoutError:
            outcome, keep = "timeout", False
        except (OSError, http.client.HTTPException) as exc:
            outcome, keep = "connection", False
            if len(messages) < 10:
                messages.append(repr(exc))
        elapsed = (time.perf_counter() - start) * 1000
        if not keep:
            conn.close()
            conn = None
        return conn, elapsed, outcome

    warmed = threading.Semaphore(0)
    clock: dict[str, float] = {}

    def client(number: int) -> None:
        conn = None
        position = number * max(1, len(bodies) // clients)
        for step in range(WARMUP_REQUESTS):
            conn, _, _ = post(conn, bodies[(position + 7919 * step) % len(bodies)])
        warmed.release()
        timed.wait()
        while time.monotonic() < clock["deadline"]:
            conn, elapsed, outcome = post(conn, bodies[position % len(bodies)])
            position += 1
            results[number].append((elapsed, outcome))
        if conn is not None:
            conn.close()

    threads = [
        threading.Thread(target=client, args=(n,), name=f"bench-client-{n}", daemon=True)
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    warm_deadline = time.monotonic() + WARMUP_REQUESTS * timeout + 5
    for _ in threads:
        warmed.acquire(timeout=max(0.0, warm_deadline - time.monotonic()))
    began = time.monotonic()
    clock["deadline"] = began + seconds
    timed.set()
    while any(t.is_alive() for t in threads) and time.monotonic() < clock["deadline"] + timeout + 5:
        time.sleep(min(1.0, max(0.05, clock["deadline"] - time.monotonic())))
        advance(1)
    hung = sum(t.is_alive() for t in threads)
    wall = time.monotonic() - began
    return LoadResult(
        clients=clients,
        seconds=wall,
        timeout=timeout,
        hung=hung,
        samples=[s for per_client in results for s in list(per_client)],
        messages=messages,
    )
