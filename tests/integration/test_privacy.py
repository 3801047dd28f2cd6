"""Private by default: what users paste never reaches the disk, an erasure leaves no trace,
and the audit log records who read and changed what."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.app.privacy import erase_incidents, scan_home
from kb.app.service import Service
from kb.config import load_config
from kb.errors import NotFoundError
from kb.models import Incident
from search.suggester import SuggestRequest
from tests.conftest import DATA

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines

# --- generated secrets and personal data ---------------------------------------------------


def _luhn_complete(prefix: str, length: int, rng) -> str:
    digits = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in range(10):
        candidate = digits + str(check)
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


alnum = st.text(
    alphabet="abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24
)
secrets_st = st.one_of(
    st.builds(lambda s: f"ghp_{s}{s}{s}"[:40], alnum),
    st.builds(lambda s: f"AKIA{s.upper()}{s.upper()}"[:20], alnum),
    st.builds(lambda s: f"sk_live_{s}{s}", alnum),
    st.builds(lambda s: f"eyJ{s}.eyJ{s}x.{s}{s}", alnum),
)
cards = st.builds(
    lambda seed, kind: _luhn_complete(*kind, __import__("random").Random(seed)),
    st.integers(0, 10**9),
    st.sampled_from([("4", 16), ("51", 16), ("37", 15), ("6011", 16)]),
)
ibans = st.builds(lambda d: _iban("DE", f"{d:018d}"), st.integers(10**16, 10**18 - 1))
emails = st.builds(
    lambda a, b: f"{a.lower()}.{b.lower()}@mail-{b.lower()}.example.org", alnum, alnum
)
phones = st.builds(
    lambda n: f"+44 20 {n // 10000:04d} {n % 10000:04d}", st.integers(10**7, 10**8 - 1)
)
sensitive = st.one_of(
    st.builds(lambda v: ("password: " + v + "9!", v + "9!"), alnum),
    st.builds(lambda v: (v, v), secrets_st),
    st.builds(lambda v: (v, v), cards),
    st.builds(lambda v: (v, v), ibans),
    st.builds(lambda v: (v, v), emails),
    st.builds(lambda v: (v, v), phones),
)
filler = st.lists(
    st.sampled_from(
        "the vpn drops my laptop cannot reach outlook after the update again please "
        "help printer queue stuck error".split()
    ),
    min_size=2,
    max_size=12,
)


def files_under(home):
    return [p for p in home.rglob("*") if p.is_file() and p.relative_to(home).parts[0] != "models"]


@settings(
    max_examples=max(5, int(os.environ.get("KB_PROPERTY_EXAMPLES", "150")) // 6),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=st.lists(st.tuples(filler, sensitive, filler), min_size=1, max_size=4))
def test_pasted_secrets_never_reach_any_file_response_or_page(client, auth, indexed, items):
    values, texts = [], []
    for before, (written, value), after in items:
        values.append(value)
        texts.append(" ".join(before) + " " + written + " " + " ".join(after))
    incident = {
        "id": f"PRIV-{abs(hash(tuple(values))) % 10**8}",
        "title": "Laptop problem",
        "description": "\n".join(texts),
        "resolution": f"Called back, {items[0][1][0]}, and fixed it.",
        "status": "resolved",
    }
    posted = client.post("/api/v1/incidents", json=incident, headers=auth("integration"))
    assert posted.status_code == 201
    asked = client.post(
        "/api/v1/suggest", json={"description": "\n".join(texts), "k": 5}, headers=auth()
    )
    assert asked.status_code == 200  # the incident was chunked, embedded and indexed on arrival
    blobs = [p.read_bytes() for p in files_under(indexed.home)]
    answer = asked.get_data()
    for value in values:
        needle = value.encode()
        assert not any(needle in blob for blob in blobs), value
        assert needle not in answer and needle not in posted.get_data()


def test_the_page_never_shows_what_was_pasted(client, people_in_store):
    token = _sign_in(client)
    page = client.post(
        "/",
        data={
            "csrf_token": token,
            "description": "vpn drops; my password: Sunny2026! mail me at ana.lopez@example.org",
        },
        follow_redirects=True,
    )
    text = page.get_data(as_text=True)
    assert "Sunny2026!" not in text and "ana.lopez@example.org" not in text
    assert "[secret]" in text and "[email]" in text  # the form shows the text as stored


@pytest.fixture
def people_in_store(indexed):
    indexed.store().create_user("ana", "agent", "agent-password")
    indexed.store().create_user("kim", "knowledge_manager", "manager-password")
    return indexed


def _sign_in(client, name="ana", password="agent-password") -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    return re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)
    ).group(1)


# --- erasure -------------------------------------------------------------------------------

UNIQUE = "zorbulate quixotrap flumberwick"


def _add_unique_incident(service: Service, incident_id: str = "ERASE-1") -> None:
    service.store().upsert_incidents(
        [
            Incident(
                id=incident_id,
                title=f"Badge reader {UNIQUE}",
                description=f"The {UNIQUE} badge reader beeps twice",
                resolution=f"Re-encoded the {UNIQUE} badge",
                status="resolved",
            )
        ]
    )
    service.index()


def _suggest_ids(service: Service, text: str) -> list[str]:
    request = SuggestRequest(description=text, k=10)
    return [
        r.id for r in service.suggester().suggest(service.store(), request, record=False).results
    ]


def test_delete_erases_an_incident_everywhere_and_logs_who_did_it(client, auth, indexed, config):
    _add_unique_incident(indexed)
    asked = client.post(
        "/api/v1/suggest",
        json={"description": f"{UNIQUE} reader", "incident_id": "ERASE-1"},
        headers=auth(),
    )
    assert asked.get_json()["results"][0]["id"] == "ERASE-1"
    assert scan_home(indexed.home, needle="flumberwick").needle_hits  # it is on disk before

    assert (
        client.delete("/api/v1/incidents/ERASE-1", headers=auth("knowledge_manager")).status_code
        == 403
    )
    response = client.delete("/api/v1/incidents/ERASE-1", headers=auth("admin"))
    assert response.status_code == 200 and response.get_json()["erased"] == ["ERASE-1"]
    for word in UNIQUE.split():
        assert scan_home(indexed.home, needle=word).needle_hits == {}, word
    assert "ERASE-1" not in _suggest_ids(indexed, f"{UNIQUE} reader")
    metrics = client.get("/api/v1/metrics", headers=auth("admin")).get_data(as_text=True)
    assert "flumberwick" not in metrics, metrics[
        max(0, metrics.find("flumberwick") - 300) : metrics.find("flumberwick") + 100
    ]
    assert client.delete("/api/v1/incidents/ERASE-1", headers=auth("admin")).status_code == 404

    # A restarted service (a new process on the same home) does not bring it back.
    again = Service(config, embedder=indexed.embedder())
    try:
        assert "ERASE-1" not in _suggest_ids(again, f"{UNIQUE} reader")
        with pytest.raises(NotFoundError):
            again.store().get_incident("ERASE-1")
    finally:
        again.close()
    [entry] = indexed.store().audit_entries(action="erase")
    assert entry["target"] == "ERASE-1" and entry["actor"].endswith("test-admin")
    assert "flumberwick" not in json.dumps(entry)


def test_an_erasure_killed_half_way_leaves_the_old_or_the_new_state(indexed, monkeypatch):
    _add_unique_incident(indexed)
    store = indexed.store()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies inside the transaction

    monkeypatch.setattr(type(store), "_drop_unused_vectors", crash)
    with pytest.raises(KeyboardInterrupt):
        erase_incidents(indexed, ["ERASE-1"], actor="test")
    monkeypatch.undo()
    assert store.get_incident("ERASE-1").id == "ERASE-1"  # the old state, whole
    assert store.pending_erasures() == []

    # Killed after the rows went but before the index files and free pages: "pending",
    # and `kb doctor --privacy` finishes it.
    store.erase_incidents(["ERASE-1"], actor="test")
    assert [e["doc_ids"] for e in store.pending_erasures()] == [["ERASE-1"]]
    result = CliRunner().invoke(
        _cli(),
        [*_where(indexed), "doctor", "--privacy", "--find", "flumberwick"],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    assert "unfinished erasure" in result.output and "The text is in no file." in result.output, (
        result.output
    )
    assert result.exit_code == 0 and store.pending_erasures() == []


def _cli():
    from scripts.cli import cli

    return cli


def _where(service: Service) -> list[str]:
    """The CLI options that name a service's store (its home, and its database if shared)."""
    url = service.config.database_url
    return ["--home", str(service.home), *(["--database-url", url] if url else [])]


