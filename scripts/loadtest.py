"""A small, bounded load test for a running `kb serve`.

    python -m scripts.loadtest --url http://127.0.0.1:5000 --token $TOKEN --seconds 60 --clients 16 --json

Each client is a thread with its own keep-alive connection that, until the time is up,
asks for suggestions, records feedback on suggestions it got, and upserts incidents, in
the proportions of ``--mix``. Every request has a time limit, so nothing can hang the run.
The report gives latency percentiles per operation, status counts, errors, and the memory
(RSS) of each server worker at the start and the end. The exit status is 1 when any
request failed (5xx, timeout, dropped connection, or an unexpected 4xx).

The token needs a role that may upsert incidents (integration, knowledge_manager, admin)
when the mix includes them. Upserted incidents get ids starting with ``loadtest-``.
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click

OPERATIONS = ("suggest", "feedback", "incidents")
DEFAULT_MIX = "suggest=6,feedback=3,incidents=1"
WORDS = (
    "vpn disconnects every few minutes home wifi printer offline queue stuck mailbox full "
    "quota cannot send outlook crashes on start password expired reset locked account sso "
    "login loop redirect browser certificate warning laptop slow after update disk full "
    "backup failed restore file share access denied refund charged twice invoice missing "
    "license activation error install fails teams calls drop audio camera not detected"
).split()


@dataclass
class Sample:
    operation: str
    status: int  # 0: no HTTP answer
    seconds: float
    error: str = ""  # "timeout" | "connection" | "server" | "client" | ""


@dataclass
class ClientState:
    samples: list[Sample] = field(default_factory=list)
    open_suggestions: list[tuple[str, list[str]]] = field(default_factory=list)
    incidents: int = 0
    messages: list[str] = field(default_factory=list)


def parse_mix(text: str) -> dict[str, float]:
    """``suggest=6,feedback=3,incidents=1`` -> weights. Raises click.BadParameter."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in OPERATIONS:
            raise click.BadParameter(f"unknown operation {name!r}; use {', '.join(OPERATIONS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise click.BadParameter(f"{part!r}: expected NAME=WEIGHT") from None
        if weights[name] < 0:
            raise click.BadParameter(f"{part!r}: weights cannot be negative")
    if not any(weights.values()):
        raise click.BadParameter("at least one operation needs a positive weight")
    return weights


class LoadClient:
    def __init__(
        self,
        number: int,
        url: str,
        token: str,
        *,
        deadline: float,
        timeout: float,
        mix: dict[str, float],
        run_id: str,
        seed: int,
    ):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.number, self.token, self.deadline, self.timeout = number, token, deadline, timeout
        self.mix, self.run_id = mix, run_id
        self.rng = random.Random(seed)
        self.state = ClientState()
        self.conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        operations = [op for op in OPERATIONS if self.mix.get(op, 0) > 0]
        weights = [self.mix[op] for op in operations]
        while time.monotonic() < self.deadline:
            operation = self.rng.choices(operations, weights)[0]
            if operation == "feedback" and not self.state.open_suggestions:
                operation = "suggest"
            getattr(self, operation)()
        if self.conn is not None:
            self.conn.close()

    # --- operations --------------------------------------------------------------------

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def suggest(self) -> None:
        body = {"title": self._text(2, 6), "description": self._text(8, 60), "k": 5}
        status, answer = self._post("suggest", "/api/v1/suggest", body)
        if status == 200 and isinstance(answer, dict):
            ids = [r["id"] for r in answer.get("results", [])]
            self.state.open_suggestions.append((answer["suggestion_id"], ids))
            del self.state.open_suggestions[:-50]

    def feedback(self) -> None:
        suggestion_id, ids = self.state.open_suggestions.pop(
            self.rng.randrange(len(self.state.open_suggestions))
        )
        used = self.rng.choice(ids) if ids and self.rng.random() < 0.8 else None
        body = {
            "used": used,
            "outcome": "used" if used else "none_helped",
            "agent": f"loadtest-{self.number}",
        }
        self._post("feedback", f"/api/v1/suggestions/{suggestion_id}/feedback", body)

    def incidents(self) -> None:
        self.state.incidents += 1
        body = {
            "id": f"loadtest-{self.run_id}-{self.number}-{self.state.incidents}",
            "title": self._text(3, 8),
            "description": self._text(10, 80),
            "resolution": self._text(5, 20),
            "status": "resolved",
            "product": self.rng.choice(["mail", "network", "identity", "billing"]),
        }
        self._post("incidents", "/api/v1/incidents", body)

    # --- transport ---------------------------------------------------------------------

    def _send(self, path: str, body: dict) -> http.client.HTTPResponse:
        fresh = self.conn is None
        if fresh:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(
                "POST",
                self.prefix + path,
                body=json.dumps(body),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {self.token}",
                },
            )
            return self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if fresh:
                raise
            # The server closed an idle keep-alive connection: once more on a new one.
            self._drop_connection()
            return self._send(path, body)

    def _post(self, operation: str, path: str, body: dict) -> tuple[int, Any]:
        began = time.perf_counter()
        status, answer, error = 0, None, ""
        try:
            response = self._send(path, body)
            raw = response.read()
            status = response.status
            if response.will_close:
                self._drop_connection()
        except TimeoutError:
            error = "timeout"
            self._drop_connection()
        except (OSError, http.client.HTTPException) as exc:
            error = "connection"
            self._note(f"{operation}: {exc!r}")
            self._drop_connection()
        elapsed = time.perf_counter() - began
        if status:
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = raw[:200].decode("utf-8", "replace")
            expected = 201 if operation in ("feedback", "incidents") else 200
            if status >= 500:
                error = "server"
            elif status != expected:
                error = "client"
            if error:
                self._note(f"{operation}: HTTP {status} {str(answer)[:200]}")
        self.state.samples.append(Sample(operation, status, elapsed, error))
        return status, answer

    def _drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _note(self, message: str) -> None:
        if len(self.state.messages) < 20:
            self.state.messages.append(message)


