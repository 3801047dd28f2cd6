"""New knowledge without downtime, against a real multi-worker `kb serve`.

- An incident posted to one worker is searchable on every worker within one second.
- `kb index` publishing a new version is picked up by running workers without a restart
  and without a failed request.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.live_server import LiveServer, create_token, health_by_worker, kb, prepare_home, request


@pytest.fixture
def live(tmp_path):
    home = tmp_path / "home"
    prepare_home(home)
    token = create_token(home)
    with LiveServer(home, workers=2) as server:
        yield server, token


def suggest(server, token, text):
    status, body = request(
        server.url, "POST", "/api/v1/suggest", {"description": text, "k": 3}, token=token
    )
    assert status == 200, body
    return body


def test_posted_incident_is_searchable_on_every_worker_within_a_second(live):
    server, token = live
    before = health_by_worker(server.url, token, 2)
    assert len(before) == 2, before
    (documents,) = {h["documents"] for h in before.values()}
    incident = {
        "id": "LIVE-1",
        "title": "badge reader rejects my badge at the loading dock",
        "description": "loading dock badge reader flashes red and beeps twice",
        "resolution": "Re-encoded the badge for the dock door group.",
        "status": "resolved",
    }
    status, _ = request(server.url, "POST", "/api/v1/incidents", incident, token=token)
    assert status == 201
    posted = time.monotonic()
    time.sleep(0.6)
    answers = [suggest(server, token, "loading dock badge reader flashes red") for _ in range(20)]
    assert all(a["results"] and a["results"][0]["id"] == "LIVE-1" for a in answers)
    # Each worker, reached through concurrent connections, holds the new incident.
    after = health_by_worker(server.url, token, 2)
    assert time.monotonic() - posted < 2.0  # the requests themselves took well under a second
    assert set(after) == set(before), (before, after)
    assert all(h["documents"] == documents + 1 for h in after.values()), after


def test_workers_pick_up_a_new_index_version_without_failed_requests(live, tmp_path):
    server, token = live
    _, before = request(server.url, "GET", "/api/v1/health", token=token)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, body = request(
                    server.url,
                    "POST",
                    "/api/v1/suggest",
                    {"description": "vpn keeps dropping at home"},
                    token=token,
                )
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status} {body}")
            else:
                answered[0] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        kb(server.home, "index", "--rebuild")
        published = kb(server.home, "index", "--json")
        target = published.split('"version": "')[1].split('"')[0]
        deadline = time.monotonic() + 20
        loaded: dict[int, str] = {}
        while time.monotonic() < deadline:
            _, health = request(server.url, "GET", "/api/v1/health", token=token)
            loaded[health["worker"]] = health["index_version"]
            if len(loaded) == 2 and set(loaded.values()) == {target}:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert target != before["index_version"]
    assert set(loaded.values()) == {target}, loaded  # both workers serve the new version
    assert failures == []
    assert answered[0] > 0
    assert server.process.poll() is None and len(server.worker_pids()) == 2


def test_a_413_does_not_break_the_next_request_on_the_same_connection(live):
    import http.client
    import json
    from urllib.parse import urlsplit

    server, token = live
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        oversized = json.dumps({"description": "x" * 3_000_000}).encode()
        connection.request("POST", "/api/v1/suggest", body=oversized, headers=headers)
        first = connection.getresponse()
        assert first.status == 413 and json.loads(first.read())["error"]["code"] == "body_too_large"
        # The same client goes on: it reconnects because the server said it would close.
        connection.request(
            "POST",
            "/api/v1/suggest",
            body=json.dumps({"description": "vpn drops"}),
            headers=headers,
        )
        second = connection.getresponse()
        assert second.status == 200, second.read()
    finally:
        connection.close()
