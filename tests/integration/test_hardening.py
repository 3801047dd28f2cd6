"""What a damaged, busy, full or tampered-with home does to the service, and what a
hostile caller can and cannot do: each test fails when its protection goes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.index_files import current_version, load_index
from kb.errors import IndexDamagedError
from web import create_app

# --- a damaged index version ----------------------------------------------------------------

DAMAGE = {
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: b"\x00garbage\xff" * 64,
}


def _damage_current(service, how: str) -> tuple[str, str]:
    """Publish a second version, then damage it; returns (older, damaged) version names."""
    older = current_version(service.index_root)
    service.index(rebuild=True)
    damaged = current_version(service.index_root)
    assert damaged != older
    path = Path(service.index_root) / damaged / "vectors.faiss"
    path.write_bytes(DAMAGE[how](path.read_bytes()))
    return older, damaged


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_current_index_falls_back_to_the_newest_sound_version(indexed, how):
    older, damaged = _damage_current(indexed, how)
    with pytest.raises(IndexDamagedError):
        load_index(indexed.index_root)
    index, config = load_index(indexed.index_root, fallback=True)
    assert config["version"] == older and config["damaged_version"] == damaged
    assert "vectors.faiss" in config["damage"] and len(index) > 0


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_the_app_keeps_answering_on_a_damaged_index_and_says_so(indexed, config, auth, how, caplog):
    older, damaged = _damage_current(indexed, how)
    indexed.drop_search_state()
    client = create_app({"TESTING": True}, config=config, service=indexed).test_client()
    # An incident stored after the older version was built is found too (change log).
    created = client.post(
        "/api/v1/incidents",
        headers=auth("integration"),
        json={
            "id": "AFTER-DAMAGE",
            "title": "Zebracorn printer spooler jams",
            "resolution": "Restart the zebracorn spooler",
            "status": "resolved",
        },
    )
    assert created.status_code == 201
    answer = client.post(
        "/api/v1/suggest", headers=auth(), json={"title": "zebracorn spooler jams"}
    )
    assert answer.status_code == 200
    assert answer.get_json()["results"][0]["id"] == "AFTER-DAMAGE"
    health = client.get("/api/v1/health", headers=auth())
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "degraded"
    assert body["index_version"] == older and body["index_damaged"]["version"] == damaged
    assert client.get("/api/v1/health").get_json()["status"] == "degraded"
    assert any("INDEX DAMAGED" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


# --- an erasure while an indexer holds the lock -------------------------------------------------


def test_erasing_while_an_indexer_runs_answers_202_and_finishes_when_the_lock_frees(
    indexed, client, auth
):
    from indexer.index_files import indexing_lock
    from kb.app.privacy import scan_home

    store = indexed.store()
    needle = "Quixoticfinch overflow"
    created = client.post(
        "/api/v1/incidents",
        headers=auth("integration"),
        json={
            "id": "INC-1001",
            "title": needle,
            "resolution": "Drain the finch queue",
            "status": "resolved",
        },
    )
    assert created.status_code == 201
    with indexing_lock(indexed.index_root):
        response = client.delete("/api/v1/incidents/INC-1001", headers=auth("admin"))
        assert response.status_code == 202, response.get_json()
        body = response.get_json()
        assert body["state"] == "finishing" and body["erased"] == ["INC-1001"]
        time.sleep(1.0)
        assert store.pending_erasures()  # it cannot finish while the lock is held
    deadline = time.monotonic() + 30
    while store.pending_erasures() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not store.pending_erasures()
    assert not scan_home(indexed.home, needle=needle).needle_hits
    # Without a running indexer the answer is final at once.
    done = client.delete("/api/v1/incidents/T-2", headers=auth("admin"))
    assert done.status_code == 200 and done.get_json()["state"] == "done"


def test_kb_index_finishes_an_erasure_that_waited_for_its_lock(indexed):
    from click.testing import CliRunner

    from scripts.cli import cli

    indexed.store().erase_incidents(["T-1"], actor="test")
    assert indexed.store().pending_erasures()
    result = CliRunner().invoke(
        cli, ["--home", str(indexed.home), "index"], env={"KB_EMBED_BACKEND": "hashing"}
    )
    assert result.exit_code == 0, result.output
    assert "finished 1 erasure(s)" in result.output
    assert not indexed.store().pending_erasures()


# --- a full disk or a read-only database ----------------------------------------------------


def _limit_database(monkeypatch, how: str) -> None:
    """Every store connection opened from now on meets a full disk (the database may not
    grow by a page: SQLite answers SQLITE_FULL, as on a full disk) or a read-only file
    (SQLITE_READONLY)."""
    from kb.store.base import StoreBase

    original = StoreBase._migrate

    def migrate_then_limit(self):
        original(self)
        if how == "full":
            pages = self.db.conn.execute("PRAGMA page_count").fetchone()[0]
            self.db.conn.execute(f"PRAGMA max_page_count = {pages}")
        else:
            self.db.conn.execute("PRAGMA query_only = ON")

    monkeypatch.setattr(StoreBase, "_migrate", migrate_then_limit)


def _fill_free_pages(store) -> None:
    """Leave no room where a token and its audit entry would go, as on a full disk where
    the database file cannot grow: tokens are made until the database is full."""
    from kb.errors import StorageError

    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError):
        for n in range(100_000):
            store.create_token(f"filler-{n}", "agent")


def _big_incidents(tmp_path: Path, count: int = 300) -> Path:
    import json

    path = tmp_path / "big.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"BIG-{n}",
                    "title": f"Big incident {n}",
                    "status": "resolved",
                    "description": "word " * 400,
                    "resolution": "fixed",
                }
            )
            + "\n"
            for n in range(count)
        )
    )
    return path


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_api_writes_on_full_or_read_only_storage_answer_503(
    indexed, config, auth, monkeypatch, how
):
    headers = {"Authorization": auth("integration")["Authorization"]}
    before = indexed.store().count_incidents()
    indexed.session_key()  # made when the home was first served
    _limit_database(monkeypatch, how)
    limited = type(indexed)(config, embedder=indexed.embedder())
    client = create_app({"TESTING": True}, config=config, service=limited).test_client()
    records = [{"id": f"NEW-{n}", "title": "x", "description": "word " * 400} for n in range(200)]
    response = client.post("/api/v1/incidents", headers=headers, json=records)
    assert response.status_code == 503, response.get_json()
    error = response.get_json()["error"]
    assert set(response.get_json()) == {"error"} and error["code"] == "storage_unavailable"
    assert "\n" not in error["message"]
    assert ("is full" if how == "full" else "read-only") in error["message"]
    limited.close()
    monkeypatch.undo()
    assert indexed.store().count_incidents() == before  # nothing half-written, nothing lost


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_cli_writes_on_full_or_read_only_storage_print_one_line(
    indexed, tmp_path, monkeypatch, how
):
    from click.testing import CliRunner

    from scripts.cli import cli

    before = indexed.store().count_incidents()
    indexed.store().upsert_incidents([], source="test")
    _limit_database(monkeypatch, how)
    runner = CliRunner()
    home = ["--home", str(indexed.home)]
    env = {"KB_EMBED_BACKEND": "hashing"}
    if how == "full":
        _fill_free_pages(indexed.store())
    commands = [
        ["import", "incidents", str(_big_incidents(tmp_path))],
        ["tokens", "create", "x", "--role", "agent"],
    ]
    if how == "read-only":
        # (kb index on a full disk: below, where the index files cannot be written.)
        commands.append(["index", "--rebuild"])
    for command in commands:
        result = runner.invoke(cli, [*home, *command], env=env)
        assert result.exit_code != 0, (command, result.output)
        assert isinstance(result.exception, SystemExit | None), (command, result.exception)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, (command, result.output)
        assert ("is full" if how == "full" else "read-only") in lines[0], (command, lines[0])
    monkeypatch.undo()
    assert indexed.store().count_incidents() == before


def test_kb_index_on_a_full_disk_prints_one_line_and_keeps_the_index(indexed, monkeypatch):
    import errno

    from click.testing import CliRunner

    import indexer.index_files as index_files
    from scripts.cli import cli

    version = current_version(indexed.index_root)

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(index_files, "_write_file", full)
    result = CliRunner().invoke(
        cli,
        ["--home", str(indexed.home), "index", "--rebuild"],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit | None), (
        result.exception
    )
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is full" in lines[0] and str(indexed.index_root) in lines[0], (
        result.output
    )
    assert current_version(indexed.index_root) == version
    load_index(indexed.index_root)


@pytest.mark.both_engines
def test_a_read_only_database_answers_503_on_both_engines(
    indexed, config, auth, monkeypatch, engine
):
    headers = {"Authorization": auth("integration")["Authorization"]}
    indexed.session_key()
    if engine == "sqlite":
        _limit_database(monkeypatch, "read-only")
    else:
        # New sessions of this database start read-only (as on a standby).
        name = indexed.store().db.execute("SELECT current_database()").fetchone()[0]
        indexed.store().db.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    limited = type(indexed)(config, embedder=indexed.embedder())
    client = create_app({"TESTING": True}, config=config, service=limited).test_client()
    response = client.post(
        "/api/v1/incidents", headers=headers, json={"id": "RO-1", "title": "read only"}
    )
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    assert "read-only" in response.get_json()["error"]["message"]
    limited.close()


# --- choices on someone else's suggestion -------------------------------------------------


def test_only_whoever_asked_records_a_choice_through_the_api(indexed, client, auth, tokens):
    store = indexed.store()
    store.create_token("agent-two", "agent")
    asked = client.post(
        "/api/v1/suggest", headers=auth("agent"), json={"title": "vpn drops"}
    ).get_json()
    sid, used = asked["suggestion_id"], asked["results"][0]["id"]
    other = {"Authorization": f"Bearer {store.create_token('agent-three', 'agent')}"}
    for headers, agent in (
        (auth("integration"), "test-agent"),
        (other, None),
        (auth("admin"), None),
    ):
        body = {"outcome": "none_helped", **({"agent": agent} if agent else {})}
        refused = client.post(f"/api/v1/suggestions/{sid}/feedback", headers=headers, json=body)
        assert refused.status_code == 403, refused.get_json()
        assert refused.get_json()["error"]["code"] == "forbidden"
    assert store.feedback_for(sid) == []
    mine = client.post(
        f"/api/v1/suggestions/{sid}/feedback", headers=auth("agent"), json={"used": used}
    )
    assert mine.status_code == 201
    # An integration records for the agent it asked for, on its own suggestions.
    its = client.post(
        "/api/v1/suggest", headers=auth("integration"), json={"title": "vpn drops"}
    ).get_json()
    recorded = client.post(
        f"/api/v1/suggestions/{its['suggestion_id']}/feedback",
        headers=auth("integration"),
        json={"outcome": "none_helped", "agent": "agent1"},
    )
    assert recorded.status_code == 201 and recorded.get_json()["agent"] == "agent1"


def test_only_whoever_asked_records_a_choice_through_the_page(indexed, app):
    import re

    store = indexed.store()
    store.create_user("ana", "agent", "agent-password")
    store.create_user("bo", "agent", "agent-password")

    def signed_in(name):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        client.post(
            "/login", data={"name": name, "password": "agent-password", "csrf_token": token}
        )
        return client

    ana, bo = signed_in("ana"), signed_in("bo")
    token = re.search(
        r'name="csrf-token" content="([^"]+)"', ana.get("/").get_data(as_text=True)
    ).group(1)
    page = ana.post(
        "/", data={"csrf_token": token, "description": "mailbox full"}, follow_redirects=True
    ).get_data(as_text=True)
    sid = re.search(r'name="suggestion_id" value="([^"]+)"', page).group(1)
    token = re.search(
        r'name="csrf-token" content="([^"]+)"', bo.get("/").get_data(as_text=True)
    ).group(1)
    refused = bo.post("/feedback", data={"suggestion_id": sid, "csrf_token": token, "back": "/"})
    assert refused.status_code == 403
    assert store.feedback_for(sid) == []


# --- limits under concurrent requests -----------------------------------------------------


def _signed_in_clients(app, name: str, password: str, count: int):
    import re

    first = app.test_client()
    page = first.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    assert (
        first.post(
            "/login", data={"name": name, "password": password, "csrf_token": token}
        ).status_code
        == 302
    )
    page = first.get("/").get_data(as_text=True)
    csrf_token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    cookie = first.get_cookie("kb_session").value
    clients = []
    for _ in range(count):
        client = app.test_client()
        client.set_cookie("kb_session", cookie)
        clients.append(client)
    return clients, csrf_token


def _all_at_once(calls):
    import threading

    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(n):
        barrier.wait()
        results[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.both_engines
def test_forty_wrong_passwords_at_once_check_at_most_five(engine, indexed, app, monkeypatch):
    import re

    from kb.store import access

    indexed.store().create_user("ana", "agent", "agent-password")
    checked = []
    real = access.check_password
    monkeypatch.setattr(
        access,
        "check_password",
        lambda password, stored: checked.append(1) or real(password, stored),
    )
    clients = [app.test_client() for _ in range(40)]
    forms = []
    for client in clients:
        page = client.get("/login").get_data(as_text=True)
        forms.append(
            {
                "name": "ana",
                "password": "wrong-password",
                "csrf_token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1),
            }
        )
    statuses = _all_at_once(
        [
            lambda c=c, f=f: c.post("/login", data=f).status_code
            for c, f in zip(clients, forms, strict=True)
        ]
    )
    assert len(checked) <= 5, f"{len(checked)} passwords checked"
    assert statuses.count(401) == len(checked) and statuses.count(429) == 40 - len(checked)
    # The right password is refused too while the name is locked.
    assert (
        clients[0].post("/login", data=dict(forms[0], password="agent-password")).status_code == 429
    )


@pytest.mark.both_engines
def test_forty_drafts_at_once_stop_at_the_limit(engine, indexed, app):
    indexed.store().create_user("ana", "agent", "agent-password")
    clients, csrf_token = _signed_in_clients(app, "ana", "agent-password", 40)
    limit = indexed.config.drafts_per_person_per_day
    statuses = _all_at_once(
        [
            lambda c=c, n=n: (
                c.post(
                    "/drafts",
                    data={
                        "csrf_token": csrf_token,
                        "title": f"Printer gap number {n}",
                        "description": "the label printer prints nothing",
                    },
                ).status_code
            )
            for n, c in enumerate(clients)
        ]
    )
    assert set(statuses) == {302}
    drafts = [
        a for a in indexed.store().iter_articles() if a.status == "draft" and a.owner == "ana"
    ]
    assert len(drafts) == limit, len(drafts)
    files = list(indexed.config.drafts_path.glob("*.md"))
    assert len(files) == limit  # a refused draft leaves no file behind


# --- the storm webhook against hostile receivers ---------------------------------------------


class _HostileReceiver:
    """A loopback receiver that answers a POST slowly (one byte every ``drip`` seconds) or
    with a redirect to ``redirect_to``; counts every request it gets."""

    def __init__(self, *, drip: float = 0.0, redirect_to: str = ""):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append(self.command)
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(drip)
                except OSError:
                    pass

            do_POST = do_GET = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/storms"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def storm_home(indexed):
    import datetime as dt

    from kb.importers import incident_from_record

    now = dt.datetime.now(dt.UTC)
    records = [
        {
            "id": f"STORM-{n}",
            "title": "Payroll portal login fails",
            "status": "open",
            "description": f"cannot sign in to the payroll portal since this morning, user {n}",
            "opened_at": (now - dt.timedelta(minutes=n)).isoformat(),
        }
        for n in range(10)
    ]
    indexed.store().upsert_incidents([incident_from_record(r) for r in records])
    return indexed


def _webhook_worker(service, url):
    from kb.app.service import Service

    return Service(
        service.config.with_overrides(webhook_url=url, webhook_secret="s" * 32),
        embedder=service.embedder(),
    )


def _storm_rows(service):
    return (
        service.store()
        .db.execute("SELECT delivered_at, attempts, last_error FROM storms")
        .fetchall()
    )


def test_a_slow_drip_receiver_is_cut_off_at_the_deadline_and_never_posted_twice(
    storm_home, monkeypatch
):
    import threading

    from kb.app import storms

    monkeypatch.setattr(storms, "POST_DEADLINE_S", 1.0, raising=False)
    receiver = _HostileReceiver(drip=0.5)  # the whole answer would take about 20 s
    workers = [_webhook_worker(storm_home, receiver.url) for _ in range(2)]
    try:
        for storm in storms.current_storms(workers[0]):
            workers[0].store().record_storm(storm)
        began = time.monotonic()
        finished = []
        # Two workers at once, and again while the first post may still be under way.
        threads = [
            threading.Thread(target=lambda w=w: finished.append(storms.deliver_due(w)))
            for w in workers
        ]
        for thread in threads:
            thread.start()
            time.sleep(0.3)
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - began
        assert elapsed < 3.0, f"the post took {elapsed:.1f} s"
        assert finished == [0, 0] and receiver.requests == ["POST"]
        [(delivered_at, attempts, error)] = _storm_rows(storm_home)
        assert delivered_at == "" and attempts == 1 and "within 1 s" in error
        assert storms.lease_seconds() >= 2 * storms.POST_DEADLINE_S
    finally:
        receiver.close()
        for worker in workers:
            worker.close()


def test_a_redirect_is_a_failure_and_never_followed(storm_home):
    from kb.app import storms

    elsewhere = _HostileReceiver()
    receiver = _HostileReceiver(redirect_to=elsewhere.url)
    worker = _webhook_worker(storm_home, receiver.url)
    try:
        for storm in storms.current_storms(worker):
            worker.store().record_storm(storm)
        assert (
            storms.deliver_due(
                worker, now=__import__("datetime").datetime.now(__import__("datetime").UTC)
            )
            == 0
        )
        assert receiver.requests == ["POST"] and elsewhere.requests == []
        [(delivered_at, attempts, error)] = _storm_rows(storm_home)
        assert delivered_at == "" and attempts == 1 and "302" in error and "redirect" in error
    finally:
        receiver.close()
        elsewhere.close()
        worker.close()


# --- where a form sends the browser next -----------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/search\r\nSet-Cookie: planted=1",
        "/\nx",
        "/ok\x00",
        "/\\evil.example/login",
        "/%0d%0aSet-Cookie:%20x=1",
    ],
)
def test_control_characters_in_next_or_back_send_the_browser_home(indexed, app, target):
    import re

    indexed.store().create_user("ana", "agent", "agent-password")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    signed = client.post(
        "/login",
        data={"name": "ana", "password": "agent-password", "csrf_token": token, "next": target},
    )
    assert signed.status_code == 302
    location = signed.headers["Location"]
    assert "\r" not in location and "\n" not in location and "\\" not in location
    assert location == target if target.startswith("/%0d") else location == "/"
    token = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)
    ).group(1)
    back = client.post(
        "/drafts", data={"csrf_token": token, "back": target}
    )  # nothing typed: sent back
    assert back.status_code == 302 and "\n" not in back.headers["Location"]


# --- the audit log's chain ------------------------------------------------------------------


def _tamper(store, engine: str, sql: str, args=()) -> None:
    """Change the audit log as someone with write access to the database could: around
    the append-only triggers."""
    if engine == "sqlite":
        store.db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        store.db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        store.db.execute(sql, list(args))
    else:
        store.db.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        store.db.execute(sql, list(args))
        store.db.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def _verify(service, *extra):
    from click.testing import CliRunner

    from scripts.cli import cli

    env = {"KB_EMBED_BACKEND": "hashing", "KB_DATABASE_URL": service.config.database_url}
    return CliRunner().invoke(
        cli, ["--home", str(service.home), "audit", "--verify", *extra], env=env
    )


def _audited(service) -> list[int]:
    store = service.store()
    for n in range(5):
        store.create_token(f"chain-{n}", "agent", actor="cli:test")
    return [row[0] for row in store.db.execute("SELECT id FROM audit_log ORDER BY id").fetchall()]


@pytest.mark.both_engines
def test_an_untouched_audit_chain_verifies_and_prints_its_head(engine, service):
    ids = _audited(service)
    result = _verify(service)
    assert result.exit_code == 0, result.output
    head = (
        service.store()
        .db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetchone()[0]
    )
    assert f"head: entry {ids[-1]} {head}" in result.output and "0 problem(s)" in result.output
    assert _verify(service, "--expect-head", head).exit_code == 0


@pytest.mark.both_engines
@pytest.mark.parametrize("change", ["edit", "gap", "forged", "back-dated"])
def test_kb_audit_verify_names_the_entry_that_was_tampered_with(engine, service, change):
    from kb.store.privacy import audit_hash

    store = service.store()
    ids = _audited(service)
    target = ids[2]
    if change == "edit":
        _tamper(store, engine, "UPDATE audit_log SET detail = 'role admin' WHERE id = ?", [target])
        named = target
    elif change == "gap":
        _tamper(store, engine, "DELETE FROM audit_log WHERE id = ?", [target])
        named = ids[3]
    elif change == "forged":
        store.db.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES "
            "('2020-01-01T00:00:00.000000Z', 'cli:root', 'token create', 'backdoor', 'role admin')"
        )
        named = store.db.execute("SELECT max(id) FROM audit_log").fetchone()[0]
    else:
        # Appended with a hash computed as kb does, but dated years back.
        previous = store.db.execute(
            "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        entry = [
            "2020-01-01T00:00:00.000000Z",
            "cli:root",
            "token create",
            "backdoor",
            "role admin",
        ]
        store.db.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [*entry, previous, audit_hash(previous, entry)],
        )
        named = store.db.execute("SELECT max(id) FROM audit_log").fetchone()[0]
    result = _verify(service)
    assert result.exit_code == 1, result.output
    assert f"entry {named}:" in result.output, result.output


@pytest.mark.both_engines
def test_a_rewritten_chain_is_found_only_against_a_head_kept_elsewhere(engine, service):
    from kb.store.privacy import audit_hash

    store = service.store()
    ids = _audited(service)
    head = store.db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()[0]
    # Someone edits entry 2 and computes every hash after it again.
    rows = store.db.execute(
        "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id"
    ).fetchall()
    previous = ""
    for row in rows:
        entry = [row[1], row[2], row[3], row[4], "role admin" if row[0] == ids[1] else row[5]]
        _tamper(
            store,
            engine,
            "UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
            [entry[4], previous, audit_hash(previous, entry), row[0]],
        )
        previous = audit_hash(previous, entry)
    assert _verify(service).exit_code == 0  # what chaining alone cannot see
    result = _verify(service, "--expect-head", head)
    assert result.exit_code == 1 and "expected head" in result.output


@pytest.mark.both_engines
def test_entries_appended_at_once_keep_one_unbroken_chain(engine, service):
    def append(n):
        store = service.new_store()
        try:
            store.audit("cli:test", "token create", f"at-once-{n}")
        finally:
            store.close()

    _all_at_once([lambda n=n: append(n) for n in range(20)])
    report = service.store().verify_audit_chain()
    assert report["ok"], report["problems"]
    assert report["entries"] >= 20
