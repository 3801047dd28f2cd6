"""Redaction and erasure reach every field and every spelling: text is normalised before it
is redacted (full-width digits and letters), every free-text field of an incident, a
suggest request, a feedback post and a draft is redacted, erasure by address searches all
of them, and an erased draft leaves no word of its title in the index log or the audit log."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from kb.app.privacy import scan_home
from kb.app.service import Service
from kb.config import load_config
from kb.models import INCIDENT_TEXT_FIELDS, Incident
from kb.text import normalise_text
from tests.conftest import DATA

pytestmark = pytest.mark.both_engines

FORMATS = DATA / "redaction" / "formats.jsonl"
ENV = {"KB_EMBED_BACKEND": "hashing"}
FULL_WIDTH_CARD = "４５３９ １４８８ ０３４３ ６４６７"
FULL_WIDTH_EMAIL = "ｆｗ．ｔｅｓｔ＠ｅｘａｍｐｌｅ．ｃｏｍ"
ADDRESS = "quillaby.froon@example.org"


def _cli():
    from scripts.cli import cli

    return cli


def _where(service: Service) -> list[str]:
    url = service.config.database_url
    return ["--home", str(service.home), *(["--database-url", url] if url else [])]


def _formats() -> list[dict]:
    return [
        json.loads(line)
        for line in FORMATS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _values() -> set[str]:
    """Every labelled value, as typed and normalised."""
    values = set()
    for case in _formats():
        for _, value in case["expect"]:
            values |= {value, normalise_text(value)}
    return values


def _assert_nowhere(home, values) -> None:
    """None of the values (a key block: its first body line) is in any file's bytes, in
    any letter case, nor in the bytes read as normalised text."""
    blobs = [
        p.read_bytes()
        for p in home.rglob("*")
        if p.is_file() and p.relative_to(home).parts[0] != "models"
    ]
    texts = [normalise_text(blob.decode("utf-8", errors="replace")).casefold() for blob in blobs]
    blobs = [blob.lower() for blob in blobs]
    for value in values:
        part = value if "\n" not in value else max(value.splitlines()[1:-1], key=len)
        assert not any(part.encode().lower() in blob for blob in blobs), part
        assert not any(normalise_text(part).casefold() in text for text in texts), part


def _sign_in(client, name: str, password: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    return re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)
    ).group(1)


# --- normalised before redacted ------------------------------------------------------------


def test_full_width_card_and_address_never_reach_the_disk(client, auth, indexed):
    incident = {
        "id": "WIDE-1",
        "title": f"Refund to {FULL_WIDTH_CARD}",
        "status": "resolved",
        "description": f"Customer {FULL_WIDTH_EMAIL} was charged twice",
        "resolution": "Refunded.",
    }
    assert (
        client.post("/api/v1/incidents", json=incident, headers=auth("integration")).status_code
        == 201
    )
    asked = client.post(
        "/api/v1/suggest",
        json={"description": f"charged twice, card {FULL_WIDTH_CARD}, mail {FULL_WIDTH_EMAIL}"},
        headers=auth(),
    )
    assert asked.status_code == 200
    stored = indexed.store().get_incident("WIDE-1")
    assert stored.title == "Refund to [card]" and "[email]" in stored.description
    _assert_nowhere(
        indexed.home,
        [FULL_WIDTH_CARD, FULL_WIDTH_EMAIL, "4539 1488 0343 6467", "fw.test@example.com"],
    )


def test_a_home_filled_with_every_format_holds_none_of_them(client, auth, indexed):
    """Every labelled format (and its full-width forms) posted as incidents and asked as
    suggest requests: none of the values is in any file, and the privacy scan finds nothing."""
    cases = _formats()
    for number, case in enumerate(cases):
        incident = {
            "id": f"FMT-{number}",
            "title": f"Case {number}",
            "description": case["text"],
            "resolution": case["text"],
            "status": "resolved",
        }
        assert (
            client.post("/api/v1/incidents", json=incident, headers=auth("integration")).status_code
            == 201
        )
    for case in cases[::7]:
        assert (
            client.post(
                "/api/v1/suggest", json={"description": case["text"]}, headers=auth()
            ).status_code
            == 200
        )
    _assert_nowhere(indexed.home, _values())
    doctor = CliRunner().invoke(_cli(), [*_where(indexed), "doctor", "--privacy"], env=ENV)
    assert doctor.exit_code == 0 and "Nothing unredacted found." in doctor.output, doctor.output


def test_redact_apply_and_erase_find_what_was_stored_before_in_any_width(tmp_path):
    """A home filled with redaction off holds every format; `kb doctor --privacy` reports it,
    `kb erase --email` finds a full-width and a differently cased spelling, and `kb redact
    --apply` leaves nothing for the scan to find."""
    home = tmp_path / "home"
    off = {**ENV, "KB_REDACT": "none"}
    runner = CliRunner()
    export = tmp_path / "formats.jsonl"
    with export.open("w", encoding="utf-8") as out:
        for number, case in enumerate(_formats()):
            out.write(
                json.dumps(
                    {
                        "id": f"FMT-{number}",
                        "title": f"Case {number}",
                        "description": case["text"],
                        "resolution": "Fixed.",
                        "status": "resolved",
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        out.write(
            json.dumps(
                {
                    "id": "WIDE-1",
                    "title": "Mailbox",
                    "description": f"from {FULL_WIDTH_EMAIL}",
                    "resolution": "Reset.",
                    "status": "resolved",
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        out.write(
            json.dumps(
                {
                    "id": "CASE-1",
                    "title": "Mailbox",
                    "description": "from FW.Test@Example.COM",
                    "resolution": "Reset.",
                    "status": "resolved",
                }
            )
            + "\n"
        )
    for args in (["init"], ["import", "incidents", str(export)], ["index"]):
        assert runner.invoke(_cli(), ["--home", str(home), *args], env=off).exit_code == 0
    doctor = runner.invoke(_cli(), ["--home", str(home), "doctor", "--privacy", "--json"], env=ENV)
    assert doctor.exit_code == 1
    found = {kind for kinds in json.loads(doctor.output)["findings"].values() for kind in kinds}
    assert found >= {"card", "email", "iban", "phone", "ip", "national_id"}, found
    assert scan_home(
        home, needle="fw.test@example.com"
    ).needle_hits  # the full-width spelling counts

    listed = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", "fw.test@example.com", "--json"], env=ENV
    )
    assert {"WIDE-1", "CASE-1"} <= set(json.loads(listed.output)["email_found_in"]), listed.output
    erased = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", "fw.test@example.com", "--yes"], env=ENV
    )
    assert erased.exit_code == 0 and "WIDE-1" in erased.output and "CASE-1" in erased.output, (
        erased.output
    )
    assert scan_home(home, needle="fw.test@example.com").needle_hits == {}

    applied = runner.invoke(_cli(), ["--home", str(home), "redact", "--apply"], env=ENV)
    assert applied.exit_code == 0, applied.output
    _assert_nowhere(home, _values())
    doctor = runner.invoke(_cli(), ["--home", str(home), "doctor", "--privacy"], env=ENV)
    assert doctor.exit_code == 0 and "Nothing unredacted found." in doctor.output, doctor.output


# --- every free-text field ---------------------------------------------------------------


def test_every_free_text_field_is_redacted(client, auth, indexed, app, tmp_path):
    store = indexed.store()
    incident = {
        "id": "FIELDS-1",
        "title": "Printer",
        "description": "Jams",
        "resolution": "Cleaned.",
        "status": "resolved",
        **{
            name: f"x {ADDRESS}"
            for name in INCIDENT_TEXT_FIELDS
            if name not in ("title", "description", "resolution")
        },
    }
    assert (
        client.post("/api/v1/incidents", json=incident, headers=auth("integration")).status_code
        == 201
    )
    stored = store.get_incident("FIELDS-1")
    for name in INCIDENT_TEXT_FIELDS:
        assert ADDRESS not in getattr(stored, name), name
    assert stored.product == "x [email]"

    asked = client.post(
        "/api/v1/suggest",
        json={
            "description": "printer jams",
            "incident_id": f"for {ADDRESS}",
            "filters": {"product": ADDRESS, "category": ADDRESS},
        },
        headers=auth("integration"),
    ).get_json()
    row = store.get_suggestion(asked["suggestion_id"])
    assert ADDRESS not in json.dumps(row) and row["filters"] == {
        "product": "[email]",
        "category": "[email]",
    }
    posted = client.post(
        f"/api/v1/suggestions/{asked['suggestion_id']}/feedback",
        json={"outcome": "none_helped", "agent": ADDRESS},
        headers=auth("integration"),
    )
    assert posted.status_code == 201 and posted.get_json()["agent"] == "[email]"

    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(
        drafts_dir=str(tmp_path / "drafts")
    )
    store.create_user("ana", "agent", "agent-password")
    token = _sign_in(client, "ana", "agent-password")
    started = client.post(
        "/drafts",
        data={
            "title": "Printer jams",
            "description": "paper jam",
            "csrf_token": token,
            "product": ADDRESS,
            "incident_id": ADDRESS,
            "back": "/",
        },
    )
    assert started.status_code == 302
    [draft] = [a for a in store.iter_articles() if a.status == "draft" and str(tmp_path) in a.path]
    assert ADDRESS not in draft.product and ADDRESS not in draft.body
    assert ADDRESS not in (tmp_path / "drafts" / f"{draft.id}.md").read_text(encoding="utf-8")
    assert scan_home(indexed.home, needle=ADDRESS).needle_hits == {}


def test_erase_by_address_searches_every_field(tmp_path):
    """Stored before redaction: the address in two incidents' product, a recorded suggest
    request's filters and incident id, a feedback row's agent and a draft's product."""
    home = tmp_path / "home"
    runner = CliRunner()
    off = {**ENV, "KB_REDACT": "none"}
    for args in (["init"], ["import", "incidents", str(DATA / "incidents.jsonl")]):
        assert runner.invoke(_cli(), ["--home", str(home), *args], env=off).exit_code == 0
    service = Service(
        load_config(environ={}, home=str(home), embed_backend="hashing", redact="none")
    )
    try:
        store = service.store()
        store.upsert_incidents(
            [
                Incident(
                    id=f"PROD-{n}",
                    title="Laptop",
                    description="Slow",
                    resolution="Reset.",
                    status="resolved",
                    product=f"Laptop of {ADDRESS.upper()}",
                )
                for n in (1, 2)
            ]
        )
        suggestion = store.record_suggestion(
            query="laptop slow",
            results=[],
            no_good_match=True,
            confidence=0.0,
            k=5,
            filters={"product": ADDRESS},
            incident_ref=ADDRESS,
            predicted_group="Desktop",
        )
        store.record_feedback(suggestion, outcome="none_helped", used_id=None, agent=ADDRESS)
        other = store.record_suggestion(
            query="vpn drops", results=[], no_good_match=True, confidence=0.0, k=5
        )
        store.record_feedback(other, outcome="none_helped", used_id=None, agent="agent7")
        drafts = tmp_path / "drafts"
        drafts.mkdir()
        from web.pages import write_draft

        article = write_draft(
            drafts,
            {"title": "Laptop slow", "description": "slow", "product": ADDRESS, "incident_id": ""},
            owner="ana",
            taken=lambda _: False,
        )
        store.upsert_articles([article], changed_by="ana")
        service.index()
    finally:
        service.close()

    listed = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", ADDRESS, "--json"], env=ENV
    )
    found = json.loads(listed.output)
    assert found["email_found_in"] == ["PROD-1", "PROD-2"]
    assert found["suggestions"] == [suggestion] and found["feedback"] == [[suggestion, ADDRESS]]
    assert found["drafts"] == [article.id]
    erased = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", ADDRESS, "--yes"], env=ENV
    )
    assert erased.exit_code == 0, erased.output
    assert (
        "Erased 2 incident(s)" in erased.output
        and "1 draft(s), 1 suggestion text(s), 1 feedback" in erased.output
    )
    assert scan_home(home, needle=ADDRESS).needle_hits == {}
    assert not (drafts / f"{article.id}.md").exists()
    service = Service(load_config(environ={}, home=str(home), embed_backend="hashing"))
    try:
        store = service.store()
        assert store.get_suggestion(suggestion)["predicted_group"] == ""
        assert store.get_suggestion(other)["query"] == "vpn drops"  # only what held the address
        assert [f["agent"] for f in store.feedback_for(other)] == ["agent7"]
        assert not any(store.records_mentioning(ADDRESS).values())
    finally:
        service.close()