# What each engine raises when a trigger refuses a statement.
REFUSED = (sqlite3.DatabaseError, psycopg.Error)


def test_erase_by_email_finds_what_was_stored_before_redaction(tmp_path):
    home = tmp_path / "home"
    env = {"KB_EMBED_BACKEND": "hashing", "KB_REDACT": "none"}
    runner = CliRunner()
    for args in (["init"], ["import", "incidents", str(DATA / "incidents.jsonl")]):
        assert runner.invoke(_cli(), ["--home", str(home), *args], env=env).exit_code == 0
    service = Service(
        load_config(environ={}, home=str(home), embed_backend="hashing", redact="none")
    )
    service.store().upsert_incidents(
        [
            Incident(
                id="MAIL-1",
                title="Mailbox",
                description="from lena.berg@example.org",
                resolution="Reset.",
                status="resolved",
            )
        ]
    )
    service.close()
    listed = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", "lena.berg@example.org"], env=env
    )
    assert "1 incident(s) mention it: MAIL-1" in listed.output
    erased = runner.invoke(
        _cli(), ["--home", str(home), "erase", "--email", "lena.berg@example.org", "--yes"], env=env
    )
    assert erased.exit_code == 0 and "Erased 1 incident(s): MAIL-1" in erased.output
    assert scan_home(home, needle="lena.berg").needle_hits == {}


