"""kb tune: fine-tuning switches models only when the held-out incidents rank better."""

import pytest

from indexer.finetune import FineTuneSettings
from indexer.index_files import read_config
from kb.app import tuning
from kb.errors import NotEnoughDataError
from search.suggester import SuggestRequest
from tests.conftest import REPO, load_test_data, real_model_service, sample_kb_service

ROOT = REPO

pytestmark = pytest.mark.real_model

QUICK = FineTuneSettings(epochs=0.1, batch_size=16, max_seconds=120, threads=2)


real_service = real_model_service


@pytest.fixture
def sample_service(tmp_path):
    service = sample_kb_service(tmp_path / "home")
    yield service
    service.close()


def test_too_little_data_changes_nothing(tmp_path):
    service = real_service(tmp_path / "home")
    load_test_data(service)
    service.index()
    before = read_config(service.index_root)["version"]
    with pytest.raises(NotEnoughDataError, match="at least"):
        tuning.tune(service, settings=QUICK)
    assert read_config(service.index_root)["version"] == before
    models = service.home / "models"
    assert not list(models.glob("tuned-*")) and not list(
        models.glob(".tmp-*")
    )  # no model kept or staged
    service.close()


def test_switches_only_when_better_and_rolls_back(sample_service, monkeypatch):
    service = sample_service
    packaged = read_config(service.index_root)
    scores = iter([{"accuracy_at_1": 0.8, "mrr": 0.85}, {"accuracy_at_1": 0.7, "mrr": 0.8}])
    monkeypatch.setattr(tuning, "rank_accuracy", lambda *a, **k: next(scores))
    report = tuning.tune(service, settings=QUICK)
    assert not report.switched and "not clearly better" in report.reason
    assert read_config(service.index_root)["version"] == packaged["version"]
    assert not list((service.home / "models").glob("tuned-*"))

    # A near-tie on the held-out incidents is no clear win.
    scores = iter([{"accuracy_at_1": 0.8, "mrr": 0.85}, {"accuracy_at_1": 0.805, "mrr": 0.86}])
    monkeypatch.setattr(tuning, "rank_accuracy", lambda *a, **k: next(scores))
    assert not tuning.tune(service, settings=QUICK).switched

    # A clear win on the held-out incidents, but the whole shipped ranking is no better on
    # the replay: nothing is published and no tuned model is kept.
    scores = iter([{"accuracy_at_1": 0.8, "mrr": 0.85}, {"accuracy_at_1": 0.9, "mrr": 0.92}])
    monkeypatch.setattr(tuning, "rank_accuracy", lambda *a, **k: next(scores))
    objectives = iter([1.7, 1.69])
    monkeypatch.setattr(tuning, "replay_objective", lambda profile: next(objectives))
    report = tuning.tune(service, settings=QUICK)
    assert not report.switched and "shipped ranking" in report.reason
    assert read_config(service.index_root)["version"] == packaged["version"]
    assert not list((service.home / "models").glob("tuned-*"))

    scores = iter([{"accuracy_at_1": 0.8, "mrr": 0.85}, {"accuracy_at_1": 0.9, "mrr": 0.92}])
    monkeypatch.setattr(tuning, "rank_accuracy", lambda *a, **k: next(scores))
    objectives = iter([1.7, 1.8])
    monkeypatch.setattr(tuning, "replay_objective", lambda profile: next(objectives))
    report = tuning.tune(service, settings=QUICK)
    assert report.switched and report.steps > 0
    config = read_config(service.index_root)
    assert config["model_path"].startswith("models/tuned-")
    assert config["model_id"] != packaged["model_id"]

    # A fresh process (new service) serves with the tuned model, from the index's config.
    fresh = real_service(service.home)
    suggestion = fresh.suggester().suggest(
        fresh.store(),
        SuggestRequest(description="vpn keeps disconnecting every few minutes"),
        record=False,
    )
    assert fresh.embedder().model_id == config["model_id"]
    assert suggestion.results
    fresh.close()

    result = tuning.rollback(service)
    config = read_config(service.index_root)
    assert config["model_id"] == packaged["model_id"]
    assert result["model_path"] == packaged["model_path"]
    with pytest.raises(Exception, match="nothing to roll back"):
        tuning.rollback(real_service(service.home))


def test_tuning_data_keeps_held_out_incidents_out_of_training(sample_service):
    from search.profile import RankingProfile

    store = sample_service.store()
    profile = RankingProfile.from_dict(
        store.latest_ranking_profile(sample_service.embedder().model_id)
    )
    data = tuning.collect_tuning_data(store, profile)
    held = {text for text, _ in data.queries}
    trained = {text for texts in data.train_groups.values() for text in texts}
    assert held and not held & trained
    assert not held & {text for text, _ in data.corpus}


def test_feedback_pairs_are_bounded_per_agent_and_day(indexed):
    store = indexed.store()
    suggestion = indexed.suggester().suggest(store, SuggestRequest(description="vpn drops at home"))
    top = suggestion.results[0]
    for n in range(30):
        sid = store.record_suggestion(
            query=f"vpn problem {n}",
            results=[{"rank": 1, "kind": top.kind, "id": top.id, "group": top.group}],
            no_good_match=False,
            confidence=0.9,
            k=1,
        )
        store.record_feedback(sid, outcome="used", used_id=top.id, agent="noisy")
    pairs = tuning.feedback_pairs(store, per_agent_per_day=5)
    assert len(pairs) == 5 and all(group == top.group for _, group in pairs)
