"""Tests with the packaged all-MiniLM-L6-v2 model, on the shipped sample knowledge base."""

import pytest

from search.suggester import SuggestRequest
from tests.conftest import REPO, sample_kb_service

ROOT = REPO

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def sample_service(tmp_path_factory):
    service = sample_kb_service(tmp_path_factory.mktemp("sample-home"))
    yield service
    service.close()


def ask(service, text, k=5):
    return service.suggester().suggest(
        service.store(), SuggestRequest(description=text, k=k), record=False
    )


def test_vpn_drop_finds_the_vpn_article_first(sample_service):
    top = ask(sample_service, "vpn keeps disconnecting every few minutes").results[0]
    assert (top.kind, top.id) == ("article", "vpn-disconnects-frequently")


def test_the_ranking_profile_is_fitted_on_the_sample(sample_service):
    profile = sample_service.suggester().ensure_state(sample_service.store()).profile
    assert profile.source == "fitted"
    assert profile.fitted["replay_queries"] >= 100


def test_sample_eval_set(sample_service):
    from kb.app.evaluation import evaluate, read_labelled_queries

    queries = read_labelled_queries(ROOT / "kb" / "sample" / "eval.jsonl")
    shipped = evaluate(sample_service.suggester(), sample_service.store(), queries)
    dense = evaluate(sample_service.suggester(), sample_service.store(), queries, ranking="dense")
    assert shipped["accuracy_at_1"] >= 0.85
    assert shipped["accuracy_at_1"] >= dense["accuracy_at_1"]
    assert shipped["flagged_out_of_scope_rate"] >= 0.5
    assert shipped["flagged_in_scope_rate"] <= 0.1


def test_out_of_scope_request_is_flagged(sample_service):
    assert ask(sample_service, "what is on the canteen menu for lunch on friday").no_good_match
