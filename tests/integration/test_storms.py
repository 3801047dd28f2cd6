"""Possible duplicates among open incidents, storms, and the storm webhook (a receiver on
loopback)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kb.app.service import Service
from kb.app.storms import StormWatcher, current_storms, deliver_due
from kb.errors import ConfigError

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines

SECRET = "storm-test-secret"


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(client, auth, records):
    response = client.post("/api/v1/incidents", json=records, headers=auth("integration"))
    assert response.status_code == 201, response.get_json()


def test_a_new_incident_is_told_of_open_incidents_it_may_duplicate(client, auth, indexed):
    _open(
        client,
        auth,
        [
            {
                "id": "OPEN-123",
                "title": "Badge reader at the loading dock rejects badges",
                "description": "loading dock badge reader flashes red and beeps twice",
                "status": "open",
                "product": "Facilities",
                "opened_at": _at(40),
            },
            {
                "id": "OPEN-9",
                "title": "Printer on floor 2 jams",
                "description": "paper jam again",
                "status": "open",
                "product": "Printing",
                "opened_at": _at(10),
            },
        ],
    )
    body = client.post(
        "/api/v1/suggest",
        json={
            "description": "loading dock badge reader flashes red and beeps",
            "filters": {"product": "Facilities"},
        },
        headers=auth(),
    ).get_json()
    [duplicate] = body["triage"]["duplicates"]
    assert duplicate["id"] == "OPEN-123" and duplicate["status"] == "open"
    assert duplicate["age"] == "40 minutes ago" and duplicate["product"] == "Facilities"
    other = client.post(
        "/api/v1/suggest",
        json={
            "description": "loading dock badge reader flashes red and beeps",
            "filters": {"product": "Printing"},
        },
        headers=auth(),
    ).get_json()
    assert other["triage"]["duplicates"] == []  # another product's incident is not its duplicate
    itself = client.post(
        "/api/v1/suggest", json={"incident_id": "OPEN-123"}, headers=auth()
    ).get_json()
    assert all(d["id"] != "OPEN-123" for d in itself["triage"]["duplicates"])


def _storm_records(count: int, minutes_apart: float = 3.0) -> list[dict]:
    return [
        {
            "id": f"STORM-{n}",
            "title": "Cannot log in to the payroll portal",
            "description": f"payroll portal login fails with error 503 for user {n}",
            "status": "open",
            "product": "Payroll",
            "opened_at": _at(50 - n * minutes_apart),
        }
        for n in range(count)
    ]


def test_many_alike_open_incidents_in_an_hour_are_a_storm(client, auth, indexed):
    _open(client, auth, _storm_records(9))
    _open(
        client,
        auth,
        [
            {
                "id": "CALM-1",
                "title": "Monitor flickers",
                "description": "monitor flickers",
                "status": "open",
                "opened_at": _at(5),
            }
        ],
    )
    assert (
        client.get("/api/v1/storms", headers=auth()).get_json()["storms"] == []
    )  # nine are not yet a storm
    _open(client, auth, _storm_records(10)[9:])
    indexed.suggester().open_incidents.current(indexed.store(), force=True)
    [storm] = client.get("/api/v1/storms", headers=auth()).get_json()["storms"]
    assert storm["size"] == 10 and storm["product"] == "Payroll"
    assert storm["first"]["id"] == "STORM-0" and storm["latest"]["id"] == "STORM-9"
    assert (
        storm["title"] == "Cannot log in to the payroll portal"
        and "CALM-1" not in storm["incidents"]
    )


class Receiver:
    """A webhook receiver on loopback: fails the first ``failures`` posts with 500, hangs
    while ``hang`` is set, records every post and whether its signature held."""

    def __init__(self, failures: int = 0):
        self.failures, self.posts, self.hang = failures, [], threading.Event()
        self.hanging, self.release = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if outer.hang.is_set():
                    outer.hanging.set()
                    outer.release.wait(20)
                status = 500 if outer.failures > 0 else 200
                outer.failures -= 1
                outer.posts.append(
                    (status, self.headers["X-KB-Signature"] == expected, json.loads(body))
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/storms"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def storm_service(indexed):
    config = indexed.config.with_overrides(webhook_url="", webhook_secret=SECRET)
    indexed.store().upsert_incidents([_incident(r) for r in _storm_records(10)])
    return indexed, config


def _incident(record):
    from kb.importers import incident_from_record

    return incident_from_record(record)


def _with_webhook(service: Service, url: str) -> Service:
    return Service(
        service.config.with_overrides(webhook_url=url, webhook_secret=SECRET),
        embedder=service.embedder(),
    )


def test_a_receiver_that_fails_then_recovers_gets_the_storm_exactly_once(storm_service):
    indexed, _ = storm_service
    receiver = Receiver(failures=2)
    workers = [_with_webhook(indexed, receiver.url) for _ in range(2)]  # two workers, one store
    try:
        for storm in current_storms(workers[0]):
            workers[0].store().record_storm(storm)
        moment = datetime.now(UTC)
        for step in range(8):  # time passes: the back-off (1 s, 2 s, ...) lets each retry go
            for worker in workers:
                deliver_due(worker, now=moment + timedelta(seconds=10 * step))
        statuses = [status for status, _, _ in receiver.posts]
        assert statuses == [500, 500, 200]
        assert all(signed for _, signed, _ in receiver.posts)
        payload = receiver.posts[-1][2]
        assert payload["event"] == "storm" and payload["storm"]["size"] == 10
        assert set(payload["storm"]) == {
            "id",
            "title",
            "size",
            "product",
            "first",
            "latest",
            "incidents",
        }
        assert "description" not in json.dumps(payload) and "user 3" not in json.dumps(payload)
    finally:
        receiver.close()
        for worker in workers:
            worker.close()


def test_a_hanging_receiver_never_holds_up_suggest(storm_service, client, auth):
    indexed, _ = storm_service
    receiver = Receiver()
    receiver.hang.set()
    worker = _with_webhook(indexed, receiver.url)
    watcher = StormWatcher(worker).start()
    try:
        assert receiver.hanging.wait(15)  # the watcher's post is stuck in the receiver now
        response = client.post(
            "/api/v1/suggest", json={"description": "payroll portal login fails"}, headers=auth()
        )
        assert response.status_code == 200 and receiver.hanging.is_set() and not receiver.posts
    finally:
        receiver.release.set()
        watcher.stop()
        receiver.close()
        worker.close()


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("ftp://hooks.example/storms", SECRET, "must be an http:// or https:// address"),
        ("file:///etc/passwd", SECRET, "must be an http:// or https:// address"),
        ("https://hooks.example/storms", "", "KB_WEBHOOK_SECRET is empty"),
    ],
)
def test_a_webhook_that_cannot_work_is_refused_at_start(indexed, url, secret, message):
    from web import create_app

    config = indexed.config.with_overrides(webhook_url=url, webhook_secret=secret)
    with pytest.raises(ConfigError, match=message):
        create_app({"TESTING": True}, config=config, service=indexed)