# --- measuring the server ------------------------------------------------------------------


def server_processes(url: str, server_pid: int | None = None) -> list[Any]:
    """The server's worker processes (psutil), or [] when they cannot be found.

    With ``server_pid`` (gunicorn's master): its children. Otherwise the workers of the
    server listening on the URL's port.
    """
    import psutil

    try:
        if server_pid:
            master = psutil.Process(server_pid)
            return master.children() or [master]
        port = urlsplit(url).port or 80
        pids = {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        }
    except (psutil.Error, OSError):
        return []
    if not pids:
        return []
    try:
        # The listening socket is shared by gunicorn's master and its workers; whichever
        # of them is reported, the master is the one with children.
        listener = psutil.Process(min(pids))
        master = listener if listener.children() else listener.parent()
        return (master.children() if master else []) or [listener]
    except psutil.Error:
        return []


def rss_mb(processes: list[Any]) -> dict[int, float | None]:
    import psutil

    sizes: dict[int, float | None] = {}
    for process in processes:
        try:
            sizes[process.pid] = round(process.memory_info().rss / 2**20, 1)
        except psutil.Error:
            sizes[process.pid] = None
    return sizes


# --- the run -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def _latency(samples: list[Sample]) -> dict[str, float | None]:
    values = sorted(s.seconds * 1000 for s in samples if s.status)
    return {
        f"p{q}_ms": None if (v := percentile(values, q)) is None else round(v, 1)
        for q in (50, 95, 99)
    } | {"max_ms": round(values[-1], 1) if values else None}


