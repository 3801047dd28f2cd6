"""Authoring rules on their own: lint, drafts from incidents, front-matter edits."""

import datetime as dt

import pytest

from kb.articles import article_sections, parse_article_text
from kb.authoring import set_front_matter_fields
from kb.drafts import draft_from_incident
from kb.errors import ValidationError
from kb.lint import lint_text
from kb.models import Incident
from tests.helpers import GOOD, TODAY


def test_empty_section_is_only_a_warning_on_drafts():
    text = GOOD.format(id="d", status="draft", audience="internal", review_by="2030-01-01")
    text = text.replace("A reason.\n", "")
    _, problems, _ = lint_text(text, "d.md", today=TODAY)
    assert [(p.code, p.severity) for p in problems] == [("empty-section", "warning")]
    _, problems, _ = lint_text(
        text.replace("status: draft", "status: validated"), "d.md", today=TODAY
    )
    assert [(p.code, p.severity) for p in problems] == [("empty-section", "error")]


def test_draft_from_incident_captures_the_customers_words():
    incident = Incident(
        id="INC-42",
        title="Printer shows offline",
        status="resolved",
        product="Printers",
        category="hardware",
        resolution_code="Solved (Permanently)",
        description="The printer on floor 2 says offline.\n# not a heading\n<script>alert(1)</script>",
        resolution="Reserved the printer's IP address and re-added the queue.",
    )
    article_id, text = draft_from_incident(incident, today=dt.date(2026, 5, 1))
    parsed = parse_article_text(text, "draft.md")
    article = parsed.article
    assert article_id == article.id == "printer-shows-offline"
    assert (article.status, article.audience, article.product, article.category) == (
        "draft",
        "internal",
        "Printers",
        "hardware",
    )
    assert article.tags == ["source-incident", "inc-42", "solved-permanently"]
    assert (article.review_by, article.updated) == ("2026-10-28", "2026-05-01")
    sections = dict(article_sections(article.body))
    assert "source_incident: INC-42" in sections[""]
    assert "The printer on floor 2 says offline." in sections["Symptoms"]
    assert sections["Resolution"] == incident.resolution
    assert sections["Applies to"] == "- Printers" and sections.get("Cause", "") == ""
    _, problems, _ = lint_text(text, "draft.md", today=dt.date(2026, 5, 1))
    assert [p.code for p in problems] == ["empty-section"]  # Cause, for the reviewer; no raw HTML
    with pytest.raises(ValidationError, match="only resolved or closed"):
        draft_from_incident(Incident(id="X", title="t", status="open", resolution="r"))
    with pytest.raises(ValidationError, match="no resolution"):
        draft_from_incident(Incident(id="X", title="t", status="closed"))


def test_front_matter_edit_keeps_everything_else():
    text = (
        "---\nid: a\ntitle: 'A: b'\nstatus: >-\n  draft\naudience: internal\n"
        "# a comment\ntags:\n- x\n- y\n---\n\n## Symptoms\nstatus: not front matter\n"
    )
    edited = set_front_matter_fields(text, {"status": "validated", "owner": "kim"})
    assert edited == (
        "---\nid: a\ntitle: 'A: b'\nstatus: validated\naudience: internal\n"
        "# a comment\ntags:\n- x\n- y\nowner: kim\n---\n\n## Symptoms\n"
        "status: not front matter\n"
    )
    edited = set_front_matter_fields(text, {"tags": ["z"]})
    assert "tags: [z]\n---" in edited and "- x" not in edited


def test_lint_reports_impossible_dates_without_crashing():
    text = GOOD.format(id="a", status="validated", audience="internal", review_by="2024-02-30")
    parsed, problems, _ = lint_text(text, "a.md", today=TODAY)
    assert parsed is None
    assert [(p.code, p.severity) for p in problems if p.severity == "error"] == [
        ("front-matter", "error")
    ]
    assert "day is out of range" in problems[0].message


def test_lint_refuses_secrets_in_an_article_but_not_a_support_address():
    from kb.lint import lint_text

    text = GOOD.format(id="vpn", status="validated", audience="internal", review_by="2099-01-01")
    text = text.replace("A reason.", "A reason. Mail support@example.org or call +44 20 7946 0958.")
    _, problems, _ = lint_text(text, "vpn.md", today=TODAY)
    assert not [p for p in problems if p.code == "secret"]
    leaked = text.replace("Fix it;", "Log in with password: Adm1n!2026 and fix it;")
    _, problems, _ = lint_text(leaked, "vpn.md", today=TODAY)
    [problem] = [p for p in problems if p.code == "secret"]
    assert (
        problem.severity == "error"
        and problem.line
        == leaked.splitlines().index(
            next(line for line in leaked.splitlines() if "password:" in line)
        )
        + 1
    )


def test_lint_flags_protocol_relative_links_and_images():
    text = GOOD.format(id="d", status="draft", audience="internal", review_by="2030-01-01")
    text = text.replace(
        "A reason.\n",
        "A reason: see [the portal](//evil.example/login).\n\n![x](//evil.example/p.png)\n",
    )
    _, problems, _ = lint_text(text, "d.md", today=TODAY)
    flagged = [p for p in problems if p.code == "protocol-relative-link"]
    assert len(flagged) == 2 and all(p.severity == "error" for p in flagged)
    assert "//evil.example/login" in flagged[0].message


def test_draft_with_a_front_matter_fence_in_the_product_is_still_valid():
    from kb.drafts import draft_from_text

    product = "Laptop\n---\nstatus: validated"
    text = draft_from_text("VPN drops", "it drops", article_id="vpn-drops", product=product)
    article = parse_article_text(text, "vpn-drops.md").article
    assert article.product == product and article.status == "draft"
    assert text.count("\n---\n") == 1  # the closing fence only
