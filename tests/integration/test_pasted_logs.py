"""Pasted logs and long text through the API: matched on their error lines, never on their
timestamps, ids or placeholders, and read at their end when they are longer than the limit."""

from __future__ import annotations

import random
import re

import pytest

pytestmark = pytest.mark.both_engines

DISK_FULL = {
    "id": "INC-DISK",
    "title": "Server disk full, application cannot write",
    "description": "Writes fail with No space left on device on the data volume of the app server",
    "resolution": "Removed rotated logs under /var/log, added logrotate compression and grew the volume.",
    "status": "resolved",
}
# A resolved incident full of times and dates, like a nightly job's report.
NIGHTLY = {
    "id": "INC-NIGHTLY",
    "title": "Nightly export late",
    "description": "Export started 00:01 on 2026-12-01, again 01:02 and 02:08, finished 12:00 on 2026-12-02; "
    "export 2026 run 00 01 02 08 12 03 09",
    "resolution": "Moved the export window to 03:00.",
    "status": "resolved",
}
LISTENER = {
    "id": "INC-ORA",
    "title": "Database connection refused by the listener",
    "description": "Service cannot reach Oracle: ORA-12541 TNS no listener on the database host",
    "resolution": "Started the listener with lsnrctl start and enabled it at boot.",
    "status": "resolved",
}
PRINTER = {
    "id": "INC-PLACEHOLDER",
    "title": "Label printer offline",
    "description": "Since this morning [email] says the label printer is offline, new one works fine, call [phone]",
    "resolution": "Re-added the label printer queue.",
    "status": "resolved",
}


def post(client, auth, *records):
    response = client.post("/api/v1/incidents", json=list(records), headers=auth("integration"))
    assert response.status_code == 201, response.get_data(as_text=True)


def suggest(client, auth, **body):
    response = client.post("/api/v1/suggest", json=body, headers=auth())
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def routine_syslog(lines: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    messages = [
        "CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
        "systemd[1]: Started Session {pid} of user deploy.",
        "sshd[{pid}]: Accepted publickey for deploy from 10.0.{a}.{b} port 5{a}22 ssh2",
        "systemd-logind[{pid}]: New session {pid} of user deploy.",
        "dhclient[{pid}]: DHCPACK of 10.0.{a}.{b} from 10.0.0.1",
    ]
    out = []
    for number in range(lines):
        message = rng.choice(messages).format(
            pid=rng.randint(100, 99999), a=rng.randint(0, 255), b=rng.randint(1, 254)
        )
        out.append(
            f"Dec  8 {number // 60:02d}:{number % 60:02d}:{rng.randint(0, 59):02d} web01 {message}"
        )
    return out


def test_a_syslog_is_matched_on_its_error_not_its_timestamps(client, auth):
    post(client, auth, DISK_FULL, NIGHTLY)
    lines = routine_syslog(60)
    lines.insert(
        37,
        "Dec  8 00:37:12 web01 app[4242]: write /srv/data/queue.db failed: No space left on device",
    )
    assert len(lines) == 61
    body = suggest(client, auth, description="\n".join(lines), k=5)
    top = body["results"][0]
    assert top["id"] == "INC-DISK"
    for result in body["results"]:
        assert not [t for t in result["matched_terms"] if t.isdigit()], result["matched_terms"]
        assert not re.search(r"<mark>\d+</mark>", result["snippet"]), result["snippet"]
    assert {"space", "device"} <= set(top["matched_terms"])
    assert "INC-NIGHTLY" not in [r["id"] for r in body["results"][:1]]


def test_a_long_log_is_found_by_the_error_at_its_end(client, auth):
    post(client, auth, LISTENER, NIGHTLY)
    rng = random.Random(3)
    lines, size = [], 0
    while size < 64_000:
        line = (
            f"2026-12-08T0{rng.randint(0, 9)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(100, 999)}Z "
            f"INFO [worker-{rng.randint(1, 9)}] c.acme.batch.Step - processed chunk {rng.randint(1, 9999)} "
            f"of job {rng.randint(1000, 9999)} in {rng.randint(1, 900)} ms"
        )
        lines.append(line)
        size += len(line) + 1
    lines += [
        "2026-12-08T09:59:58.001Z ERROR [worker-3] c.acme.batch.Step - step failed",
        "java.lang.IllegalStateException: could not open connection",
        "\tat c.acme.batch.Step.run(Step.java:88)",
        "Caused by: java.sql.SQLRecoverableException: ORA-12541: TNS:no listener",
        "\tat oracle.jdbc.driver.T4CConnection.logon(T4CConnection.java:489)",
    ]
    text = "\n".join(lines)
    assert len(text) > 64_000
    body = suggest(client, auth, title="batch job stopped", description=text, k=5)
    assert body["results"][0]["id"] == "INC-ORA"
    assert body.get("truncated", True)


def test_common_words_and_placeholders_are_never_shown_as_matched(client, auth):
    post(client, auth, PRINTER)
    body = suggest(
        client,
        auth,
        title="label printer offline",
        description="Since this morning the label printer says offline, the new one works fine. "
        "Reach me at ana.lopez@example.com or +1 415 555 0100.",
        k=5,
    )
    result = next(r for r in body["results"] if r["id"] == "INC-PLACEHOLDER")
    shown = set(result["matched_terms"])
    assert {"label", "printer", "offline"} <= shown
    assert not shown & {"since", "morning", "says", "new", "fine", "email", "phone", "works"}
    marked = {m.lower() for m in re.findall(r"<mark>([^<]+)</mark>", result["snippet"])}
    assert not marked & {"since", "morning", "says", "new", "fine", "email", "phone", "works"}
    assert "printer" in marked


def test_a_recorded_log_keeps_the_text_as_typed(client, auth, store):
    """The searched text of a bare log is reordered (its errors first); the recorded
    suggestion keeps what was typed, so showing it again shows the paste unchanged."""
    post(client, auth, DISK_FULL, NIGHTLY)
    lines = routine_syslog(40)
    lines.insert(20, "Dec  8 00:20:31 web01 app[4242]: ERROR write failed: No space left on device")
    log = "\n".join(lines)
    body = suggest(client, auth, title="App server errors", description=log)
    recorded = store.get_suggestion(body["suggestion_id"])
    assert recorded["query"] == store.redactor.redact("App server errors\n" + log)
    assert recorded["query"].splitlines()[1] == store.redactor.redact(lines[0])
