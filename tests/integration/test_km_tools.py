"""`kb articles ...`: scaffolding, lint, duplicates, stale articles, KCS capture, state
changes and history, through the command line and the library."""

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.articles import HOUSE_SECTIONS, article_sections, read_article_file
from kb.authoring import set_front_matter_fields, slugify
from kb.lint import lint_text
from scripts.cli import cli
from tests.conftest import REPO
from tests.helpers import GOOD, TODAY

SAMPLE_ARTICLES = REPO / "articles"


@pytest.fixture
def run(home, monkeypatch):
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    monkeypatch.delenv("USER", raising=False)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def loaded(run, articles_copy, data_dir):
    """A data home with the test articles (from a copy we may edit) and incidents, indexed."""
    assert run("init").exit_code == 0
    assert run("import", "articles", articles_copy).exit_code == 0
    assert run("import", "incidents", data_dir / "incidents.jsonl").exit_code == 0
    assert run("index").exit_code == 0
    return articles_copy


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- new -------------------------------------------------------------------------------


def test_new_scaffolds_a_complete_draft_and_never_overwrites(run, tmp_path):
    folder = tmp_path / "kb"
    result = run(
        "articles",
        "new",
        "VPN: slow on hotel Wi-Fi",
        "--product",
        "VPN",
        "--category",
        "connectivity",
        "--owner",
        "network",
        "--dir",
        folder,
    )
    assert result.exit_code == 0
    path = folder / "vpn-slow-on-hotel-wi-fi.md"
    assert result.output.strip() == str(path)
    article = read_article_file(path).article
    assert (article.id, article.title, article.status, article.audience) == (
        "vpn-slow-on-hotel-wi-fi",
        "VPN: slow on hotel Wi-Fi",
        "draft",
        "internal",
    )
    assert (article.product, article.category, article.owner) == ("VPN", "connectivity", "network")
    assert article.review_by == (TODAY + dt.timedelta(days=180)).isoformat()
    assert article.updated == TODAY.isoformat()
    assert [h for h, _ in article_sections(article.body)] == list(HOUSE_SECTIONS)
    before = path.read_bytes()
    error = one_line_error(run("articles", "new", "VPN: slow on hotel Wi-Fi", "--dir", folder))
    assert "already exists" in error and "--id" in error
    assert path.read_bytes() == before
    error = one_line_error(
        run("articles", "new", "Other", "--id", "vpn-slow-on-hotel-wi-fi", "--dir", folder)
    )
    assert "already" in error
    assert "must be lower-case" in one_line_error(
        run("articles", "new", "X", "--id", "Bad Id", "--dir", folder)
    )
    # A fresh draft has empty sections: warnings, so lint passes unless --strict.
    assert run("articles", "lint", path).exit_code == 0
    assert run("articles", "lint", path, "--strict").exit_code == 1


# --- lint ------------------------------------------------------------------------------


