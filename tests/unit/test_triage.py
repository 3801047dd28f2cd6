"""Triage rules on their own: the vote, the models' mix, the probability and "not sure",
priority steps, the first-line hint, and what the public audience is never shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search.classifier import train_classifier
from search.ranking import Viewer
from search.state import DocInfo
from search.triage import TriageModels, probability, raise_priority, triage, vote


def doc(
    doc_id,
    *,
    group="",
    category="",
    priority="",
    escalated="",
    article_id="",
    res_key="",
    resolution="",
):
    return DocInfo(
        kind="incident",
        id=doc_id,
        title=doc_id,
        resolution=resolution or f"fix {doc_id}",
        product="Mail",
        category=category,
        status="resolved",
        audience="internal",
        article_id=article_id,
        updated="",
        review_by="",
        res_key=res_key or f"r:{doc_id}",
        assignment_group=group,
        priority=priority,
        escalated=escalated,
    )


def test_the_vote_weights_closer_incidents_more():
    near = [
        (doc("A", group="Network"), 0.90),
        (doc("B", group="Desktop"), 0.80),
        (doc("C", group="Desktop"), 0.79),
    ]
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
    assert (
        sure["value"] == "Network"
        and not sure["not_sure"]
        and sure["similar_incidents"][:2] == ["0", "1"]
    )


def test_a_fitted_map_gives_the_probability():
    calibration = {"assignment_group": {"weights": [4.0, 0.0, -2.0]}}
    assert probability(calibration, "assignment_group", 1.0, 10) == pytest.approx(0.881, abs=1e-3)
    assert probability({}, "assignment_group", 1.0, 2) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("given", "raised"),
    [
        ("3", "2"),
        ("P3", "P2"),
        ("3 - Moderate", "2 - High"),
        ("Medium", "High"),
        ("low", "medium"),
        ("normal", "high"),
        ("Minor", "Major"),
        ("1", None),
        ("P1", None),
        ("Highest", None),
        ("urgent", None),
        ("Sev-B", None),
    ],
)
def test_priority_steps_follow_the_scale_it_is_written_in(given, raised):
    assert raise_priority(given) == raised


def test_priority_is_raised_for_a_top_tier_and_says_so():
    near = [(doc(str(n), priority="3 - Moderate"), 0.9) for n in range(4)]
    plain = triage(near, {})["priority"]
    assert plain["value"] == "3 - Moderate" and not plain["raised"]
    top = triage(near, {}, customer_tier="Platinum", top_tiers=("platinum",))["priority"]
    assert top["value"] == "2 - High" and top["raised"] and "Platinum" in top["note"]
    assert top["similar_priority"] == "3 - Moderate"


def article(article_id, *, status="validated", audience="internal", title="Mailbox over quota"):
    return DocInfo(
        kind="article",
        id=article_id,
        title=title,
        resolution="Archive old mail",
        product="Mail",
        category="",
        status=status,
        audience=audience,
        article_id=article_id,
        updated="",
        review_by="",
        res_key="",
    )


def test_first_line_hint_counts_escalations_and_names_the_usual_article_by_title():
    docs = {("article", "mail-quota"): article("mail-quota")}
    near = [(doc(str(n), escalated="no", article_id="mail-quota"), 0.9) for n in range(8)]
    near += [(doc("X", escalated="yes"), 0.8), (doc("Y", escalated="yes"), 0.8), (doc("Z"), 0.7)]
    hint = triage(near, {}, docs=docs)["first_line"]
    assert hint["similar"] == 10 and hint["solved_at_first_line"] == 8
    assert (
        hint["text"]
        == "8 of 10 similar incidents were solved at the first line with the article “Mailbox over quota”"
    )
    assert hint["resolution"]["title"] == "Mailbox over quota"
    assert triage([(doc("Z"), 0.7)], {})["first_line"]["similar"] == 0


def test_agents_never_see_a_draft_article_in_the_first_line_hint():
    docs = {("article", "draft-7"): article("draft-7", status="draft", title="Quota draft")}
    near = [
        (doc(str(n), escalated="no", article_id="draft-7", res_key="r:archive"), 0.9)
        for n in range(4)
    ]
    hint = triage(near, {}, docs=docs, viewer=Viewer())["first_line"]
    assert "draft-7" not in json.dumps(hint) and "Quota draft" not in json.dumps(hint)
    assert hint["resolution"]["kind"] == "incident" and hint["text"].endswith("with the fix of 0")
    manager = triage(near, {}, docs=docs, viewer=Viewer(include_drafts=True))["first_line"]
    assert manager["resolution"]["id"] == "draft-7"


def test_the_public_audience_sees_no_incident_ids_nor_internal_text():
    docs = {
        ("article", "mail-quota"): article("mail-quota"),
        ("article", "mail-public"): article("mail-public", audience="public", title="Full mailbox"),
    }
    near = [
        (
            doc(
                f"INC-{n}",
                group="Messaging",
                priority="P3",
                escalated="no",
                resolution="internal note: reset",
                article_id="mail-quota",
            ),
            0.9,
        )
        for n in range(5)
    ]
    shown = json.dumps(triage(near, {}, docs=docs, viewer=Viewer(audience="public")))
    assert "INC-" not in shown and "internal note" not in shown and "mail-quota" not in shown
    near += [(doc(f"INC-{n}", escalated="no", article_id="mail-public"), 0.8) for n in range(5, 11)]
    public = triage(near, {}, docs=docs, viewer=Viewer(audience="public"))["first_line"]
    assert public["resolution"]["id"] == "mail-public" and "Full mailbox" in public["text"]
    assert "INC-" not in json.dumps(public)


def test_no_good_match_makes_every_field_not_sure():
    many = [
        (doc(str(n), group="Network", category="VPN", priority="P3"), 0.9 - n / 100)
        for n in range(8)
    ]
    result = triage(many, {}, no_good_match=True)
    for field in ("assignment_group", "category"):
        assert result[field]["not_sure"] and result[field]["value"] is None
        assert result[field]["best_guess"] and result[field]["reason"].startswith("no good match")
    assert result["priority"]["not_sure"]


def test_a_field_with_too_little_evidence_says_so():
    many = [(doc(str(n), group="Network"), 0.9 - n / 100) for n in range(8)]
    entries = {"assignment_group": {"status": "too_little_evidence", "labelled": 12}}
    group = triage(many, entries)["assignment_group"]
    assert group["not_sure"] and group["best_guess"] == "Network"
    assert group["reason"] == "too little evidence: 12 stored incidents have an assignment group"


def test_escalated_incidents_count_less_in_the_vote():
    near = [
        (doc("A", group="Network", escalated="yes"), 0.9),
        (doc("B", group="Desktop", escalated="no"), 0.9),
    ]
    value, share, _, _ = vote(near, "assignment_group")
    assert value == "Desktop" and share == pytest.approx(2 / 3)


def fitted_entry(model=None, *, mix=1.0, threshold=0.6, tiers=None):
    entry = {
        "status": "fitted",
        "labelled": 400,
        "mix": mix,
        "calibration": [1.0, 0.0, 0.0, 0.0],
        "threshold": threshold,
    }
    if model is not None:
        entry["model"] = model.to_dict()
    if tiers:
        entry["tiers"] = tiers
    return entry


def two_group_model():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 4)).astype(np.float32)
    docs = [["printer", "toner"] if n % 2 else ["vpn", "tunnel"] for n in range(40)]
    labels = ["Hardware" if n % 2 else "Network" for n in range(40)]
    return train_classifier(vectors, docs, labels, {"Hardware": "", "Network": ""})


def test_the_model_outvotes_the_neighbours_by_the_mix_the_replay_chose():
    model = two_group_model()
    near = [(doc(str(n), group="Network"), 0.9) for n in range(3)]
    entries = {"assignment_group": fitted_entry(model, mix=0.75, threshold=0.3)}
    result = triage(
        near, entries, vector=np.zeros(4, dtype=np.float32), doc_stems=["printer", "toner"]
    )
    group = result["assignment_group"]
    assert group["best_guess"] == "Hardware" and group["source"] == "model and similar incidents"
    voted = triage(
        near,
        dict(entries, assignment_group=fitted_entry(model, mix=0.0, threshold=0.3)),
        vector=np.zeros(4, dtype=np.float32),
        doc_stems=["printer", "toner"],
    )["assignment_group"]
    assert voted["best_guess"] == "Network"


def test_the_calibrated_probability_and_the_store_threshold_decide_not_sure():
    near = [(doc("A", group="Network"), 0.9), (doc("B", group="Desktop"), 0.9 - 0.05 * np.log(2))]
    # The vote gives Network 2/3; the identity map keeps it; a threshold of 0.6 is passed.
    sure = triage(near, {"assignment_group": fitted_entry(mix=0.0, threshold=0.6)})[
        "assignment_group"
    ]
    assert sure["value"] == "Network" and sure["probability"] == pytest.approx(2 / 3, abs=1e-3)
    unsure = triage(near, {"assignment_group": fitted_entry(mix=0.0, threshold=0.7)})[
        "assignment_group"
    ]
    assert unsure["value"] is None and "threshold (70%)" in unsure["reason"]


def test_a_store_that_routes_a_tier_differently_says_why():
    tiers = {"platinum": {"group": "Network", "share": 0.8, "incidents": 50, "overall_share": 0.2}}
    near = [(doc(str(n), group="Network"), 0.9) for n in range(5)]
    entries = {"assignment_group": fitted_entry(mix=0.0, threshold=0.3, tiers=tiers)}
    group = triage(near, entries, customer_tier="Platinum")["assignment_group"]
    assert group["customer_tier"]["note"] == (
        "Platinum customers' incidents went to Network in 80% of 50 cases (20% of all incidents)"
    )
    assert "customer_tier" not in triage(near, entries, customer_tier="Gold")["assignment_group"]


def test_decoded_models_are_reused_for_one_profile():
    entries = {"assignment_group": fitted_entry(two_group_model())}
    models = TriageModels(entries)
    assert models.fields["assignment_group"].model.classes == ["Hardware", "Network"]
    assert models.fields["category"].status == "none"


def test_first_line_hint_names_the_article_by_its_title():
    docs = {
        ("article", "mail-quota"): article("mail-quota", title="Mailbox is full and cannot send")
    }
    near = [(doc(str(n), escalated="no", article_id="mail-quota"), 0.9) for n in range(3)]
    hint = triage(near, {}, docs=docs)["first_line"]
    assert hint["text"] == (
        "3 of 3 similar incidents were solved at the first line with the article "
        "“Mailbox is full and cannot send”"
    )
    assert (
        hint["resolution"]["id"] == "mail-quota"
        and hint["resolution"]["title"] == "Mailbox is full and cannot send"
    )
