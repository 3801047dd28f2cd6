"""kb.app.report (the report dict and its text form), kb.app.report_html (SVG charts, the HTML
page), and `kb report`."""

import base64
import hashlib
import html
import json
import re

import pytest
from click.testing import CliRunner

from kb.app.report import build_report, render_text
from kb.app.report_html import (
    render_html,
    report_charts,
    svg_bar_chart,
    svg_line_chart,
    svg_pareto_chart,
    svg_stacked_bar,
)
from kb.store import open_store
from scripts.cli import cli
from tests.helpers import SVG, parse_svg

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines

NASTY = "<script>alert(\"x\")</script> & 'quotes'"


def assert_csp_safe(markup: str) -> None:
    lowered = markup.lower()
    assert "<script" not in lowered and "style=" not in lowered
    assert not re.search(r"\son[a-z]+\s*=", lowered)  # no event handlers
    assert "href" not in lowered and "url(" not in lowered


CHARTS = {
    "line": lambda label: svg_line_chart(
        ["11-01", "11-02", label], {"suggestions": [3, 5, 4], label: [1, None, 2]}, title=label
    ),
    "line_percent": lambda label: svg_line_chart(
        ["a", "b"], {"rate": [0.25, 0.5]}, title=label, percent=True
    ),
    "bar": lambda label: svg_bar_chart([(label, 3), ("b", 1)], title=label),
    "column": lambda label: svg_bar_chart([("#1", 10), (label, 2)], title=label, horizontal=False),
    "pareto": lambda label: svg_pareto_chart([(label, 5), ("b", 3), ("c", 2)], title=label),
    "stacked": lambda label: svg_stacked_bar([(label, 3), ("none helped", 1)], title=label),
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_charts_are_escaped_well_formed_svg_without_script_or_style(name):
    svg = CHARTS[name](NASTY)
    assert_csp_safe(svg)
    root = parse_svg(svg)
    texts = [
        "".join(el.itertext()) for el in root.iter() if el.tag in (f"{SVG}text", f"{SVG}title")
    ]
    assert any(NASTY in t or NASTY[:30] in t for t in texts)  # the text survives, as text
    assert root.get("aria-label") == NASTY


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_charts_without_data_say_so(name):
    empty = {
        "line": lambda: svg_line_chart([], {}, title="t"),
        "line_percent": lambda: svg_line_chart(["a"], {"rate": [None]}, title="t", percent=True),
        "bar": lambda: svg_bar_chart([], title="t"),
        "column": lambda: svg_bar_chart([], title="t", horizontal=False),
        "pareto": lambda: svg_pareto_chart([("a", 0)], title="t"),
        "stacked": lambda: svg_stacked_bar([("used", 0)], title="t"),
    }[name]()
    assert "No data yet" in empty
    parse_svg(empty)


@pytest.fixture
def report_with_data(indexed):
    store = indexed.store()
    shown = [
        {
            "rank": 1,
            "kind": "article",
            "id": "net-vpn-drops",
            "group": "a:net-vpn-drops",
            "score": 0.8,
            "raw_score": 0.8,
        }
    ]
    for query, outcome in [
        ("vpn drops again", "used"),
        ("screen mirroring to tv <i>fails</i>", None),
        ("screen mirroring to the tv fails again", None),
    ]:
        sid = store.record_suggestion(
            query=query, results=shown, no_good_match=outcome is None, confidence=0.5, k=5
        )
        store.record_feedback(
            sid,
            outcome=outcome or "none_helped",
            used_id="net-vpn-drops" if outcome else None,
            agent="ana",
        )
    return build_report(indexed, days=30)


def test_build_report_is_plain_json_with_every_section(report_with_data):
    report = json.loads(json.dumps(report_with_data))
    assert report == report_with_data
    assert set(report) >= {
        "generated_at",
        "days",
        "since",
        "totals",
        "link_rate",
        "new_vs_known",
        "none_helped_rate",
        "acceptance_by_rank",
        "reuse",
        "pareto",
        "over_time",
        "gaps",
        "stale",
    }
    assert report["totals"]["articles"] == {
        "archived": 1,
        "draft": 1,
        "not_validated": 1,
        "validated": 2,
    }
    assert report["gaps"]["queries"] == 2
    [cluster] = report["gaps"]["clusters"]
    assert cluster["size"] == 2 and "mirroring" in cluster["terms"]
    assert report["over_time"]["series"][-1]["suggestions"] == 3


def test_build_report_rejects_a_bad_window(service):
    from kb.errors import ValidationError

    for days in (0, -1, 3651, 2.5, True):
        with pytest.raises(ValidationError):
            build_report(service, days=days)


def test_text_summary(report_with_data):
    text = render_text(report_with_data)
    assert text.startswith("KCS report for the last 30 days")
    assert "None-helped rate: 67%" in text and "Used results by rank: #1 100%" in text
    assert re.search(r"\n\s+2\s+Screen mirroring to (the )?tv (<i>)?fails", text)


def test_html_page_is_self_contained(report_with_data):
    page = render_html(report_with_data)
    assert page.startswith("<!DOCTYPE html>")
    assert_csp_safe(re.sub(r"<style>.*?</style>", "", page, flags=re.S))
    assert "screen mirroring to tv &lt;i&gt;fails&lt;/i&gt;" in page and "<i>" not in page
    # Nothing is fetched: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\"'\s<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"\s(src|href)=", page)
    # Its own CSP allows exactly its one style block.
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    csp = html.unescape(
        re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    )
    assert csp == f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:"
    assert page.count("<svg") == len(report_charts(report_with_data))
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        parse_svg(svg)


def test_report_cli_text_json_and_html(home, monkeypatch, indexed, tmp_path, report_with_data):
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_DATABASE_URL", indexed.config.database_url)
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--days", "30"], catch_exceptions=False)
    assert result.exit_code == 0 and "None-helped rate: 67%" in result.output
    result = runner.invoke(cli, ["report", "--json", "--days", "7"], catch_exceptions=False)
    assert json.loads(result.output)["days"] == 7
    page = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", "--html", str(page)], catch_exceptions=False)
    assert result.exit_code == 0 and f"Wrote {page}" in result.output
    assert page.read_text().startswith("<!DOCTYPE html>") and "Knowledge gaps" in page.read_text()
    result = runner.invoke(cli, ["report", "--html", str(tmp_path / "no" / "r.html")])
    assert result.exit_code == 1 and "not a folder" in result.output
    assert runner.invoke(cli, ["report", "--days", "0"]).exit_code == 2
    store = open_store(home, database_url=indexed.config.database_url)
    assert store.count_suggestions() == 3  # the report only reads
    store.close()