# --- erasure leaves no words ----------------------------------------------------------------


def test_an_erased_draft_leaves_no_word_of_its_title(client, auth, indexed, app, tmp_path):
    """A draft typed with a name in its title, read by a knowledge manager, then erased
    with the incident it was started from: the name is in no file (index log, audit log),
    and the audit names the draft by an opaque id."""
    store = indexed.store()
    store.upsert_incidents(
        [
            Incident(
                id="NAME-1",
                title="Laptop",
                description="Screen flickers",
                resolution="",
                status="open",
            )
        ]
    )
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(
        drafts_dir=str(tmp_path / "drafts")
    )
    store.create_user("kim", "knowledge_manager", "manager-password")
    token = _sign_in(client, "kim", "manager-password")
    started = client.post(
        "/drafts",
        data={
            "title": "Quillaby Froon laptop flickers",
            "description": "screen",
            "incident_id": "NAME-1",
            "product": "",
            "csrf_token": token,
            "back": "/",
        },
    )
    assert started.status_code == 302
    [draft] = [a for a in store.iter_articles() if a.status == "draft" and str(tmp_path) in a.path]
    assert re.fullmatch(r"draft-[0-9a-f]{12}", draft.id)
    assert client.get(f"/articles/{draft.id}").status_code == 200  # an audited read
    asked = client.post(
        "/api/v1/suggest",
        json={"description": "screen flickers", "incident_id": "NAME-1"},
        headers=auth(),
    ).get_json()
    store.db.execute(
        "UPDATE suggestions SET predicted_group = 'Desk of Froon' WHERE id = ?",
        [asked["suggestion_id"]],
    )
    assert scan_home(indexed.home, needle="froon").needle_hits

    assert client.delete("/api/v1/incidents/NAME-1", headers=auth("admin")).status_code == 200
    for word in ("quillaby", "froon"):
        assert scan_home(indexed.home, needle=word).needle_hits == {}, word
    assert store.get_suggestion(asked["suggestion_id"])["predicted_group"] == ""
    targets = [e["target"] for e in store.audit_entries()]
    assert f"article:{draft.id}" in targets and not any("froon" in t.lower() for t in targets)


