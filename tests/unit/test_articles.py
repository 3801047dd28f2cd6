import pytest

from kb.articles import article_sections, parse_article_text, render_markdown, scan_articles
from kb.errors import RecordError
from tests.conftest import REPO

GOOD = """---
id: demo-article
title: Demo
status: validated
audience: internal
review_by: 2027-01-01
updated: 2026-01-01
tags: [a, b]
---

## Symptoms
Something breaks.

## Resolution
Fix it.
"""


def test_parse_good_article():
    parsed = parse_article_text(GOOD, "demo.md")
    article = parsed.article
    assert (article.id, article.status, article.tags, article.review_by) == (
        "demo-article",
        "validated",
        ["a", "b"],
        "2027-01-01",
    )
    assert [h for h, _ in article_sections(article.body)] == ["Symptoms", "Resolution"]


@pytest.mark.parametrize(
    "change, message, line",
    [
        (("status: validated", "status: approved"), "unknown status", 4),
        (("audience: internal", "audience: world"), "unknown audience", 5),
        (("review_by: 2027-01-01", "review_by: someday"), "not a valid date", 6),
        (("id: demo-article\n", ""), "missing required field 'id'", 1),
        (("title: Demo", "title: [unclosed"), "front matter", 3),
    ],
)
def test_bad_front_matter_names_file_and_line(change, message, line):
    text = GOOD.replace(*change)
    with pytest.raises(RecordError) as info:
        parse_article_text(text, "demo.md")
    assert message in str(info.value)
    assert str(info.value).startswith(f"demo.md:{info.value.line}:")
    assert info.value.line == line


def test_missing_front_matter():
    with pytest.raises(RecordError, match="no front matter"):
        parse_article_text("# Just a heading\n", "x.md")


def test_scan_reports_bad_files_and_keeps_good_ones(tmp_path):
    (tmp_path / "good.md").write_text(GOOD)
    (tmp_path / "bad.md").write_text(GOOD.replace("status: validated", "status: nope"))
    (tmp_path / "dupe.md").write_text(GOOD)
    (tmp_path / "binary.md").write_bytes(b"---\nid: x\n\xff\xfe\n---\n")
    scan = scan_articles(tmp_path)
    assert [p.article.id for p in scan.parsed] == ["demo-article"]
    messages = " | ".join(str(p) for p in scan.problems)
    assert "unknown status" in messages
    assert "duplicate id" in messages
    assert "UTF-8" in messages


def test_symlink_outside_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text(GOOD)
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "link.md").symlink_to(outside)
    scan = scan_articles(folder)
    assert not scan.parsed
    assert "outside the articles folder" in str(scan.problems[0])


def test_rendering_never_emits_raw_html_or_script_links():
    body = (
        "Hello <script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
        "[click](javascript:alert(3)) [data](data:text/html;base64,PHNjcmlwdD4=) "
        "[vb](VBScript:msgbox) [ok](https://example.com) [other](other-article.md)\n"
    )
    html = render_markdown(body)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    lowered = html.lower()
    assert 'href="javascript' not in lowered and 'href="vbscript' not in lowered
    assert 'href="data:' not in lowered
    assert "[click](javascript:alert(3))" in html  # left as inert text
    assert 'href="https://example.com"' in html
    assert 'href="/articles/other-article"' in html


def test_sample_knowledge_base_parses_cleanly():

    scan = scan_articles(REPO / "articles")
    assert scan.problems == []
    assert len(scan.parsed) >= 40
    states = {p.article.status for p in scan.parsed}
    assert {"validated", "not_validated", "draft", "archived"} <= states


def test_plain_text_keeps_commands_as_written():
    from kb.articles import plain_text

    markdown = (
        "Run `export_jobs --id {job_id}` with **$LEDGERLY_API_KEY** set, see [the docs](http://x/y) and _note_ it.\n\n"
        '```bash\ncurl -H "X-Key: $LEDGERLY_API_KEY" https://api.example/export_jobs\n```\n\n- item *two*\n'
    )
    text = plain_text(markdown)
    assert "export_jobs --id {job_id}" in text and "$LEDGERLY_API_KEY set" in text
    assert 'curl -H "X-Key: $LEDGERLY_API_KEY" https://api.example/export_jobs' in text
    assert "bash" not in text.split()  # the fence's language tag is not text
    assert "the docs and note it" in text and "item two" in text
    assert "*" not in text and "](" not in text


def test_links_and_images_on_other_sites_posing_as_relative_are_not_live():
    html = render_markdown(
        "[x](//evil.example/login) and ![x](//evil.example/p.png) and [y](/\\evil.example/a)\n"
    )
    assert "evil.example" in html  # shown as text
    assert "<a " not in html and "<img" not in html


def test_images_on_other_sites_are_never_loaded_but_linked_with_rel():
    html = render_markdown("![chart](https://example.com/p.png) ![local](diagram.png)\n")
    assert '<img src="diagram.png"' in html
    assert '<img src="https://' not in html
    assert (
        '<a href="https://example.com/p.png" rel="noopener noreferrer nofollow">chart</a>' in html
    )
