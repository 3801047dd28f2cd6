"""Triage rules on their own: the vote, the probability, priority steps, the first-line hint."""

from __future__ import annotations

import pytest

from search.state import DocInfo
from search.triage import probability, raise_priority, triage, vote


def doc(doc_id, *, group="", category="", priority="", escalated="", article_id="", res_key="", resolution=""):
    return DocInfo(kind="incident", id=doc_id, title=doc_id, resolution=resolution or f"fix {doc_id}",
                   product="Mail", category=category, status="resolved", audience="internal",
                   article_id=article_id, updated="", review_by="", res_key=res_key or f"r:{doc_id}",
                   assignment_group=group, priority=priority, escalated=escalated)


def test_the_vote_weights_closer_incidents_more():
    near = [(doc("A", group="Network"), 0.90), (doc("B", group="Desktop"), 0.80), (doc("C", group="Desktop"), 0.79)]
    value, share, evidence, backers = vote(near, "assignment_group")
    assert value == "Network" and evidence == 3 and backers == ["A"] and share > 0.5
    assert vote([(doc("A"), 0.9)], "assignment_group") == ("", 0.0, 0, [])


def test_thin_evidence_is_not_sure_and_says_its_best_guess():
    near = [(doc("A", group="Network"), 0.9), (doc("B", group="Network"), 0.88)]
    result = triage(near, {})
    assert result["assignment_group"]["value"] is None and result["assignment_group"]["not_sure"]
    assert result["assignment_group"]["best_guess"] == "Network"
    many = [(doc(str(n), group="Network"), 0.9 - n / 100) for n in range(8)]
    sure = triage(many, {})["assignment_group"]
    assert sure["value"] == "Network" and not sure["not_sure"] and sure["similar_incidents"][:2] == ["0", "1"]


def test_a_fitted_map_gives_the_probability():
    calibration = {"assignment_group": {"weights": [4.0, 0.0, -2.0]}}
    assert probability(calibration, "assignment_group", 1.0, 10) == pytest.approx(0.881, abs=1e-3)
    assert probability({}, "assignment_group", 1.0, 2) == pytest.approx(0.5)


@pytest.mark.parametrize(("given", "raised"), [
    ("3", "2"), ("P3", "P2"), ("3 - Moderate", "2 - High"), ("Medium", "High"), ("low", "medium"),
    ("normal", "high"), ("Minor", "Major"), ("1", None), ("P1", None), ("Highest", None), ("urgent", None),
    ("Sev-B", None),
])
def test_priority_steps_follow_the_scale_it_is_written_in(given, raised):
    assert raise_priority(given) == raised


def test_priority_is_raised_for_a_top_tier_and_says_so():
    near = [(doc(str(n), priority="3 - Moderate"), 0.9) for n in range(4)]
    plain = triage(near, {})["priority"]
    assert plain["value"] == "3 - Moderate" and not plain["raised"]
    top = triage(near, {}, customer_tier="Platinum", top_tiers=("platinum",))["priority"]
    assert top["value"] == "2 - High" and top["raised"] and "Platinum" in top["note"]
    assert top["similar_priority"] == "3 - Moderate"


def test_first_line_hint_counts_escalations_and_names_the_usual_fix():
    near = [(doc(str(n), escalated="no", article_id="mail-quota"), 0.9) for n in range(8)]
    near += [(doc("X", escalated="yes"), 0.8), (doc("Y", escalated="yes"), 0.8), (doc("Z"), 0.7)]
    hint = triage(near, {})["first_line"]
    assert hint["similar"] == 10 and hint["solved_at_first_line"] == 8
    assert hint["text"] == "8 of 10 similar incidents were solved at the first line with article mail-quota"
    assert triage([(doc("Z"), 0.7)], {})["first_line"]["similar"] == 0


def test_first_line_hint_names_the_article_by_its_title():
    near = [(doc(str(n), escalated="no", article_id="mail-quota"), 0.9) for n in range(3)]
    titles = {"mail-quota": "Mailbox is full and cannot send"}
    hint = triage(near, {}, article_title=lambda article_id: titles.get(article_id, ""))["first_line"]
    assert hint["text"] == ("3 of 3 similar incidents were solved at the first line with the article "
                            "“Mailbox is full and cannot send”")
    assert hint["resolution"]["id"] == "mail-quota" and hint["resolution"]["title"] == titles["mail-quota"]
    hidden = triage(near, {}, article_title=lambda article_id: "")["first_line"]  # a draft, say
    assert hidden["text"].endswith("with article mail-quota") and "title" not in hidden["resolution"]