def run_load(
    url: str,
    token: str,
    *,
    seconds: float = 60,
    clients: int = 16,
    timeout: float = 30,
    mix: dict[str, float] | None = None,
    server_pid: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run the load for ``seconds`` and return the report (see the module docstring)."""
    mix = mix or parse_mix(DEFAULT_MIX)
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    run_id = secrets.token_hex(3)
    processes = server_processes(url, server_pid)
    rss_start = rss_mb(processes)
    began = time.monotonic()
    deadline = began + seconds
    workers = [
        LoadClient(
            n, url, token, deadline=deadline, timeout=timeout, mix=mix, run_id=run_id, seed=seed + n
        )
        for n in range(clients)
    ]
    threads = [
        threading.Thread(target=w.run, name=f"load-{w.number}", daemon=True) for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request started just before the deadline may take up to its own time limit.
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + timeout + 5)
    hung = sum(thread.is_alive() for thread in threads)
    wall = time.monotonic() - began
    rss_end = rss_mb(processes)
    samples = [s for w in workers for s in w.state.samples]
    errors = Counter(s.error for s in samples if s.error)
    return {
        "url": url,
        "seconds": round(wall, 2),
        "clients": clients,
        "timeout_s": timeout,
        "mix": mix,
        "seed": seed,
        "requests": len(samples),
        "throughput_rps": round(len(samples) / wall, 1) if wall else 0.0,
        "statuses": dict(sorted(Counter(str(s.status) for s in samples).items())),
        "server_errors": errors["server"],
        "timeouts": errors["timeout"],
        "connection_errors": errors["connection"],
        "client_errors": errors["client"],
        "hung_clients": hung,
        "failed": sum(errors.values()) + hung,
        "latency": _latency(samples),
        "operations": {
            op: {
                "requests": len(picked),
                "failed": sum(1 for s in picked if s.error),
                **_latency(picked),
            }
            for op in OPERATIONS
            if (picked := [s for s in samples if s.operation == op])
        },
        "workers": [
            {"pid": pid, "rss_mb_start": rss_start[pid], "rss_mb_end": rss_end.get(pid)}
            for pid in rss_start
        ],
        "messages": [m for w in workers for m in w.state.messages][:20],
    }


def describe(report: dict[str, Any]) -> list[str]:
    lat = report["latency"]
    lines = [
        f"{report['requests']} requests in {report['seconds']} s from {report['clients']} clients "
        f"({report['throughput_rps']} per second); statuses {report['statuses']}",
        f"failed: {report['failed']} (5xx {report['server_errors']}, timeouts {report['timeouts']}, "
        f"connections {report['connection_errors']}, unexpected 4xx {report['client_errors']}, "
        f"hung clients {report['hung_clients']})",
        f"latency ms: p50 {lat['p50_ms']}  p95 {lat['p95_ms']}  p99 {lat['p99_ms']}  max {lat['max_ms']}",
    ]
    for op, stats in report["operations"].items():
        lines.append(
            f"  {op:<10} {stats['requests']:>6} requests, {stats['failed']} failed; "
            f"p50 {stats['p50_ms']}  p95 {stats['p95_ms']}  p99 {stats['p99_ms']} ms"
        )
    for worker in report["workers"]:
        lines.append(
            f"  worker {worker['pid']}: RSS {worker['rss_mb_start']} MB -> {worker['rss_mb_end']} MB"
        )
    lines += [f"  {m}" for m in report["messages"][:5]]
    return lines


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url", default="http://127.0.0.1:5000", show_default=True, help="The server's base URL."
)
@click.option(
    "--token",
    required=True,
    envvar="KB_LOADTEST_TOKEN",
    help="API token (or $KB_LOADTEST_TOKEN); role integration or above for upserts.",
)
@click.option(
    "--seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.5, 3600),
    help="How long to run.",
)
@click.option(
    "--clients",
    default=16,
    show_default=True,
    type=click.IntRange(1, 512),
    help="Concurrent clients (threads).",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 600),
    help="Time limit of one request, in seconds.",
)
@click.option(
    "--mix", default=DEFAULT_MIX, show_default=True, help="Relative weights of the operations."
)
@click.option(
    "--server-pid",
    type=int,
    default=None,
    help="PID of the gunicorn master, for worker memory (default: found by port).",
)
@click.option("--seed", type=int, default=None, help="Random seed, to repeat a run's choices.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def main(
    url: str,
    token: str,
    seconds: float,
    clients: int,
    timeout: float,
    mix: str,
    server_pid: int | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """Put a bounded mixed load on a running `kb serve` and report latency and errors."""
    report = run_load(
        url,
        token,
        seconds=seconds,
        clients=clients,
        timeout=timeout,
        mix=parse_mix(mix),
        server_pid=server_pid,
        seed=seed,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for line in describe(report):
            click.echo(line)
    sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
