"""The PostgreSQL engine's own promises: the same schema as SQLite, bad URLs, a schema
newer than the code, moving a home up, and nodes that share one database (in-process;
tests/live/test_nodes.py runs real `kb serve` nodes)."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import psycopg
import pytest
from click.testing import CliRunner

from indexer.embedders import HashingEmbedder
from kb.app.service import Service
from kb.config import load_config
from kb.errors import ConfigError, SchemaTooNewError, StoreUnavailableError
from kb.models import Incident
from kb.store import open_store
from search.suggester import SuggestRequest
from tests.conftest import load_test_data


def _node(tmp_path, name: str, url: str, **settings) -> Service:
    config = load_config(
        environ={},
        home=str(tmp_path / name),
        embed_backend="hashing",
        database_url=url,
        index_refresh_seconds=0.05,
        **settings,
    )
    return Service(config, embedder=HashingEmbedder())


def _ids(service: Service, text: str, k: int = 10) -> list[str]:
    request = SuggestRequest(description=text, k=k)
    return [
        r.id for r in service.suggester().suggest(service.store(), request, record=False).results
    ]


def _until(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _pg_schema(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ).fetchall()
    schema: dict[str, set[str]] = {}
    for table, column in rows:
        schema.setdefault(table, set()).add(column)
    return schema


def test_both_engines_end_up_with_the_same_tables_and_columns(tmp_path, pg_url):
    open_store(tmp_path / "lite").close()
    open_store(tmp_path / "node", database_url=pg_url).close()
    with sqlite3.connect(tmp_path / "lite" / "kb.sqlite3") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        lite = {
            t: {r[1] for r in conn.execute(f"PRAGMA table_info([{t}])")}
            for t in tables
            if not t.startswith("chunks_fts") and t != "sqlite_sequence"
        }
    assert lite == _pg_schema(pg_url)
    with psycopg.connect(pg_url) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    with sqlite3.connect(tmp_path / "lite" / "kb.sqlite3") as conn:
        assert applied == [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]


def test_a_bad_or_unreachable_url_is_one_line_naming_the_host_never_the_password(
    tmp_path, pg_server
):
    from tests.pgserver import free_port

    url = f"postgresql://kb:s3cret-pw@127.0.0.1:{free_port()}/nothing"
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(tmp_path, database_url=url)
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert "127.0.0.1" in message and "s3cret-pw" not in message and "\n" not in message
    result = CliRunner().invoke(
        _cli(), ["--home", str(tmp_path / "h"), "--database-url", url, "audit"]
    )
    assert (
        result.exit_code == 1 and "127.0.0.1" in result.output and "s3cret-pw" not in result.output
    )
    assert len(result.output.strip().splitlines()) == 1
    wrong_db = pg_server.url("no_such_database").replace("kb@", "kb:other-pw@")
    result = CliRunner().invoke(
        _cli(), ["--home", str(tmp_path / "h"), "--database-url", wrong_db, "audit"]
    )
    assert (
        result.exit_code == 1
        and "no_such_database" in result.output
        and "other-pw" not in result.output
    )
    result = CliRunner().invoke(
        _cli(), ["--home", str(tmp_path / "h"), "--database-url", "mysql://x@y/z", "audit"]
    )
    assert result.exit_code == 1 and "postgresql://" in result.output
    with pytest.raises(ConfigError):
        load_config(environ={"KB_DATABASE_URL": "sqlite:///x"}).check_database_url()


def test_a_schema_newer_than_the_code_refuses_to_start(tmp_path, pg_url):
    open_store(tmp_path, database_url=pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', 'now')"
        )
    with pytest.raises(SchemaTooNewError, match="upgrade kb"):
        open_store(tmp_path, database_url=pg_url)
    lite = tmp_path / "lite"
    open_store(lite).close()
    with sqlite3.connect(lite / "kb.sqlite3") as conn:
        conn.execute(
            "INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', 'now')"
        )
    with pytest.raises(SchemaTooNewError, match="m999_from_the_future"):
        open_store(lite)
    result = CliRunner().invoke(_cli(), ["--home", str(lite), "audit"])
    assert result.exit_code == 1 and "newer than this version of kb" in result.output


def _cli():
    from scripts.cli import cli

    return cli


def test_store_copy_moves_a_home_up_whole_and_refuses_a_full_target(tmp_path, pg_url):
    lite = Service(
        load_config(environ={}, home=str(tmp_path / "lite"), embed_backend="hashing"),
        embedder=HashingEmbedder(),
    )
    load_test_data(lite)
    lite.index()
    lite.store().create_user("ana", "agent", "correct horse", actor="test")
    sid = (
        lite.suggester()
        .suggest(lite.store(), SuggestRequest(description="printer toner smudges"), record=True)
        .id
    )
    lite.store().record_feedback(sid, outcome="none_helped", used_id=None, agent="ana")
    key = lite.session_key()
    expected = _ids(lite, "vpn keeps disconnecting")
    counts = {"incidents": lite.store().count_incidents(), "chunks": lite.store().count_chunks()}
    lite.close()

    result = CliRunner().invoke(
        _cli(),
        ["--home", str(tmp_path / "lite"), "store", "copy", "--to", pg_url],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    assert result.exit_code == 0, result.output
    assert (
        "Copied" in result.output and "chunks:" in result.output
    )  # progress, one line per table here

    node = _node(tmp_path, "node", pg_url)
    try:
        store = node.store()
        assert (
            store.count_incidents() == counts["incidents"]
            and store.count_chunks() == counts["chunks"]
        )
        assert store.feedback_for(sid)[0]["outcome"] == "none_helped"
        assert store.authenticate_user("ana", "correct horse") is not None
        assert node.session_key() == key  # people signed in before the move stay signed in
        assert node.store().latest_index_version() is not None
        chain = store.verify_audit_chain()  # the audit chain moves up intact
        assert chain["ok"] and chain["entries"] >= 1 and chain["before_chaining"] == 0
        assert (
            _ids(node, "vpn keeps disconnecting") == expected
        )  # replica built from stored vectors
        # New rows continue after the copied ids.
        node.upsert_incidents(
            [
                Incident(
                    id="NEW-1",
                    title="printer on fire",
                    description="smoke from tray",
                    resolution="unplug and call facilities",
                    status="resolved",
                )
            ]
        )
        assert "NEW-1" in _ids(node, "printer on fire smoke")
    finally:
        node.close()
    again = CliRunner().invoke(
        _cli(),
        ["--home", str(tmp_path / "lite"), "store", "copy", "--to", pg_url],
        env={"KB_EMBED_BACKEND": "hashing"},
    )
    assert again.exit_code == 1 and "not empty" in again.output


def test_two_nodes_share_one_database(tmp_path, pg_url):
    a, b = _node(tmp_path, "a", pg_url), _node(tmp_path, "b", pg_url)
    try:
        load_test_data(a)
        a.index()
        # Node b has no index of its own yet: it builds one from the stored vectors.
        assert _ids(b, "vpn keeps disconnecting")[0] == _ids(a, "vpn keeps disconnecting")[0]
        assert (tmp_path / "b" / "index" / "CURRENT").exists()
        b_version = json.loads(
            (
                tmp_path
                / "b"
                / "index"
                / (tmp_path / "b" / "index" / "CURRENT").read_text()
                / "config.json"
            ).read_text()
        )
        assert b_version["db_version"] == a.store().latest_index_version()["version"]
        assert b.embedder().model_id == b_version["model_id"]
        assert b_version["index_kind"] == "flat"  # by the store's size
        # A node with KB_INDEX_KIND builds its replica in that kind, with the same answers.
        c = _node(tmp_path, "c", pg_url, index_kind="hnsw-sq8")
        try:
            assert _ids(c, "vpn keeps disconnecting") == _ids(a, "vpn keeps disconnecting")
            assert c.suggester().ensure_state(c.store()).index.kind == "hnsw-sq8"
        finally:
            c.close()

        # Posted on a: searchable on b (by its words and its meaning) within 2 seconds.
        posted = time.monotonic()
        a.upsert_incidents(
            [
                Incident(
                    id="INC-X1",
                    title="zebra printer prints blank labels",
                    description="thermal head dirty",
                    resolution="clean the thermal head",
                    status="resolved",
                )
            ]
        )
        assert _until(lambda: "INC-X1" in _ids(b, "zebra printer blank labels"), 2.0)
        assert time.monotonic() - posted < 2.0

        # Feedback recorded on b is counted on a.
        sid = (
            b.suggester()
            .suggest(
                b.store(), SuggestRequest(description="zebra printer blank labels"), record=True
            )
            .id
        )
        b.store().record_feedback(sid, outcome="used", used_id="INC-X1", agent="bo")
        assert a.store().feedback_totals("2000-01-01")["used"] == 1

        # A new version published on a is picked up by b, which keeps answering meanwhile.
        b.suggester().ensure_state(b.store())
        old = b.suggester().state.version
        a.index(rebuild=True)
        assert _until(
            lambda: (b.suggester().ensure_state(b.store()).version != old) and _ids(b, "vpn"), 10.0
        )
        # One indexer at a time across the nodes: a database lock.
        with a.store().indexer_lock(), pytest.raises(BlockingIOError):
            b.index()
    finally:
        a.close()
        b.close()


def test_deleting_a_nodes_lexical_index_rebuilds_it(tmp_path, pg_url):
    a = _node(tmp_path, "a", pg_url)
    try:
        load_test_data(a)
        a.index()
        before = a.store().fts_chunks(["vpn"], 5)
        a.close()
        (tmp_path / "a" / "lexical.sqlite3").unlink()
        assert a.store().fts_chunks(["vpn"], 5) == before
    finally:
        a.close()


def test_the_store_answers_503_while_the_server_is_down_and_recovers(tmp_path, pg_server):
    from tests.pgserver import ThrowawayPostgres

    own = ThrowawayPostgres().start()  # a server of its own, to stop and start
    try:
        node = _node(tmp_path, "a", own.create_database("kb_restart"))
        load_test_data(node)
        node.index()
        store = node.store()
        assert store.count_incidents() > 0
        own.stop()
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            store.count_incidents()
        with pytest.raises(StoreUnavailableError):
            node.upsert_incidents(
                [Incident(id="DOWN-1", title="t", resolution="r", status="resolved")]
            )
        assert time.monotonic() - began < 5
        # A worker that starts meanwhile comes up, and answers 503 in the API's error shape.
        from web import create_app

        late = Service(node.config, embedder=HashingEmbedder())
        client = create_app({"TESTING": True}, config=node.config, service=late).test_client()
        answer = client.get("/api/v1/health")
        assert (
            answer.status_code == 503 and answer.get_json()["error"]["code"] == "store_unavailable"
        )
        own.start()
        assert store.count_incidents() > 0  # the same store object reconnects
        assert client.get("/api/v1/health").status_code == 200
        late.store().create_user("ana", "agent", "correct horse", actor="test")
        page = client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        signed_in = client.post(
            "/login", data={"name": "ana", "password": "correct horse", "csrf_token": csrf}
        )
        assert signed_in.status_code in (302, 303), signed_in.get_data(as_text=True)[:300]
        assert "sign out" in client.get("/").get_data(as_text=True).lower()
        late.close()
        node.upsert_incidents(
            [Incident(id="UP-1", title="after restart", resolution="r", status="resolved")]
        )
        assert store.get_incident("UP-1").title == "after restart"
        node.close()
    finally:
        own.close()