def test_redact_apply_rewrites_every_field_of_recorded_requests_and_feedback(service):
    """Stored with redaction off, then redacted: a request's incident id, filters and
    predicted group, and the agents named on feedback (two addresses on one suggestion
    become one "[email]" choice, the newer)."""
    from kb.redaction import Redactor

    store = service.store()
    store.redactor = Redactor(())
    sid = store.record_suggestion(
        query="vpn",
        results=[
            {
                "rank": 1,
                "kind": "article",
                "id": "a1",
                "group": "a1",
                "score": 1.0,
                "raw_score": 1.0,
            }
        ],
        no_good_match=False,
        confidence=1.0,
        k=5,
        filters={"product": ADDRESS},
        incident_ref=ADDRESS,
        predicted_group=f"desk of {ADDRESS}",
    )
    store.record_feedback(sid, outcome="none_helped", used_id=None, agent="first@example.org")
    store.record_feedback(sid, outcome="used", used_id="a1", agent="second@example.org")
    store.redactor = Redactor()
    assert store.redact_stored_suggestions() == 1
    row = store.get_suggestion(sid)
    assert (row["incident_ref"], row["filters"], row["predicted_group"]) == (
        "[email]",
        {"product": "[email]"},
        "desk of [email]",
    )
    [choice] = store.feedback_for(sid)
    assert choice["agent"] == "[email]" and choice["outcome"] == "used"
    events = store.db.execute(
        "SELECT agent FROM feedback_events WHERE suggestion_id = ?", [sid]
    ).fetchall()
    assert [e[0] for e in events] == ["[email]", "[email]"]
