"""A real `kb serve` (gunicorn, several workers) in a subprocess, for tests that kill it.

The server runs in its own session, so ``kill()`` can SIGKILL the master and every worker
at once, as a crash or the OOM killer would. The hashing embedder keeps start-up short.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(home), KB_EMBED_BACKEND="hashing", KB_THREADS="1",
               PYTHONUNBUFFERED="1", **extra)
    return env


def kb(home: Path, *args: str, **env: str) -> str:
    """Run a `kb` command in this process (the real CLI); returns its output."""
    from scripts.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(home), *args], env=server_env(home, **env),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def prepare_home(home: Path, incidents: Path | None = None) -> None:
    """kb init, import the test articles and incidents, kb index."""
    kb(home, "init")
    kb(home, "import", "articles", str(DATA / "articles"))
    kb(home, "import", "incidents", str(incidents or DATA / "incidents.jsonl"))
    kb(home, "index")


def create_token(home: Path, role: str = "integration", name: str = "tests") -> str:
    return kb(home, "tokens", "create", name, "--role", role).strip()


class LiveServer:
    def __init__(self, home: Path, *, workers: int = 2, port: int | None = None,
                 log_path: Path | None = None, **env: str):
        self.home = Path(home)
        self.workers = workers
        self.port = port or free_port()
        self.env = server_env(self.home, **env)
        self.log_path = log_path or (self.home.parent / f"serve-{self.port}.log")
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        log = open(self.log_path, "ab")
        command = [sys.executable, "-m", "scripts.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers)]
        self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker has booted and health answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kb serve exited with {self.process.returncode}:\n{self.log_tail()}")
            if len(self.worker_pids()) >= self.workers:
                try:
                    status, _ = request(self.url, "GET", "/api/v1/health", timeout=5)
                except OSError:
                    status = 0
                if status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"kb serve did not become ready in {timeout} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        import psutil

        if self.process is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers die mid-request."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """A graceful stop (SIGTERM), falling back to kill."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def request(base_url: str, method: str, path: str, body: Any = None, *, token: str | None = None,
            timeout: float = 10.0) -> tuple[int, Any]:
    """One HTTP request on a fresh connection; returns (status, parsed JSON or text).

    Raises OSError (ConnectionError, TimeoutError, ...) or http.client.HTTPException when
    the server is down or goes away mid-request.
    """
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")
