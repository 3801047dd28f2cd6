"""The HTTP half of `kb bench`: a real `kb serve` in its own process group, the memory of
its processes, and concurrent clients posting suggest requests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import KBError

REPO_ROOT = Path(__file__).resolve().parent.parent
RSS_INTERVAL_S = 0.5
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
            "clients": self.clients, "seconds": round(self.seconds, 2), "timeout_s": self.timeout,
            "requests": len(self.samples), "ok": outcomes["ok"],
            "errors": len(self.samples) - outcomes["ok"] + self.hung, "error_kinds": kinds,
            "qps": round(outcomes["ok"] / self.seconds, 2) if self.seconds else 0.0,
            "messages": self.messages,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



class RssSampler:
    """Samples the RSS of a process and its descendants every ``interval`` seconds and
    keeps each process's peak and the peak of their sum."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL_S):
        self.pid, self.interval = pid, interval
        self.peaks: dict[int, int] = {}
        self.tree_peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        import psutil

        try:
            master = psutil.Process(self.pid)
            processes = [master, *master.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            self.peaks[process.pid] = max(self.peaks.get(process.pid, 0), rss)
            total += rss
        self.tree_peak = max(self.tree_peak, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def report(self) -> dict[str, Any]:
        mb = 2**20
        return {
            "master_peak_rss_mb": round(self.peaks.get(self.pid, 0) / mb, 1),
            "workers": [{"pid": pid, "peak_rss_mb": round(rss / mb, 1)}
                        for pid, rss in sorted(self.peaks.items()) if pid != self.pid],
            "tree_peak_rss_mb": round(self.tree_peak / mb, 1),
            "samples": self.samples, "interval_s": self.interval,
        }


class BenchServer:
    """`kb serve` in its own process group on a free loopback port, against one home."""

    def __init__(self, home: Path, *, workers: int, backend: str, log_path: Path):
        self.home, self.workers, self.backend, self.log_path = home, workers, backend, log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.sampler: RssSampler | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float) -> float:
        """Start and wait until every worker is up and health answers 200; returns seconds.

        Raises KBError when the server exits or is not ready in time (with its log's tail).
        """
        env = dict(os.environ, KB_HOME=str(self.home), KB_EMBED_BACKEND=self.backend,
                   PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "scripts.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers)]
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.sampler = RssSampler(self.process.pid).start()
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise KBError(f"kb serve exited with status {self.process.returncode}: {self.log_tail()}")
            if len(self._children()) >= self.workers and self._healthy():
                return time.monotonic() - began
            time.sleep(0.1)
        raise KBError(f"kb serve was not ready after {timeout:.0f} s: {self.log_tail()}")

    def _children(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.Error:
            return []

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/api/v1/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM the whole process group, then SIGKILL if it lingers. Safe to call twice."""
        if self.sampler is not None:
            self.sampler.stop()
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers that outlived their master (they share its process group).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@contextlib.contextmanager
def running_server(home: Path, *, workers: int, backend: str, timeout: float) -> Iterator[tuple[BenchServer, float]]:
    server = BenchServer(home, workers=workers, backend=backend, log_path=home / "bench-serve.log")
    try:
        started = server.start(timeout)
        yield server, started
    finally:
        server.stop()


def http_load(url: str, token: str, queries: list[tuple[str, str]], *, clients: int,
              seconds: float, timeout: float, advance: Callable[[int], None] = lambda n: None
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

    threads = [threading.Thread(target=client, args=(n,), name=f"bench-client-{n}", daemon=True)
               for n in range(clients)]
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
    return LoadResult(clients=clients, seconds=wall, timeout=timeout, hung=hung,
                      samples=[s for per_client in results for s in list(per_client)],
                      messages=messages)
