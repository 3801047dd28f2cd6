"""Back into the ticket: the resolution note an agent copies, and the signed events a ticket
system receives when an agent uses a result or says none helped (a receiver on loopback)."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from kb.app.outcomes import EventSender, deliver_due_events
from kb.app.service import Service
from kb.app.storms import WebhookError, post
from kb.errors import ConfigError
from tests.helpers import TicketReceiver

pytestmark = pytest.mark.both_engines

SECRET = "events-test-secret"
QUERY = {
    "title": "VPN keeps disconnecting",
    "description": "the vpn drops every few minutes on wifi",
    "incident_id": "INC-777",
}


@pytest.fixture
def receiver():
    r = TicketReceiver(SECRET)
    yield r
    r.close()


@pytest.fixture
def make_app(indexed):
    """(app, service) with these settings over the indexed test store; closed afterwards."""
    from web import create_app

    services = []

    def make(**settings):
        config = indexed.config.with_overrides(events_secret=SECRET, **settings)
        service = Service(config, embedder=indexed.embedder())
        services.append(service)
        return create_app({"TESTING": True}, config=config, service=service), service

    yield make
    for service in services:
        service.close()


def _suggest_and_use(client, auth, rank: int = 0, role: str = "integration"):
    body = client.post("/api/v1/suggest", json=QUERY, headers=auth(role)).get_json()
    chosen = body["results"][rank]
    response = client.post(
        f"/api/v1/suggestions/{body['suggestion_id']}/feedback",
        json={"used": chosen["id"], "agent": "ana"},
        headers=auth(role),
    )
    assert response.status_code == 201, response.get_json()
    return body, chosen, response.get_json()


def test_used_this_answers_the_resolution_note_each_result_carries(client, auth, indexed):
    body, chosen, answer = _suggest_and_use(client, auth)
    note = chosen["resolution_note"]
    assert answer["resolution_note"] == note
    link = "http://localhost/" + chosen["url"].lstrip("/")
    assert f"({link})" in note and f'"{chosen["title"]}"' in note
    assert chosen["resolution"].strip() in note
    assert note.startswith(
        "Resolved with the knowledge article"
        if chosen["kind"] == "article"
        else f"Resolved as in the earlier incident {chosen['id']}"
    )
    kinds = {r["kind"] for r in body["results"]}
    for result in body["results"]:
        assert result["resolution_note"].count("(http://localhost/") == 1
    assert kinds  # every result carries a note, whatever its kind
    none = client.post(
        f"/api/v1/suggestions/{body['suggestion_id']}/feedback",
        json={"used": None, "outcome": "none_helped", "agent": "ana"},
        headers=auth("integration"),
    )
    assert none.get_json()["resolution_note"] == ""


def test_the_public_address_is_used_for_links(make_app, auth, tokens):
    app, _ = make_app(public_url="https://kb.example.com/")
    client = app.test_client()
    _, chosen, answer = _suggest_and_use(client, auth)
    assert f"(https://kb.example.com{chosen['url']})" in answer["resolution_note"]


def test_an_incident_result_names_the_incident_it_came_from(indexed, store):
    from kb.app.outcomes import note_for

    incident = next(i for i in store.iter_incidents() if i.resolution)
    title, note = note_for(store, "incident", incident.id, "https://kb.example.com")
    assert title == incident.title
    assert note.startswith(
        f'Resolved as in the earlier incident {incident.id} "{incident.title}" '
        f"(https://kb.example.com/incidents/{incident.id})."
    )
    assert note.endswith("Steps:\n" + incident.resolution.strip())


def test_choices_reach_the_ticket_system_signed_once_each(make_app, auth, tokens, receiver):
    app, service = make_app(events_url=receiver.url)
    client = app.test_client()
    body, chosen, answer = _suggest_and_use(client, auth)
    sid = body["suggestion_id"]
    again = client.post(
        f"/api/v1/suggestions/{sid}/feedback",
        json={"used": chosen["id"], "agent": "ana"},
        headers=auth("integration"),
    )
    assert again.get_json()["status"] == "unchanged"
    assert receiver.posts == []  # nothing is posted on the request's thread
    assert deliver_due_events(service) == 1
    none = client.post(
        f"/api/v1/suggestions/{sid}/feedback",
        json={"outcome": "none_helped", "agent": "ana"},
        headers=auth("integration"),
    )
    assert none.get_json()["status"] == "changed"
    assert deliver_due_events(service) == 1
    assert deliver_due_events(service) == 0  # each event once
    (a1, signed1, headers1, used), (a2, signed2, headers2, none_helped) = receiver.posts
    assert signed1 and signed2
    assert headers1["X-KB-Event"] == "resolution_used" and headers2["X-KB-Event"] == "none_helped"
    assert (
        used["event"] == "resolution_used"
        and used["incident_id"] == "INC-777"
        and used["agent"] == "ana"
    )
    assert used["suggestion_id"] == sid and used["event_id"] == headers1["X-KB-Event-Id"]
    assert used["result"]["id"] == chosen["id"] and used["result"]["kind"] == chosen["kind"]
    assert used["result"]["url"] == "http://localhost" + chosen["url"]
    assert used["resolution_note"] == answer["resolution_note"]
    assert none_helped["event"] == "none_helped" and none_helped["result"] is None
    assert none_helped["change"] == "changed" and none_helped["resolution_note"] == ""


def test_the_page_form_sends_the_event_too(make_app, receiver):
    app, service = make_app(events_url=receiver.url)
    client = app.test_client()
    service.store().create_user("ana", "agent", "agent-password-1")

    def csrf(path):
        page = client.get(path).get_data(as_text=True)
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    client.post(
        "/login", data={"name": "ana", "password": "agent-password-1", "csrf_token": csrf("/login")}
    )
    token = csrf("/")
    shown = client.post("/", data={**QUERY, "csrf_token": token})
    sid = shown.headers["Location"].split("sid=")[1]
    first = service.store().get_suggestion(sid)["results"][0]["id"]
    shown_again = client.post(
        "/feedback",
        data={"suggestion_id": sid, "used": first, "csrf_token": token, "back": f"/?sid={sid}"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert deliver_due_events(service) == 1
    [(_, signed, _, payload)] = receiver.posts
    assert signed and payload["agent"] == "ana" and payload["result"]["id"] == first
    # Without JavaScript the page shows the same note, to copy by hand.
    assert "Resolution note for the ticket" in shown_again
    assert payload["resolution_note"] in html.unescape(shown_again)


def test_no_events_are_queued_without_a_receiver(client, auth, indexed):
    _suggest_and_use(client, auth)
    assert indexed.store().outgoing_events() == []


def test_a_failing_receiver_is_retried_with_back_off_until_it_takes_the_event(
    make_app, auth, tokens
):
    receiver = TicketReceiver(SECRET, ["fail", "fail"])
    try:
        app, service = make_app(events_url=receiver.url)
        _suggest_and_use(app.test_client(), auth)
        now = datetime.now(UTC)
        assert deliver_due_events(service, now=now) == 0
        assert deliver_due_events(service, now=now) == 0  # not due again yet: back-off
        assert len(receiver.posts) == 1
        assert deliver_due_events(service, now=now + timedelta(seconds=1.5)) == 0
        assert (
            deliver_due_events(service, now=now + timedelta(seconds=2.5)) == 0
        )  # 1 s after the first failure, then 2 s after the second
        assert deliver_due_events(service, now=now + timedelta(seconds=10)) == 1
        assert [p[0] for p in receiver.posts] == ["fail", "fail", "ok"]
        [event] = service.store().outgoing_events()
        assert event["delivered_at"] and event["attempts"] == 2 and "503" in event["last_error"]
    finally:
        receiver.close()


def test_a_redirect_is_a_failure_and_never_followed(make_app, auth, tokens):
    receiver = TicketReceiver(SECRET, ["redirect"])
    try:
        app, service = make_app(events_url=receiver.url)
        _suggest_and_use(app.test_client(), auth)
        assert deliver_due_events(service) == 0
        assert receiver.gets == 0 and len(receiver.posts) == 1
        [event] = service.store().outgoing_events()
        assert not event["delivered_at"] and "redirect" in event["last_error"]
    finally:
        receiver.close()


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline():
    receiver = TicketReceiver(SECRET, ["trickle"])
    try:
        began = time.monotonic()
        with pytest.raises(WebhookError, match="within 1 s"):
            post(receiver.url, b"{}", {"Content-Type": "application/json"}, deadline=1.0)
        assert time.monotonic() - began < 3.0  # the whole post, not each read
    finally:
        receiver.close()


def test_a_hanging_receiver_never_holds_up_the_page_and_events_survive_a_restart(
    make_app, indexed, auth, tokens
):
    receiver = TicketReceiver(SECRET, ["hang"])
    try:
        app, service = make_app(events_url=receiver.url)
        sender = EventSender(service, every_s=0.05).start()
        client = app.test_client()
        _suggest_and_use(client, auth)
        deadline = time.monotonic() + 5
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.posts  # the sender is now stuck on the hanging receiver
        began = time.monotonic()
        _suggest_and_use(client, auth, rank=1)
        assert time.monotonic() - began < 2.0
        receiver.release.set()
        sender.stop()
        # A new worker (a restart) posts what is still waiting in the outbox.
        restarted = Service(service.config, embedder=indexed.embedder())
        deliver_due_events(restarted, now=datetime.now(UTC) + timedelta(minutes=5))
        events = restarted.store().outgoing_events()
        assert len(events) == 2 and all(e["delivered_at"] for e in events)
        restarted.close()
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"events_url": "ftp://example.com/x"}, "KB_EVENTS_URL must be"),
        (
            {"events_url": "http://127.0.0.1:9/x", "events_secret": "", "webhook_secret": ""},
            "must be signed",
        ),
        ({"public_url": "kb.example.com"}, "KB_PUBLIC_URL must be"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(indexed, settings, message):
    from web import create_app

    config = indexed.config.with_overrides(**settings)
    with pytest.raises(ConfigError, match=message):
        create_app({"TESTING": True}, config=config, service=indexed)


def test_erasing_an_incident_erases_the_events_about_it(make_app, auth, tokens, receiver):
    app, service = make_app(events_url=receiver.url)
    client = app.test_client()
    _suggest_and_use(client, auth)  # asked for INC-777
    incident = next(i for i in service.store().iter_incidents() if i.resolution)
    body = client.post(
        "/api/v1/suggest",
        json={"title": incident.title, "description": incident.description},
        headers=auth("integration"),
    ).get_json()
    used = next(r for r in body["results"] if r["kind"] == "incident")
    client.post(
        f"/api/v1/suggestions/{body['suggestion_id']}/feedback",
        json={"used": used["id"], "agent": "ana"},
        headers=auth("integration"),
    )
    service.store().upsert_incidents([_stored("INC-777")])
    assert len(service.store().outgoing_events()) == 2
    service.store().erase_incidents(["INC-777", used["id"]], actor="test")
    assert service.store().outgoing_events() == []


def _stored(incident_id):
    from kb.models import Incident

    return Incident(id=incident_id, title="VPN keeps disconnecting", description="vpn drops")


def test_a_preview_is_recorded_only_when_settled_or_acted_on(client, auth, indexed):
    store = indexed.store()
    before = store.count_suggestions()
    typed = [
        client.post(
            "/api/v1/suggest",
            json={**QUERY, "description": QUERY["description"][:n], "preview": True},
            headers=auth(),
        ).get_json()
        for n in (10, 20, 30)
    ]
    assert all(body["results"] for body in typed)
    assert store.count_suggestions() == before  # typing pauses are not suggestions
    last = typed[-1]["suggestion_id"]
    other = client.post(f"/api/v1/suggestions/{last}/settle", json={}, headers=auth("integration"))
    assert other.status_code == 404  # only whoever asked
    settled = client.post(f"/api/v1/suggestions/{last}/settle", json={}, headers=auth())
    assert settled.status_code == 200 and settled.get_json() == {
        "suggestion_id": last,
        "recorded": True,
    }
    assert (
        client.post(f"/api/v1/suggestions/{last}/settle", json={}, headers=auth()).status_code
        == 200
    )
    assert store.count_suggestions() == before + 1
    assert store.get_suggestion(last)["query"].endswith(QUERY["description"][:30])
    # A choice on a preview records the search with it.
    earlier = typed[0]
    used = earlier["results"][0]["id"]
    answer = client.post(
        f"/api/v1/suggestions/{earlier['suggestion_id']}/feedback",
        json={"used": used},
        headers=auth(),
    )
    assert answer.status_code == 201 and store.count_suggestions() == before + 2
    assert (
        client.post("/api/v1/suggest", json={**QUERY, "preview": "yes"}, headers=auth()).status_code
        == 400
    )


def test_previews_are_dropped_after_an_hour_and_with_an_erased_incident(indexed):
    from kb.store import suggestions as module

    store = indexed.store()
    store.record_suggestion(
        query="old text",
        results=[],
        no_good_match=True,
        confidence=0.0,
        k=5,
        suggestion_id="sg_old",
        principal="ana",
        preview=True,
    )
    store.db.execute(
        "UPDATE suggestion_previews SET created_at = ? WHERE id = 'sg_old'", [module._hours_ago(2)]
    )
    store.record_suggestion(
        query="vpn text",
        results=[],
        no_good_match=True,
        confidence=0.0,
        k=5,
        suggestion_id="sg_new",
        principal="ana",
        incident_ref="INC-9",
        preview=True,
    )
    assert not store.settle_suggestion("sg_old")  # expired
    store.upsert_incidents([_stored("INC-9")])
    store.erase_incidents(["INC-9"], actor="test")
    assert not store.settle_suggestion("sg_new")
    assert store.db.execute("SELECT count(*) FROM suggestion_previews").fetchone()[0] == 0
