"""KCS metrics from recorded choices (kb/store/metrics.py), knowledge-gap clustering
(search/gaps.py), and GET /api/v1/metrics."""

import datetime as dt

import pytest

from kb.app.gaps import cluster_gaps
from kb.app.report import build_report
from kb.models import Incident

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines

NOW = dt.datetime.now(dt.UTC)
SINCE = (NOW - dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S")
RECENT = (NOW - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
LONG_AGO = (NOW - dt.timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")


def result(rank, kind, doc_id):
    group = f"a:{doc_id}" if kind == "article" else f"i:{doc_id}"
    return {
        "rank": rank,
        "kind": kind,
        "id": doc_id,
        "group": group,
        "score": 0.5,
        "raw_score": 0.5,
    }


def suggest(store, query, results, *, incident="", flagged=False):
    return store.record_suggestion(
        query=query,
        results=results,
        no_good_match=flagged,
        confidence=0.5,
        k=5,
        incident_ref=incident,
    )


@pytest.fixture
def seeded(store):
    """Six incidents and the choices agents made on suggestions for them."""
    store.upsert_incidents(
        [
            Incident(
                id="A",
                title="vpn",
                resolution="r",
                status="closed",
                article_id="vpn-art",
                resolved_at=RECENT,
            ),
            Incident(id="B", title="mail", resolution="r", status="resolved", resolved_at=RECENT),
            Incident(
                id="C", title="printer", resolution="r", status="resolved", resolved_at=RECENT
            ),
            Incident(id="D", title="keyboard", resolution="r", status="closed", resolved_at=RECENT),
            Incident(id="E", title="monitor", status="open"),
            Incident(
                id="F",
                title="old vpn",
                resolution="r",
                status="closed",
                article_id="vpn-art",
                resolved_at=LONG_AGO,
            ),
        ]
    )
    # A: linked in its record, and the agent used that article too (counted once).
    s = suggest(store, "vpn drops", [result(1, "article", "vpn-art")], incident="A")
    store.record_feedback(s, outcome="used", used_id="vpn-art", agent="ana")
    # B: no link in the record, but the agent used an article shown at rank 2.
    s = suggest(
        store,
        "mailbox full",
        [result(1, "incident", "X"), result(2, "article", "mail-art")],
        incident="B",
    )
    store.record_feedback(s, outcome="used", used_id="mail-art", agent="ana")
    # C: solved with a prior incident (known), not an article.
    s = suggest(
        store,
        "printer offline",
        [result(1, "incident", "P"), result(2, "article", "vpn-art")],
        incident="C",
    )
    store.record_feedback(s, outcome="used", used_id="P", agent="bo")
    # D: none helped; and one flagged suggestion nobody answered.
    s = suggest(store, "keyboard keys dead", [result(1, "article", "mail-art")], incident="D")
    store.record_feedback(s, outcome="none_helped", used_id=None, agent="bo")
    suggest(store, "keyboard not typing at all", [result(1, "article", "vpn-art")], flagged=True)
    # A choice changed later counts once, as its last value.
    s = suggest(store, "mail quota", [result(1, "article", "mail-art")])
    store.record_feedback(s, outcome="none_helped", used_id=None, agent="cy")
    store.record_feedback(s, outcome="used", used_id="mail-art", agent="cy")
    return store


def test_link_rate_and_new_vs_known(seeded):
    counts = seeded.incident_knowledge_counts(SINCE)
    # Closed in the window: A, B, C, D. Linked to an article: A (record), B (used article).
    # Known: A, B, and C (a used prior incident). D is new. F is outside the window.
    assert counts == {"closed": 4, "linked": 2, "known": 3, "linked_in_record": 1}


def test_reuse_per_article_counts_each_incident_once(seeded):
    assert seeded.article_reuse(SINCE) == {
        "vpn-art": {"linked_incidents": 1, "used": 0},  # A, not A's feedback again; not F
        "mail-art": {"linked_incidents": 0, "used": 2},  # B, and the changed choice
    }


def test_acceptance_by_rank_and_none_helped(seeded):
    assert seeded.acceptance_by_rank(SINCE) == {1: 3, 2: 1}
    totals = seeded.feedback_totals(SINCE)
    assert totals == {
        "suggestions": 6,
        "no_good_match": 1,
        "suggestions_with_feedback": 5,
        "feedback": 5,
        "used": 4,
        "none_helped": 1,
    }


def test_gap_suggestions_are_none_helped_or_flagged_and_unused(seeded):
    gaps = seeded.gap_suggestions(SINCE)
    assert [(g["query"], g["none_helped"], g["no_good_match"]) for g in gaps] == [
        ("keyboard not typing at all", False, True),
        ("keyboard keys dead", True, False),
    ]


def test_daily_activity_buckets_by_day(seeded):
    old_day = (NOW - dt.timedelta(days=10)).strftime("%Y-%m-%dT08:00:00.000000Z")
    with seeded.write():
        seeded.db.execute(
            "UPDATE suggestions SET created_at = ? WHERE query = 'vpn drops'", [old_day]
        )
    days = seeded.daily_activity(SINCE)
    assert days[old_day[:10]]["suggestions"] == 1
    today = NOW.strftime("%Y-%m-%d")
    assert days[today]["suggestions"] == 5 and days[today]["no_good_match"] == 1
    assert days[today]["used"] == 4 and days[today]["none_helped"] == 1
    assert days[RECENT[:10]]["incidents_closed"] == 4


def test_window_excludes_older_choices(seeded):
    later = (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert seeded.feedback_totals(later)["suggestions"] == 0
    assert seeded.incident_knowledge_counts(later)["closed"] == 0
    assert seeded.gap_suggestions(later) == []


def test_report_gathers_the_metrics(service, seeded):
    report = build_report(service, days=90)
    assert report["link_rate"] == {"value": 0.5, "linked": 2, "closed": 4}
    assert report["new_vs_known"] == {"known": 3, "new": 1, "known_rate": 0.75}
    assert report["none_helped_rate"] == {"value": 0.2, "none_helped": 1, "feedback": 5}
    assert report["acceptance_by_rank"] == [
        {"rank": 1, "used": 3, "share": 0.75},
        {"rank": 2, "used": 1, "share": 0.25},
    ]
    assert [(r["id"], r["reuse"], r["in_store"]) for r in report["reuse"]] == [
        ("mail-art", 2, False),
        ("vpn-art", 1, False),
    ]
    assert report["gaps"]["queries"] == 2


# --- knowledge gaps --------------------------------------------------------------------


def test_cluster_gaps_names_topics_from_their_queries(embedder):
    texts = [
        "screen mirroring to the conference room tv fails",
        "conference room tv screen mirroring does not work",
        "screen mirroring conference room tv not showing laptop",
        "spendwise expense tool access denied",
        "no access to spendwise expense tool",
        "parking gate badge",
    ]
    gaps = [
        {
            "suggestion_id": f"s{i}",
            "query": t,
            "created_at": f"2026-10-0{i + 1}T00:00:00Z",
            "no_good_match": i % 2 == 0,
            "none_helped": i % 2 == 1,
        }
        for i, t in enumerate(texts)
    ]
    clusters = cluster_gaps(gaps, embedder, threshold=0.5)
    assert [c["size"] for c in clusters] == [3, 2, 1]
    mirroring, spendwise, parking = clusters
    assert mirroring["title"].lower().startswith(("screen mirroring", "conference room"))
    assert {"mirroring", "conference"} <= set(mirroring["terms"])
    assert "spendwise" in spendwise["terms"] and "spendwise" in spendwise["title"].lower()
    assert set(mirroring["examples"]) == set(texts[:3])
    assert (mirroring["no_good_match"], mirroring["none_helped"]) == (2, 1)
    assert (mirroring["first_seen"], mirroring["last_seen"]) == (
        "2026-10-01T00:00:00Z",
        "2026-10-03T00:00:00Z",
    )
    assert parking["suggestion_ids"] == ["s5"]
    assert cluster_gaps([], embedder) == []


# --- the API ---------------------------------------------------------------------------


def test_metrics_api_is_for_knowledge_managers(client, auth, indexed):
    store = indexed.store()
    s = suggest(store, "vpn keeps dropping", [result(1, "article", "net-vpn-drops")])
    store.record_feedback(s, outcome="used", used_id="net-vpn-drops", agent="ana")
    for role in ("knowledge_manager", "admin"):
        response = client.get("/api/v1/metrics?days=30", headers=auth(role))
        assert response.status_code == 200
        body = response.get_json()
        assert body["days"] == 30 and body["totals"]["used"] == 1
        assert body["over_time"]["period"] == "day" and len(body["over_time"]["series"]) == 31
        assert body["reuse"][0]["id"] == "net-vpn-drops"
    for role in ("agent", "integration"):
        response = client.get("/api/v1/metrics", headers=auth(role))
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/metrics").status_code == 401
    response = client.get("/api/v1/metrics?days=7&window=30", headers=auth("admin"))
    assert response.status_code == 400 and "'window'" in response.get_json()["error"]["message"]
    for bad in ("0", "3651", "abc", "-5", "1.5", "٣"):
        response = client.get(f"/api/v1/metrics?days={bad}", headers=auth("admin"))
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "invalid_input"
    default = client.get("/api/v1/metrics", headers=auth("admin")).get_json()
    assert default["days"] == 90 and default["over_time"]["period"] == "week"
