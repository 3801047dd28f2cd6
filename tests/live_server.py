"""Helpers for the tests that run a real `kb serve` (scripts.live.LiveServer, the harness
`kb bench` uses too): a data home made with the real CLI, tokens, one-shot requests. The
hashing embedder keeps start-up short."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from scripts import live

DATA = Path(__file__).resolve().parent / "data"
free_port = live.free_port


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        KB_HOME=str(home), KB_EMBED_BACKEND="hashing", KB_THREADS="1", PYTHONUNBUFFERED="1", **extra
    )
    return env


def kb(home: Path, *args: str, **env: str) -> str:
    """Run a `kb` command in this process (the real CLI); returns its output."""
    from scripts.cli import cli

    result = CliRunner().invoke(
        cli, ["--home", str(home), *args], env=server_env(home, **env), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def prepare_home(home: Path, incidents: Path | None = None, database_url: str = "") -> None:
    """kb init, import the test articles and incidents, kb index (on a shared database
    when ``database_url`` is given)."""
    env = {"KB_DATABASE_URL": database_url} if database_url else {}
    kb(home, "init", **env)
    kb(home, "import", "articles", str(DATA / "articles"), **env)
    kb(home, "import", "incidents", str(incidents or DATA / "incidents.jsonl"), **env)
    kb(home, "index", **env)


def create_token(
    home: Path, role: str = "integration", name: str = "tests", database_url: str = ""
) -> str:
    env = {"KB_DATABASE_URL": database_url} if database_url else {}
    return kb(home, "tokens", "create", name, "--role", role, **env).strip()


class LiveServer(live.LiveServer):
    """The harness with the test environment: hashing embedder, one thread, ``env`` added."""

    def __init__(
        self,
        home: Path,
        *,
        workers: int = 2,
        port: int | None = None,
        log_path: Path | None = None,
        **env: str,
    ):
        super().__init__(
            home, env=server_env(Path(home), **env), workers=workers, port=port, log_path=log_path
        )


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
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


def health_by_worker(
    base_url: str, token: str, workers: int, *, seconds: float = 5.0, clients: int = 4
) -> dict[int, dict]:
    """The latest authenticated health answer of each worker, keyed by pid.

    A lone client's fresh connections may all be accepted by the same idle worker, so
    ``clients`` threads ask at once (a busy worker leaves the next connection to another)
    until ``workers`` pids have answered or ``seconds`` have passed.
    """
    seen: dict[int, dict] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def ask() -> None:
        while time.monotonic() < deadline:
            with lock:
                if len(seen) >= workers:
                    return
            status, body = request(base_url, "GET", "/api/v1/health", token=token)
            if status == 200:
                with lock:
                    seen[body["worker"]] = body

    threads = [threading.Thread(target=ask, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    return seen
