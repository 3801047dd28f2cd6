"""The confidence and no-good-match maps of search.confidence, on synthetic mixed streams."""

import math
import random

import numpy as np
import pytest

from search.confidence import (
    ANSWERABLE,
    FAR,
    NEAR,
    NO_MATCH_CAP,
    PRIOR_WEIGHT,
    STORE_WIDE,
    STREAM_MIX,
    ConfidenceModel,
    StreamQuery,
    choose_cut,
    expected_calibration_error,
    fit_model,
    fit_trust,
    unfitted_judgement,
    wilson_lower,
    without_class,
)


def stream(n_answerable=400, n_near=150, n_far=150, seed=1, language="en"):
    """Answerable requests whose top result is right with probability rising with its
    similarity; off-topic ones with lower similarity and no right result."""
    rng = random.Random(seed)
    out = []
    for kind, n in ((ANSWERABLE, n_answerable), (NEAR, n_near), (FAR, n_far)):
        for _ in range(n):
            s = rng.gauss({ANSWERABLE: 0.7, NEAR: 0.5, FAR: 0.3}[kind], 0.1)
            p_right = 1 / (1 + math.exp(-(12 * s - 7)))
            right = kind == ANSWERABLE and rng.random() < p_right
            answer = [s, s, 0.1, 0.0, 0.0, 0.0, 1.0, 1.0]
            results = [
                ([s, 1.0, 0.0, s, 0.1, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0], right),
                (
                    [s - 0.1, 0.5, 1.0, s, 0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
                    kind == ANSWERABLE and not right and rng.random() < 0.4,
                ),
            ]
            out.append(StreamQuery(kind, language if kind != FAR else None, answer, results))
    return out


def test_the_fitted_confidence_is_calibrated_on_the_mixed_stream():
    model = fit_model(stream())
    held = stream(seed=2)
    rows = [(model.p_right(q.results[0][0], q.answer), q.results[0][1]) for q in held]
    # Weighted to the stream mix the maps are calibrated for.
    share = {
        ANSWERABLE: STREAM_MIX[ANSWERABLE] / 400,
        NEAR: STREAM_MIX[NEAR] / 150,
        FAR: STREAM_MIX[FAR] / 150,
    }
    assert expected_calibration_error(rows, [share[q.kind] for q in held]) < 0.08


def test_high_is_given_only_where_results_were_right_nine_times_in_ten():
    queries = stream()
    model = fit_model(queries)
    above = [
        q.results[0][1]
        for q in queries
        if q.kind == ANSWERABLE and model.p_right(q.results[0][0], q.answer) >= model.high_cut
    ]
    if model.high_cut <= 1.0:
        assert sum(above) / len(above) >= 0.9
    # A stream where nothing is right that often has no "high" at all.
    weak = [
        StreamQuery(q.kind, q.language, q.answer, [(f, r and i % 3 == 0) for f, r in q.results])
        for i, q in enumerate(queries)
    ]
    assert fit_model(weak).high_cut > 1.0


def test_thin_evidence_shrinks_toward_the_base_rate():
    thick = fit_model(stream(n_answerable=600, seed=3))
    thin = fit_model(stream(n_answerable=40, n_near=20, n_far=20, seed=3))
    strong = [0.95, 3.0, 0.0, 0.95, 0.1, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    answer = [0.95, 0.95, 0.1, 0.0, 0.0, 0.0, 1.0, 1.0]
    # The thin store's estimate is its fitted value pulled toward its base rate, by a
    # larger share than the thick store's.
    for model in (thin, thick):
        raw = (
            model.p_right(strong, answer) * (model.evidence + PRIOR_WEIGHT)
            - PRIOR_WEIGHT * model.base_rate
        ) / model.evidence
        pulled = abs(model.p_right(strong, answer) - raw)
        model.pull = pulled / max(abs(raw - model.base_rate), 1e-9)
    assert thin.pull > 2 * thick.pull


def test_too_little_evidence_fits_nothing():
    assert fit_model(stream(n_answerable=10)) is None
    trust, info = fit_trust(stream(n_answerable=10), 1.0)
    assert trust is None and "band without a number" in info["note"]


def test_the_cut_flags_at_most_the_allowed_share_of_answerable_requests():
    rng = np.random.default_rng(4)
    inside, outside = rng.uniform(0.3, 1.0, 500), rng.uniform(0.0, 0.5, 300)
    cut, info = choose_cut(inside, outside, max_flagged=0.03)
    assert np.mean(inside < cut) <= 0.03
    assert info["flagged_off_topic"] > 0.3


def test_a_language_with_evidence_of_its_own_gets_its_own_maps():
    german = [
        StreamQuery(
            q.kind,
            "de" if q.kind != FAR else None,
            [a - 0.2 if i < 2 else a for i, a in enumerate(q.answer)],
            q.results,
        )
        for q in stream(seed=5)
    ]
    trust, info = fit_trust(german, 1.0)
    assert "de" in trust.models and trust.languages == ["de"]
    english, _ = fit_trust(stream(seed=5), 1.0)
    assert english.languages == []
    assert trust.model_for("de")[0] == "de" and trust.model_for("fr")[0] == STORE_WIDE


def test_without_class_renormalises():
    logp = {"a": math.log(0.5), "b": math.log(0.3), "c": math.log(0.2)}
    rest = without_class(logp, "a")
    assert set(rest) == {"b", "c"}
    assert sum(math.exp(v) for v in rest.values()) == pytest.approx(1.0)
    assert math.exp(rest["b"]) == pytest.approx(0.6)


def test_without_a_fitted_map_no_number_is_claimed_and_never_high():
    judged = unfitted_judgement([0.95, 0.5, 0.1], no_good_match=False)
    assert judged.confidences == [None, None, None]
    assert judged.bands == ["medium", "medium", "low"]
    flagged = unfitted_judgement([0.95, 0.5], no_good_match=True)
    assert flagged.bands == ["low", "low"] and max(flagged.scores) <= NO_MATCH_CAP


def test_wilson_lower_bound():
    assert wilson_lower(0.95, 200) > 0.9 > wilson_lower(0.95, 10)


def test_model_round_trip():
    model = fit_model(stream())
    again = ConfidenceModel.from_dict(model.to_dict())
    query = stream(seed=9)[0]
    features = query.results[0][0]
    assert again.p_right(features, query.answer) == pytest.approx(
        model.p_right(features, query.answer)
    )


def test_a_cleanly_separated_replay_puts_the_cut_next_to_the_off_topic_requests():
    inside = np.linspace(0.9, 0.99, 200)
    outside = np.linspace(0.01, 0.1, 200)
    cut, info = choose_cut(inside, outside)
    assert info["balanced_accuracy"] >= 0.99
    # Not at the edge of the answerable replays, where slightly new wordings would be flagged.
    assert 0.05 < cut < 0.2 and info["flagged_off_topic"] >= 0.98
