import sqlite3

import pytest

from kb.errors import NotFoundError, RecordError, ValidationError
from kb.importers import read_incident_file
from kb.models import Incident
from kb.store import open_store
from tests.helpers import write

# Every test here runs on both engines: SQLite in the data home, and PostgreSQL.
pytestmark = pytest.mark.both_engines


def test_store_commits_durably(store, engine):
    if engine == "sqlite":
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:
        # The server decides; the store must not turn durable commits off for itself.
        assert store.db.execute("SELECT current_setting('synchronous_commit')").fetchone()[0] in (
            "on",
            "remote_apply",
            "remote_write",
            "local",
            "off",
        )
        assert (
            store.db.execute("SHOW default_transaction_isolation").fetchone()[0] == "read committed"
        )
    assert store.schema_version() >= 2


def test_migrations_apply_once(home, config):
    first = open_store(home, database_url=config.database_url)
    version = first.schema_version()
    first.close()
    again = open_store(home, database_url=config.database_url)
    assert again.schema_version() == version
    names = [r["name"] for r in again.db["_migrations"].rows]
    assert names == sorted(set(names))
    again.close()


def test_upsert_incidents_counts_changes(store):
    a = Incident(id="A", title="one", resolution="fix", status="resolved")
    b = Incident(id="B", title="two", resolution="fix", status="resolved")
    counts = store.upsert_incidents([a, b])
    assert (counts.inserted, counts.updated, counts.unchanged) == (2, 0, 0)
    b.title = "two changed"
    counts = store.upsert_incidents([a, b])
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 1)
    assert counts.changed_ids == ["B"]
    assert store.get_incident("B").title == "two changed"


def test_failed_write_transaction_leaves_store_unchanged(store):
    store.upsert_incidents([Incident(id="A", title="one", resolution="fix")])
    with pytest.raises(RuntimeError):
        with store.write():
            store.upsert_incidents([Incident(id="B", title="two", resolution="fix")])
            raise RuntimeError("boom")
    assert [i.id for i in store.iter_incidents()] == ["A"]


def test_get_missing_records_raise_not_found(store):
    with pytest.raises(NotFoundError):
        store.get_incident("nope")
    with pytest.raises(NotFoundError):
        store.get_article("nope")
    with pytest.raises(NotFoundError):
        store.get_suggestion("nope")


def test_tokens_are_stored_only_as_hashes(store):
    token = store.create_token("ticketing", "integration")
    rows = list(store.db["api_tokens"].rows)
    assert token not in str(rows)
    principal = store.principal_for_token(token)
    assert (principal.name, principal.role) == ("ticketing", "integration")
    assert store.principal_for_token(token + "x") is None
    store.revoke_tokens("ticketing")
    assert store.principal_for_token(token) is None


def test_unknown_role_is_refused(store):
    with pytest.raises(ValidationError):
        store.create_token("x", "superuser")


def test_passwords_are_hashed_and_checked(store):
    store.create_user("ana", "agent", "correct horse")
    row = next(iter(store.db["users"].rows))
    assert "correct horse" not in row["password_hash"]
    assert store.authenticate_user("ana", "correct horse").role == "agent"
    assert store.authenticate_user("ana", "wrong password") is None
    assert store.authenticate_user("nobody", "correct horse") is None


def _suggestion(store):
    return store.record_suggestion(
        query="vpn",
        results=[
            {"rank": 1, "kind": "article", "id": "net-vpn-drops"},
            {"rank": 2, "kind": "incident", "id": "T-7"},
        ],
        no_good_match=False,
        confidence=0.9,
        k=2,
    )


def test_feedback_is_idempotent_and_changeable(store):
    sid = _suggestion(store)
    first = store.record_feedback(sid, outcome="used", used_id="net-vpn-drops", agent="ana")
    again = store.record_feedback(sid, outcome="used", used_id="net-vpn-drops", agent="ana")
    assert (first.status, again.status) == ("created", "unchanged")
    assert store.count_feedback() == 1
    changed = store.record_feedback(sid, outcome="none_helped", used_id=None, agent="ana")
    assert changed.status == "changed"
    assert store.count_feedback() == 1
    assert store.feedback_for(sid)[0]["outcome"] == "none_helped"
    assert store.db["feedback_events"].count == 2


def test_feedback_must_name_a_shown_result(store):
    sid = _suggestion(store)
    with pytest.raises(ValidationError):
        store.record_feedback(sid, outcome="used", used_id="never-shown", agent="ana")
    with pytest.raises(ValidationError):
        store.record_feedback(sid, outcome="used", used_id=None, agent="ana")
    with pytest.raises(NotFoundError):
        store.record_feedback("sg_missing", outcome="none_helped", used_id=None, agent="ana")
    assert store.count_feedback() == 0


def test_feedback_is_durable_once_acknowledged(store, home, config):
    sid = _suggestion(store)
    store.record_feedback(sid, outcome="used", used_id="T-7", agent="ana")
    # A second, independent connection sees the committed row at once.
    if config.database_url:
        import psycopg

        with psycopg.connect(config.database_url) as other:
            assert other.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1
        return
    other = sqlite3.connect(home / "kb.sqlite3")
    assert other.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1
    other.close()


def test_article_versions_kept(store, data_dir):
    from kb.articles import scan_articles

    parsed = scan_articles(data_dir / "articles").parsed
    store.upsert_articles([p.article for p in parsed], changed_by="ana")
    article = store.get_article("mail-quota")
    article.body += "\n\nExtra line."
    store.upsert_articles([article], changed_by="bo")
    versions = store.article_versions("mail-quota")
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["changed_by"] for v in versions] == ["ana", "bo"]
    assert store.upsert_articles([article]).unchanged == 1


def test_broken_import_leaves_store_unchanged(tmp_path, store):
    good = write(tmp_path, "good.jsonl", '{"id": "1", "title": "ok", "resolution": "r"}\n')
    store.upsert_incidents(read_incident_file(good))
    bad = write(tmp_path, "bad.jsonl", '{"id": "2", "title": "ok"}\n{"id": "3"}\n')
    with pytest.raises(RecordError):
        store.upsert_incidents(read_incident_file(bad))
    assert [i.id for i in store.iter_incidents()] == ["1"]