def write_article(folder, name, **fields):
    values = {
        "id": name,
        "status": "validated",
        "audience": "internal",
        "review_by": (TODAY + dt.timedelta(days=30)).isoformat(),
    }
    values.update(fields)
    text = GOOD.format(**values)
    if name == "other":
        text = text.replace("; see [the other one](other.md)", "")
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_lint_reports_each_problem_with_file_line_and_severity(run, tmp_path):
    folder = tmp_path / "arts"
    folder.mkdir()
    write_article(folder, "other")
    write_article(folder, "good")
    bad = folder / "bad.md"
    bad.write_text(
        "---\n"  # 1
        "id: bad\n"  # 2
        "title: Bad\n"  # 3
        "status: not_validated\n"  # 4
        "audience: public\n"  # 5
        "review_by: 2020-01-01\n"  # 6
        "colour: red\n"  # 7
        "---\n"  # 8
        "\n"  # 9
        "## Symptoms\n"  # 10
        "It fails <b>badly</b>.\n"  # 11
        "\n"  # 12
        "## Cause\n"  # 13
        "\n"  # 14
        "## Resolution\n"  # 15
        "Read [this](missing.md) and [that](other.md#steps) and [web](https://example.org).\n"
        "\n"  # 17
        "<div>raw block</div>\n",  # 18
        encoding="utf-8",
    )
    broken = folder / "broken.md"
    broken.write_text(
        "---\nid: broken\ntitle: B\nstatus: approved\naudience: internal\n"
        "review_by: someday\n---\n\n## Symptoms\nx\n",
        encoding="utf-8",
    )
    (folder / "zdup.md").write_text(
        GOOD.format(id="good", status="validated", audience="internal", review_by="2030-01-01"),
        encoding="utf-8",
    )
    (folder / "binary.md").write_bytes(b"---\nid: bin\n\xff\xfe\n---\n")
    result = run("articles", "lint", folder, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    found = {
        (p["path"].rsplit("/", 1)[-1], p["line"], p["severity"], p["code"])
        for p in report["problems"]
    }
    expected = {
        ("bad.md", 5, "error", "public-not-validated"),
        ("bad.md", 6, "warning", "review-overdue"),
        ("bad.md", 7, "warning", "unknown-field"),
        ("bad.md", 11, "error", "raw-html"),
        ("bad.md", 13, "error", "empty-section"),
        ("bad.md", 16, "error", "broken-link"),
        ("bad.md", 18, "error", "raw-html"),
        ("bad.md", 9, "warning", "missing-section"),
        ("broken.md", 4, "error", "front-matter"),
        ("broken.md", 6, "error", "front-matter"),
        ("zdup.md", 2, "error", "duplicate-id"),
        ("binary.md", 3, "error", "unreadable"),
    }
    assert expected <= found, expected - found
    assert not any(name in ("good.md", "other.md") for name, *_ in found)
    assert report["files"] == 6 and report["errors"] == sum(
        1 for p in report["problems"] if p["severity"] == "error"
    )
    messages = {p["code"]: p["message"] for p in report["problems"] if p["path"].endswith("bad.md")}
    assert "missing.md" in messages["broken-link"] and "Applies to" in messages["missing-section"]
    # The text form: one line per problem, then a summary.
    text = run("articles", "lint", folder).output
    assert f"{bad}:16: error: link to 'missing.md': no such article file [broken-link]" in text
    assert text.strip().splitlines()[-1].startswith("6 files:")


def test_lint_exit_status_follows_errors_and_strict(run, tmp_path):
    folder = tmp_path / "arts"
    folder.mkdir()
    write_article(folder, "other")
    assert run("articles", "lint", folder).exit_code == 0
    assert run("articles", "lint", folder, "--strict").exit_code == 0
    write_article(folder, "late", review_by="2020-01-01")
    assert run("articles", "lint", folder).exit_code == 0
    assert run("articles", "lint", folder, "--strict").exit_code == 1
    write_article(folder, "pub", status="draft", audience="public")
    assert run("articles", "lint", folder).exit_code == 1
    assert run("articles", "lint", tmp_path / "nowhere").exit_code == 1


def test_lint_flags_links_to_archived_articles_and_passes_the_sample(run, tmp_path):
    folder = tmp_path / "arts"
    folder.mkdir()
    write_article(folder, "other", status="archived")
    write_article(folder, "good")
    report = json.loads(run("articles", "lint", folder, "--json").output)
    assert [(p["path"].rsplit("/", 1)[-1], p["code"]) for p in report["problems"]] == [
        ("good.md", "archived-link")
    ]
    result = run("articles", "lint", SAMPLE_ARTICLES, "--json")
    assert json.loads(result.output)["errors"] == 0


# --- dupes -----------------------------------------------------------------------------


def test_dupes_finds_a_copied_article_with_its_overlapping_sections(run, articles_copy, data_dir):
    original = (articles_copy / "net-vpn-drops.md").read_text()
    copy = (
        original.replace("id: net-vpn-drops", "id: vpn-tunnel-drops")
        .replace(
            "VPN tunnel drops every few minutes", "VPN tunnel keeps dropping every few minutes"
        )
        .replace("2. Switch the VPN protocol to TCP 443.", "2. Change the VPN protocol to TCP 443.")
    )
    (articles_copy / "vpn-tunnel-drops.md").write_text(copy)
    run("init")
    assert "run `kb index`" in one_line_error(run("articles", "dupes"))
    run("import", "articles", articles_copy)
    run("import", "incidents", data_dir / "incidents.jsonl")
    run("index")
    report = json.loads(run("articles", "dupes", "--json").output)
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [("net-vpn-drops", "vpn-tunnel-drops")]
    pair = report["pairs"][0]
    assert pair["similarity"] > report["threshold"] > report["typical_similarity"]
    assert {(s["a"], s["b"]) for s in pair["sections"]} >= {
        ("Symptoms", "Symptoms"),
        ("Cause", "Cause"),
        ("Resolution", "Resolution"),
    }
    assert report["articles"] == 5  # the archived article is not indexed
    every = json.loads(run("articles", "dupes", "--json", "--threshold", "-1").output)
    assert len(every["pairs"]) == 10 and every["threshold_source"] == "given"
    sims = [p["similarity"] for p in every["pairs"]]
    assert sims == sorted(sims, reverse=True)
    text = run("articles", "dupes").output
    assert "net-vpn-drops  ~  vpn-tunnel-drops" in text and "Resolution ~ Resolution" in text


# --- stale -----------------------------------------------------------------------------


def shown(*ids):
    return [
        {
            "rank": rank,
            "kind": "article",
            "id": article_id,
            "group": f"a:{article_id}",
            "score": 0.5,
            "raw_score": 0.5,
        }
        for rank, article_id in enumerate(ids, start=1)
    ]


def test_stale_ranks_by_skips_overdue_days_and_disuse(run, loaded, home):
    from kb.store import open_store

    # Review dates relative to today; net-vpn-drops 90 days overdue (harm 3).
    for path in loaded.glob("*.md"):
        due = TODAY + dt.timedelta(days=-90 if path.stem == "net-vpn-drops" else 100)
        path.write_text(set_front_matter_fields(path.read_text(), {"review_by": due}))
    dock = write_article(loaded, "hw-dock")  # no incident, never used: unused (harm 1)
    dock.write_text(
        dock.read_text().replace("; see [the other one](other.md)", "")
    )  # no broken link
    run("import", "articles", loaded)
    store = open_store(home)
    s1 = store.record_suggestion(
        query="q1",
        results=shown("sso-loop", "net-vpn-drops"),
        no_good_match=False,
        confidence=0.5,
        k=5,
    )
    store.record_feedback(s1, outcome="used", used_id="net-vpn-drops", agent="ana")
    s2 = store.record_suggestion(
        query="q2", results=shown("sso-loop", "mail-quota"), no_good_match=True, confidence=0.1, k=5
    )
    store.record_feedback(s2, outcome="none_helped", used_id=None, agent="ana")
    s3 = store.record_suggestion(
        query="q3",
        results=shown("mail-quota", "sso-loop"),
        no_good_match=False,
        confidence=0.5,
        k=5,
    )
    store.record_feedback(s3, outcome="used", used_id="mail-quota", agent="bo")
    store.record_suggestion(
        query="q4", results=shown("sso-loop"), no_good_match=False, confidence=0.5, k=5
    )  # no choice recorded: not judged
    store.close()
    report = json.loads(run("articles", "stale", "--json").output)
    rows = {r["id"]: r for r in report["articles"]}
    assert [r["id"] for r in report["articles"]] == [
        "net-vpn-drops",
        "sso-loop",
        "hw-dock",
        "mail-quota",
    ]
    vpn = rows["net-vpn-drops"]
    assert (vpn["overdue_days"], vpn["unused"], vpn["skipped"], vpn["harm"]) == (90, False, 0, 3.0)
    sso = rows["sso-loop"]
    # Skipped above the used result (q1) and when none helped (q2); shown below the used
    # result (q3) does not count, nor a list nobody judged (q4).
    assert (sso["shown"], sso["judged"], sso["skipped"], sso["unused"]) == (4, 3, 2, False)
    assert sso["harm"] == 2.0 and sso["skip_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert rows["hw-dock"]["reasons"] == ["not used in 90 days"] and rows["hw-dock"]["harm"] == 1.0
    assert rows["mail-quota"]["skipped"] == 1 and not rows["mail-quota"]["unused"]
    # bill-refund is linked to an incident closed in the window: in use, and not listed.
    assert "bill-refund" not in rows
    assert report["explanation"].startswith("harm =")
    assert "harm = 2 x open flags + times skipped" in run("articles", "stale", "--help").output
    text = run("articles", "stale").output.splitlines()
    assert text[1].split() == ["3.00", "net-vpn-drops:", "review", "overdue", "by", "90", "days"]
    # An agent's flag lists an article in use, and weighs two skips.
    store = open_store(home)
    store.flag_article("bill-refund", "outdated", "the refund form moved", agent="ana")
    store.close()
    report = json.loads(run("articles", "stale", "--json").output)
    bill = {r["id"]: r for r in report["articles"]}["bill-refund"]
    assert (bill["flags"], bill["flag_kinds"], bill["harm"]) == (1, {"outdated": 1}, 2.0)
    assert bill["reasons"] == ["flagged outdated x1"]
    assert "2.00  bill-refund: flagged outdated x1" in run("articles", "stale").output


# --- draft-from-incident ---------------------------------------------------------------


def test_draft_from_incident_cli_never_overwrites(run, loaded, tmp_path):
    folder = tmp_path / "drafts"
    first = run("articles", "draft-from-incident", "T-1", "--dir", folder)
    assert first.exit_code == 0 and first.output.strip() == str(folder / "vpn-drops.md")
    second = run("articles", "draft-from-incident", "T-1", "--dir", folder)
    assert second.output.strip() == str(folder / f"vpn-drops-{slugify('T-1')}.md")
    assert "already exists" in one_line_error(
        run("articles", "draft-from-incident", "T-1", "--dir", folder)
    )
    assert "no incident with id 'NOPE'" in one_line_error(
        run("articles", "draft-from-incident", "NOPE", "--dir", folder)
    )
    article = read_article_file(folder / "vpn-drops.md").article
    assert article.title == "vpn drops" and "Disabled wifi power saving." in article.body


# --- set-state and history -------------------------------------------------------------


def test_set_state_edits_the_file_in_place_and_archiving_leaves_search(run, loaded, home):
    path = loaded / "net-vpn-drops.md"
    before = path.read_text().splitlines()
    assert run("search", "vpn keeps disconnecting", "--json").exit_code == 0
    result = run(
        "articles", "set-state", "net-vpn-drops", "archived", "--by", "kim", "--dir", loaded
    )
    assert result.exit_code == 0, result.output
    assert "validated -> archived" in result.output and "removed from search" in result.output
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        ("status: validated", "status: archived"),
        ("updated: 2026-05-01", f"updated: {TODAY.isoformat()}"),
    ]
    body = json.loads(run("search", "vpn keeps disconnecting", "--json").output)
    assert "net-vpn-drops" not in [r["id"] for r in body["results"] if r["kind"] == "article"]
    assert (
        "already archived"
        in run("articles", "set-state", "net-vpn-drops", "archived", "--dir", loaded).output
    )
    history = json.loads(run("articles", "history", "net-vpn-drops", "--json").output)
    versions = history["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["changed_by"] == "kim" and versions[1]["changes"] == ["status", "updated"]
    assert "-status: validated\n+status: archived\n" in versions[1]["diff"]
    text = run("articles", "history", "net-vpn-drops").output
    assert "v2" in text and "by kim" in text and "+status: archived" in text
    # Who changed the state is in the audit log too (once: repeating the change changes nothing).
    audit = run("audit", "--json").output
    entries = [e for e in json.loads(audit) if e["action"] == "article state"]
    assert [(e["actor"], e["target"], e["detail"]) for e in entries] == [
        ("kim", "article:net-vpn-drops", "validated -> archived (version 2)")
    ]
    # The next full index keeps it out too.
    run("index")
    body = json.loads(run("search", "vpn keeps disconnecting", "--json").output)
    assert "net-vpn-drops" not in [r["id"] for r in body["results"]]


def test_set_state_keeps_public_articles_validated(run, loaded, home):
    path = loaded / "mail-quota.md"
    before = path.read_bytes()
    error = one_line_error(
        run("articles", "set-state", "mail-quota", "not_validated", "--dir", loaded)
    )
    assert "only validated articles may be public" in error and "--audience internal" in error
    assert path.read_bytes() == before
    error = one_line_error(
        run(
            "articles",
            "set-state",
            "sso-loop",
            "not_validated",
            "--audience",
            "public",
            "--dir",
            loaded,
        )
    )
    assert "only validated articles may have audience public" in error
    result = run(
        "articles",
        "set-state",
        "mail-quota",
        "not_validated",
        "--audience",
        "internal",
        "--dir",
        loaded,
    )
    assert result.exit_code == 0
    article = read_article_file(path).article
    assert (article.status, article.audience) == ("not_validated", "internal")
    history = json.loads(run("articles", "history", "mail-quota", "--json").output)["versions"]
    assert history[-1]["changes"] == ["status", "audience", "updated"]


def test_set_state_bad_input_changes_nothing(run, loaded, home):
    from kb.store import open_store

    assert "no article with id 'nope'" in one_line_error(
        run("articles", "set-state", "nope", "validated", "--dir", loaded)
    )
    assert "no article with id 'nope'" in one_line_error(run("articles", "history", "nope"))
    path = loaded / "sso-loop.md"
    path.write_text(path.read_text().replace("review_by: 2027-06-30", "review_by: someday"))
    error = one_line_error(run("articles", "set-state", "sso-loop", "validated", "--dir", loaded))
    assert "sso-loop.md:10: field 'review_by' is not a valid date" in error
    store = open_store(home)
    assert store.get_article("sso-loop").status == "not_validated"
    assert len(store.article_versions("sso-loop")) == 1
    store.close()
    assert run("articles", "set-state", "sso-loop", "published").exit_code == 2


def test_set_state_of_an_article_not_yet_imported_changes_only_the_file(run, tmp_path):
    run("init")
    folder = tmp_path / "arts"
    folder.mkdir()
    write_article(folder, "other")  # the article "fresh" links to: a broken link fails lint
    write_article(folder, "fresh", status="draft")
    result = run("articles", "set-state", "fresh", "validated", "--dir", folder)
    assert result.exit_code == 0 and "not in the store yet" in result.output
    assert read_article_file(folder / "fresh.md").article.status == "validated"


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("-:#[]()<>/.!`\n abcdexyz0123456789_'\"|>{}*")), max_size=300
    )
)
def test_lint_never_crashes_on_any_text(tail):
    text = "---\nid: a\ntitle: t\nstatus: draft\naudience: internal\n" + tail
    parsed, problems, _ = lint_text(text, "x.md", today=TODAY)
    assert all(p.severity in ("error", "warning") and p.line >= 1 for p in problems)
    assert parsed is not None or any(p.severity == "error" for p in problems)
