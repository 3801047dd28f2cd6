"""The data-driven defaults of `kb articles dupes` and the knowledge-gap clustering, with
the packaged all-MiniLM-L6-v2 model on the shipped sample articles."""

import pytest

from kb.app.dupes import find_service_duplicates
from kb.app.gaps import cluster_gaps
from kb.app.service import Service
from kb.articles import read_article_file, scan_articles
from kb.config import load_config
from tests.conftest import DATA, REPO

ROOT = REPO
REWRITE = DATA / "km" / "vpn-keeps-dropping.md"

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def articles_service(tmp_path_factory):
    home = tmp_path_factory.mktemp("km-home")
    service = Service(load_config(environ={}, home=str(home), embed_backend="torch"))
    articles = [p.article for p in scan_articles(ROOT / "articles").parsed]
    service.store().upsert_articles(articles + [read_article_file(REWRITE).article])
    service.index(fit=False)
    yield service
    service.close()


def test_default_threshold_catches_a_rewrite_and_nothing_else(articles_service):
    report = find_service_duplicates(articles_service)
    assert [(p.a, p.b) for p in report.pairs] == [
        ("vpn-disconnects-frequently", "vpn-keeps-dropping")
    ]
    assert 0.7 < report.threshold < 0.85
    assert {s["a"] for s in report.pairs[0].sections} >= {"Symptoms", "Cause", "Resolution"}


def test_gap_queries_group_by_topic(articles_service):
    texts = [
        "how do I mirror my laptop screen to the meeting room TV",
        "screen mirroring to the conference room display does not work",
        "meeting room TV does not show my laptop when I share the screen",
        "where do I request access to the Spendwise expense tool",
        "Spendwise says I have no access to submit expenses",
        "can't log in to Spendwise to file my expense report",
        "my parking badge does not open the garage gate",
        "garage gate reader rejects my parking card",
    ]
    gaps = [
        {
            "suggestion_id": f"s{i}",
            "query": t,
            "created_at": "2026-10-01T00:00:00Z",
            "no_good_match": True,
            "none_helped": False,
        }
        for i, t in enumerate(texts)
    ]
    clusters = cluster_gaps(gaps, articles_service.embedder())
    groups = sorted(sorted(texts.index(e) for e in c["examples"]) for c in clusters)
    assert groups == [[0, 1, 2], [3, 4, 5], [6, 7]]
