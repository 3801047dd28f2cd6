"""Only finished articles reach agents, and no secret in an article reaches the store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kb.articles import read_article_file
from scripts.cli import cli
from tests.helpers import GOOD, TODAY

SECRET = "Hunter2-Sup3rSecretValue"

UNFINISHED = """---
id: badge-printer-jams
title: Zebra badge printer jams
status: draft
audience: internal
review_by: 2027-06-30
---

## Symptoms
The Zebra badge printer jams on every card at the front desk.

## Cause

## Resolution

## Applies to
- Zebra badge printers
"""

WITH_PASSWORD = """---
id: wifi-guest
title: Guest Wi-Fi for visitors
status: {status}
audience: internal
review_by: 2027-06-30
---

## Symptoms
Visitors cannot join the guest Wi-Fi.

## Cause
The guest network uses a shared key.

## Resolution
Give them the guest network key.
password: {secret}

## Applies to
- Guest Wi-Fi
"""


@pytest.fixture
def run(home, monkeypatch):
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    monkeypatch.delenv("USER", raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def good(folder, name, **fields):
    values = {
        "id": name,
        "status": "validated",
        "audience": "internal",
        "review_by": TODAY.replace(year=TODAY.year + 1).isoformat(),
        **fields,
    }
    (folder / f"{name}.md").write_text(GOOD.format(**values), encoding="utf-8")


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "arts"
    path.mkdir()
    good(path, "other")
    return path


def database_bytes(home) -> bytes:
    return b"".join(
        p.read_bytes() for p in sorted(home.iterdir()) if p.name.startswith("kb.sqlite3")
    )


def test_a_draft_with_empty_sections_is_refused_as_not_validated_and_never_ranks(run, folder, home):
    path = folder / "badge-printer-jams.md"
    path.write_text(UNFINISHED, encoding="utf-8")
    assert run("init").exit_code == 0
    result = run("import", "articles", folder)
    assert result.exit_code == 0, result.output  # a draft may have empty sections
    assert run("index").exit_code == 0
    before = path.read_bytes()
    for state in ("not_validated", "validated"):
        result = run("articles", "set-state", "badge-printer-jams", state, "--dir", folder)
        assert result.exit_code == 1
        message = result.output.strip()
        assert f"badge-printer-jams cannot be {state}" in message
        assert "section 'Cause' is empty" in message and "section 'Resolution' is empty" in message
        assert path.read_bytes() == before
    body = json.loads(run("search", "Zebra badge printer jams on every card", "--json").output)
    assert "badge-printer-jams" not in [r["id"] for r in body["results"]]
    assert all(r["resolution"].strip() for r in body["results"] if r["kind"] == "article")
    # Finished, it goes through.
    path.write_text(
        UNFINISHED.replace("## Cause\n", "## Cause\nWorn platen roller.\n").replace(
            "## Resolution\n", "## Resolution\nReplace the platen roller.\n"
        ),
        encoding="utf-8",
    )
    result = run("articles", "set-state", "badge-printer-jams", "not_validated", "--dir", folder)
    assert result.exit_code == 0, result.output
    body = json.loads(run("search", "Zebra badge printer jams on every card", "--json").output)
    top = body["results"][0]
    assert top["id"] == "badge-printer-jams" and "platen roller" in top["resolution"]


@pytest.mark.parametrize("status", ["validated", "draft"])
def test_an_article_with_a_password_never_reaches_the_store(run, folder, home, status):
    (folder / "wifi-guest.md").write_text(
        WITH_PASSWORD.format(status=status, secret=SECRET), encoding="utf-8"
    )
    assert run("init").exit_code == 0
    result = run("import", "articles", folder)
    assert result.exit_code == 1
    assert "wifi-guest not imported" in result.output and "[secret]" in result.output
    assert "Imported 1 articles" in result.output and "1 refused for lint errors" in result.output
    result = run("articles", "set-state", "wifi-guest", "archived", "--dir", folder)
    assert result.exit_code == 1 and "[secret]" in result.output
    assert run("index").exit_code == 0
    assert SECRET.encode() not in database_bytes(home)
    assert "wifi-guest" not in [
        r["id"] for r in json.loads(run("search", "guest wifi key", "--json").output)["results"]
    ]


def test_import_refuses_finished_articles_with_lint_errors_and_keeps_drafts(run, folder, home):
    good(folder, "broken-link", status="validated")  # links to other.md: fine
    (folder / "broken-link.md").write_text(
        (folder / "broken-link.md").read_text().replace("other.md", "missing.md"), encoding="utf-8"
    )
    good(folder, "html-draft", status="draft")
    (folder / "html-draft.md").write_text(
        (folder / "html-draft.md").read_text().replace("It breaks.", "It <b>breaks</b>."),
        encoding="utf-8",
    )
    assert run("init").exit_code == 0
    result = run("import", "articles", folder)
    assert result.exit_code == 1
    assert (
        "broken-link not imported (validated)" in result.output and "[broken-link]" in result.output
    )
    assert "html-draft imported as a draft with 2 lint errors" in result.output
    assert "Imported 2 articles" in result.output
    from kb.store import open_store

    store = open_store(home)
    try:
        assert store.get_article("html-draft").status == "draft"
        with pytest.raises(Exception, match="broken-link"):
            store.get_article("broken-link")
    finally:
        store.close()
    assert read_article_file(folder / "broken-link.md").article.status == "validated"