# --- a home filled before redaction --------------------------------------------------------


def test_redact_check_shows_findings_masked_and_apply_cleans_an_old_home(tmp_path):
    export = tmp_path / "export.jsonl"
    export.write_text(
        json.dumps(
            {
                "id": "OLD-1",
                "title": "VPN",
                "description": "password: Hunter2026! from max.mustermann@example.org",
                "resolution": "Reset the token.",
                "status": "resolved",
            }
        )
        + "\n"
    )
    home = tmp_path / "home"
    runner = CliRunner()
    checked = runner.invoke(
        _cli(),
        ["--home", str(home), "redact", "--check", str(export), "--json"],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    report = json.loads(checked.output)
    assert report["by_kind"] == {"email": 1, "secret": 1}
    assert "Hunter2026!" not in checked.output and "max.mustermann" not in checked.output

    off = {"KB_EMBED_BACKEND": "hashing", "KB_REDACT": "none"}
    for args in (["init"], ["import", "incidents", str(export)], ["index"]):
        assert runner.invoke(_cli(), ["--home", str(home), *args], env=off).exit_code == 0
    assert scan_home(home, needle="Hunter2026!").needle_hits  # stored as given, redaction off
    doctor = runner.invoke(
        _cli(), ["--home", str(home), "doctor", "--privacy"], env={"KB_EMBED_BACKEND": "hashing"}
    )
    assert doctor.exit_code == 1 and "Unredacted data found." in doctor.output

    applied = runner.invoke(
        _cli(), ["--home", str(home), "redact", "--apply"], env={"KB_EMBED_BACKEND": "hashing"}
    )
    assert applied.exit_code == 0, applied.output
    for value in ("Hunter2026!", "max.mustermann@example.org"):
        assert scan_home(home, needle=value).needle_hits == {}, value
    doctor = runner.invoke(
        _cli(), ["--home", str(home), "doctor", "--privacy"], env={"KB_EMBED_BACKEND": "hashing"}
    )
    assert doctor.exit_code == 0 and "Nothing unredacted found." in doctor.output, doctor.output


# --- the audit log ------------------------------------------------------------------------


def test_audit_log_records_reads_tokens_and_role_changes_and_refuses_edits(client, people_in_store):
    store = people_in_store.store()
    store.create_token("ticket-system", "integration", actor="cli:ops")
    store.update_user("ana", role="knowledge_manager", actor="cli:ops")
    _sign_in(client, "kim", "manager-password")
    assert client.get("/articles/net-vpn-drops").status_code == 200
    assert client.get("/incidents/INC-1001").status_code in (200, 404)
    actions = [(e["actor"], e["action"], e["target"]) for e in store.audit_entries()]
    assert ("cli:ops", "token create", "ticket-system") in actions
    assert ("cli:ops", "role change", "ana") in actions
    assert ("session:kim", "read", "article:net-vpn-drops") in actions
    with pytest.raises(REFUSED, match="append-only"):
        store.db.execute("UPDATE audit_log SET actor = 'someone else'")
    with pytest.raises(REFUSED, match="append-only"):
        store.db.execute("DELETE FROM audit_log")
    listed = CliRunner().invoke(
        _cli(),
        [*_where(people_in_store), "audit", "--action", "role change"],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    assert "role change" in listed.output and "agent -> knowledge_manager" in listed.output
