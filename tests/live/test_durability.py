"""Acknowledged feedback survives kill -9 of the whole server.

A real `kb serve --workers 2` takes feedback from concurrent clients, each on its own
suggestion, while the test SIGKILLs the server's process group at random moments and starts
it again. Clients retry what was not acknowledged, and sometimes resend what was. At the
end the store must hold every acknowledged choice (acknowledged ⊆ present), each exactly
once (one row and one event per suggestion and agent), and no client may ever have seen a
5xx answer (such as "database is locked").

The default run does 3 rounds; `pytest -m slow` runs the long version (25 rounds).
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from kb.store import open_store
from tests.live_server import LiveServer, create_token, prepare_home, request

CLIENTS = 6
QUERIES = [
    ("VPN drops", "vpn disconnects every few minutes when working from home"),
    ("Mailbox full", "cannot send mail, mailbox quota exceeded"),
    ("SSO loop", "single sign-on keeps redirecting back to the login page"),
    ("Refund", "customer was charged twice and wants a refund"),
    ("Printer", "old printer driver prints garbage characters"),
]


@dataclass
class Ledger:
    """What one client saw. Each client has its own, so no locking is needed."""

    acknowledged: dict[tuple[str, str], dict] = field(default_factory=dict)
    suggestions: set[str] = field(default_factory=set)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    requests: int = 0
    no_answer: int = 0
    resent: int = 0


def feedback_client(
    number: int, url: str, token: str, stop: threading.Event, ledger: Ledger, seed: int
) -> None:
    rng = random.Random(seed)
    pending: tuple[str, dict] | None = None
    made = 0

    def call(method: str, path: str, body: dict):
        ledger.requests += 1
        try:
            status, answer = request(url, method, path, body, token=token, timeout=15)
        except (OSError, http.client.HTTPException):
            ledger.no_answer += 1
            time.sleep(0.05)  # the server is down or went away mid-request: retry
            return None, None
        if status >= 500:
            ledger.server_errors.append(f"{status} {path}: {answer}")
        return status, answer

    while not stop.is_set():
        if pending is None:
            title, description = rng.choice(QUERIES)
            status, answer = call(
                "POST", "/api/v1/suggest", {"title": title, "description": description, "k": 3}
            )
            if status is None:
                continue
            if status != 200:
                ledger.unexpected.append(f"suggest {status}: {answer}")
                continue
            ledger.suggestions.add(answer["suggestion_id"])
            results = answer["results"]
            used = (
                results[rng.randrange(len(results))]["id"]
                if results and rng.random() < 0.75
                else None
            )
            pending = (
                answer["suggestion_id"],
                {
                    "used": used,
                    "outcome": "used" if used else "none_helped",
                    "agent": f"agent-{number}-{made}",
                },
            )
            made += 1
        suggestion_id, payload = pending
        path = f"/api/v1/suggestions/{suggestion_id}/feedback"
        status, answer = call("POST", path, payload)
        if status is None:
            continue  # not acknowledged: send the same choice again
        if status != 201:
            ledger.unexpected.append(f"feedback {status}: {answer}")
            pending = None
            continue
        ledger.acknowledged[(suggestion_id, payload["agent"])] = payload
        pending = None
        if rng.random() < 0.2:  # a duplicate delivery of an acknowledged choice
            ledger.resent += 1
            status, answer = call("POST", path, payload)
            if status is not None and (status != 201 or answer["status"] != "unchanged"):
                ledger.unexpected.append(f"resent feedback {status}: {answer}")


def run_kill_rounds(home, rounds: int, seed: int) -> dict:
    """Feedback traffic with kill -9 of the server at random moments; returns the tallies."""
    rng = random.Random(seed)
    token = create_token(home, "integration")
    server = LiveServer(home, workers=2)
    stop = threading.Event()
    ledgers = [Ledger() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(
            target=feedback_client,
            daemon=True,
            args=(n, server.url, token, stop, ledgers[n], seed * 100 + n),
        )
        for n in range(CLIENTS)
    ]
    kills = 0
    try:
        for round_number in range(rounds):
            server.start()
            if round_number == 0:
                for thread in threads:
                    thread.start()
            time.sleep(rng.uniform(0.3, 2.0))
            server.kill()
            kills += 1
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client hung"
        # The server comes back after the last kill and answers.
        server.start()
        status, health = request(server.url, "GET", "/api/v1/health")
        assert status == 200, health
    finally:
        stop.set()
        server.kill()
    log = server.log_path.read_text(errors="replace")
    return {"kills": kills, "ledgers": ledgers, "log": log}


def check_store(home, tallies: dict, seed: int, database_url: str = "") -> dict:
    ledgers: list[Ledger] = tallies["ledgers"]
    acknowledged = {
        key: payload for ledger in ledgers for key, payload in ledger.acknowledged.items()
    }
    suggestions = set().union(*(ledger.suggestions for ledger in ledgers))
    errors = [e for ledger in ledgers for e in ledger.server_errors]
    unexpected = [e for ledger in ledgers for e in ledger.unexpected]
    context = f"(seed {seed})"
    assert not errors, f"clients saw server errors {context}: {errors[:5]}"
    assert not unexpected, f"unexpected answers {context}: {unexpected[:5]}"
    assert "database is locked" not in tallies["log"]
    assert acknowledged, f"no feedback was acknowledged at all {context}"

    with open_store(home, create=False, database_url=database_url) as store:
        assert store.integrity_problems() == []
        rows = list(store.db.query("SELECT suggestion_id, agent, outcome, used_id FROM feedback"))
        events = list(
            store.db.query(
                "SELECT suggestion_id, agent, count(*) AS n FROM feedback_events GROUP BY 1, 2"
            )
        )
        present_suggestions = {r["id"] for r in store.db.query("SELECT id FROM suggestions")}
    present = {(r["suggestion_id"], r["agent"]): r for r in rows}
    missing = [key for key in acknowledged if key not in present]
    assert not missing, f"{len(missing)} acknowledged choices were lost {context}: {missing[:5]}"
    for key, payload in acknowledged.items():
        row = present[key]
        assert (row["outcome"], row["used_id"]) == (payload["outcome"], payload["used"]), key
    assert len(rows) == len(present), "a (suggestion, agent) pair has two rows"
    twice = [e for e in events if e["n"] != 1]
    assert not twice, f"choices recorded more than once {context}: {twice[:5]}"
    assert suggestions <= present_suggestions, "an acknowledged suggestion was lost"
    return {
        "kills": tallies["kills"],
        "requests": sum(ledger.requests for ledger in ledgers),
        "no_answer": sum(ledger.no_answer for ledger in ledgers),
        "resent": sum(ledger.resent for ledger in ledgers),
        "acknowledged": len(acknowledged),
        "present": len(rows),
        "suggestions_acknowledged": len(suggestions),
        "server_errors": len(errors),
    }


@pytest.fixture
def served_home(tmp_path):
    home = tmp_path / "home"
    prepare_home(home)
    return home


def _seed() -> int:
    return int(os.environ.get("KB_TEST_SEED") or random.SystemRandom().randrange(1_000_000))


def test_acknowledged_feedback_survives_kill_9(served_home):
    seed = _seed()
    summary = check_store(served_home, run_kill_rounds(served_home, rounds=3, seed=seed), seed)
    print(f"\nkill -9 durability (seed {seed}): {summary}")
    assert summary["kills"] == 3


@pytest.mark.slow
def test_acknowledged_feedback_survives_many_kill_9(served_home):
    seed = _seed()
    rounds = int(os.environ.get("KB_TEST_KILL_ROUNDS", "25"))
    summary = check_store(served_home, run_kill_rounds(served_home, rounds=rounds, seed=seed), seed)
    print(f"\nkill -9 durability, long (seed {seed}): {summary}")
    assert summary["kills"] == rounds
