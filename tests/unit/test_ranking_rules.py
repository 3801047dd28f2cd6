"""Ranking rules on their own: thresholds, the classifier, profiles, confidence, the replay objective, identifiers."""

import numpy as np
import pytest

from kb.lexical import identifier_phrases
from search.calibration import choose_threshold, objective
from search.classifier import ResolutionClassifier, content_stems, train_classifier
from search.profile import RankingProfile
from search.ranking import confidence_features, result_confidence


def test_threshold_flags_at_most_the_aimed_share_and_separates_when_it_can():
    rng = np.random.default_rng(1)
    inside = list(rng.normal(0.8, 0.05, 500))
    far = list(rng.normal(0.3, 0.05, 300))
    threshold, info = choose_threshold(inside, far)
    assert threshold == pytest.approx(np.quantile(inside, 0.02))
    assert info["flagged_background"] == 1.0 and info["flagged_in_scope"] <= 0.02
    # Background denser than the in-scope scores only far below them: a lower threshold
    # separates better, so the threshold moves down; it never moves up.
    low_tail = list(rng.normal(0.8, 0.05, 490)) + list(rng.normal(0.45, 0.01, 10))
    lower, _ = choose_threshold(low_tail, list(rng.normal(0.2, 0.02, 300)))
    assert lower <= np.quantile(low_tail, 0.02) + 1e-9
    # No background: the aimed quantile; no in-scope evidence: the default.
    alone, _ = choose_threshold(inside, [])
    assert alone == pytest.approx(np.quantile(inside, 0.02))
    assert choose_threshold([], far)[0] == RankingProfile().match_threshold
    assert (
        choose_threshold(inside[:20], far)[0] == RankingProfile().match_threshold
    )  # too few to place it


def test_classifier_learns_groups_and_survives_the_profile():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    vectors, docs, labels = [], [], []
    for n in range(120):
        g = n % 3
        v = centres[g] + 0.3 * rng.normal(size=16)
        vectors.append(v / np.linalg.norm(v))
        docs.append(content_stems(f"{['printer', 'network', 'mailbox'][g]} problem number {n}"))
        labels.append(f"r:{g}")
    model = train_classifier(
        np.array(vectors), docs, labels, {f"r:{g}": f"I-{g}" for g in range(3)}
    )
    logp = model.log_proba(vectors[4], docs[4])
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-5)
    assert model.classes[int(np.argmax(logp))] == "r:1"
    again = ResolutionClassifier.from_dict(model.to_dict())
    assert np.allclose(again.log_proba(vectors[4], docs[4]), logp, atol=0.05)
    assert again.leads == ["I-0", "I-1", "I-2"]


def test_profiles_saved_before_blends_rank_as_they_did():
    old = {
        "lexical_weight": {"short": 0.05, "medium": 0.3, "long": 0.4},
        "vote_tau": 0.035,
        "threshold": 0.5,
        "source": "fitted",
    }
    profile = RankingProfile.from_dict(old)
    assert profile.blend_for(5) == {"kind": "fused", "weight": 0.05, "tau": 0.035}
    assert profile.blend_for(200)["weight"] == 0.4
    assert profile.confidence_for(5)  # a usable confidence map


def test_confidence_grows_with_similarity_and_lead():
    from search.ranking import Candidates, GroupScore

    cands = Candidates(dense={1: 0.9, 2: 0.6, 3: 0.5})
    groups = [
        GroupScore("a", 1.0, [(("incident", "a"), 1.0, 1)]),
        GroupScore("b", 0.6, [(("incident", "b"), 0.6, 2)]),
        GroupScore("c", 0.5, [(("incident", "c"), 0.5, 3)]),
    ]
    mapping = [10.0, 2.0, -6.0, 0.2]
    assert confidence_features(groups, cands, 0, 0.2) == pytest.approx([0.9, 2.0])
    first, second = (result_confidence(groups, cands, p, mapping) for p in (0, 1))
    assert 0 < second < first < 1


def test_objective_prefers_more_right_answers_at_the_top():
    assert objective([1, 1, 2]) > objective([1, 2, 2]) > objective([1, 0, 0])


def test_identifiers_are_asked_whole():
    phrases = identifier_phrases(
        "ORA-12541 after upgrade to 2.3.0 at org.apache.Foo.run(Foo.java:123); HTTP 503"
    )
    assert "ora 12541" in phrases and "2 3 0" in phrases and "http 503" in phrases
    assert "org apache foo run" in phrases
    assert not any(p.endswith("123") for p in phrases)  # a stack frame's line number is noise


def test_shown_confidence_falls_down_the_list():
    from search.ranking import Candidates, GroupScore
    from search.suggester import shown_confidences

    # The fourth group is very similar but ranked low: it must not outshine the ones above.
    cands = Candidates(dense={1: 0.8, 2: 0.5, 3: 0.45, 4: 0.95})
    groups = [
        GroupScore(g, s, [(("incident", g), s, c)])
        for g, s, c in (("a", 1.0, 1), ("b", 0.6, 2), ("c", 0.55, 3), ("d", 0.5, 4))
    ]
    shown = shown_confidences(groups, cands, 4, [10.0, 2.0, -6.0, 0.2])
    assert all(later <= earlier for earlier, later in zip(shown, shown[1:], strict=False))
    assert all(value <= 1 - shown[0] + 1e-12 for value in shown[1:])


def test_filters_take_a_name_in_any_of_its_spellings():
    from types import SimpleNamespace

    from search.ranking import Filters

    doc = SimpleNamespace(product="Laptops", category="Hardware")
    assert Filters(product="laptop").accept(doc) and Filters(
        product=" LAPTOPS ", category="hardware"
    ).accept(doc)
    assert not Filters(product="Laptop bags").accept(doc)
