"""A real `kb serve` in a subprocess on a free loopback port, and the memory of its
processes: the harness `kb bench` measures with and the live tests run against.

The server runs in its own session (process group), so ``kill()`` can SIGKILL the master
and every worker at once, as a crash or the OOM killer would, and ``stop()`` ends them all
even when workers outlive their master. It runs the installed package
(``python -m scripts.cli``), from any folder.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kb.errors import KBError

RSS_INTERVAL_S = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerError(KBError):
    """The server exited or did not become ready; the message ends with its log's tail."""


class LiveServer:
    """`kb serve --workers N` against one data home, with ``env`` as its whole environment."""

    def __init__(
        self,
        home: Path,
        *,
        env: dict[str, str],
        workers: int = 2,
        port: int | None = None,
        log_path: Path | None = None,
    ):
        self.home = Path(home)
        self.workers = workers
        self.port = port or free_port()
        self.env = dict(env, KB_HOME=str(self.home), PYTHONUNBUFFERED="1")
        self.log_path = log_path or (self.home.parent / f"serve-{self.port}.log")
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> float:
        """Start it; with ``wait``, until every worker is up and health answers 200.
        Returns the seconds that took. Raises ServerError."""
        command = [
            sys.executable,
            "-m",
            "scripts.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return time.monotonic() - began

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"kb serve exited with status {self.process.returncode}:\n{self.log_tail()}"
                )
            if len(self.worker_pids()) >= self.workers and self.healthy():
                return
            time.sleep(0.05)
        raise ServerError(f"kb serve was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/v1/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def worker_pids(self) -> list[int]:
        import psutil

        if self.process is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.Error:
            return []

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers die mid-request."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever lingers. Safe to call twice."""
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
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


class RssSampler:
    """Samples the RSS of a process and its descendants every ``interval`` seconds and
    keeps each process's peak and the peak of their sum."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL_S):
        self.pid, self.interval = pid, interval
        self.peaks: dict[int, int] = {}
        self.tree_peak = 0
        self.samples = 0
        self.settled: dict[int, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _processes(self) -> list:
        import psutil

        try:
            master = psutil.Process(self.pid)
            return [master, *master.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        import psutil

        processes = self._processes()
        if not processes:
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

    def settle(self) -> None:
        """Record, once, each process's memory split by sharing (from /proc/PID/smaps):
        resident, proportional (shared pages divided among the processes that map them),
        unique (freed if the process ended) and shared file pages, as the load left them."""
        import psutil

        self.sample()
        for process in self._processes():
            try:
                info = process.memory_full_info()
            except psutil.Error:
                continue
            self.settled[process.pid] = {
                "rss": info.rss,
                "pss": info.pss,
                "uss": info.uss,
                "shared": info.shared,
            }

    def report(self) -> dict[str, Any]:
        mb = 2**20
        return {
            "master_peak_rss_mb": round(self.peaks.get(self.pid, 0) / mb, 1),
            "workers": [
                {
                    "pid": pid,
                    "peak_rss_mb": round(rss / mb, 1),
                    **{
                        f"end_{name}_mb": round(value / mb, 1)
                        for name, value in self.settled.get(pid, {}).items()
                    },
                }
                for pid, rss in sorted(self.peaks.items())
                if pid != self.pid
            ],
            "master_end_pss_mb": round(self.settled[self.pid]["pss"] / mb, 1)
            if self.pid in self.settled
            else None,
            "tree_peak_rss_mb": round(self.tree_peak / mb, 1),
            "samples": self.samples,
            "interval_s": self.interval,
        }
