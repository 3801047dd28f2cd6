"""The report's charts and summaries, from figures alone."""

import datetime as dt

import pytest

from kb.app.report import activity_series, pareto
from kb.app.report_html import (
    svg_bar_chart,
    svg_line_chart,
    svg_pareto_chart,
)
from tests.helpers import SVG, parse_svg


def test_line_chart_draws_one_line_per_series_and_breaks_at_gaps():
    root = parse_svg(
        svg_line_chart(
            ["d1", "d2", "d3", "d4"], {"a": [1, 2, 3, 4], "b": [1, None, 2, 3]}, title="t"
        )
    )
    lines = root.findall(f"{SVG}polyline")
    assert [len(line.get("points").split()) for line in lines] == [4, 1, 2]
    dots = [el for el in root.iter(f"{SVG}circle")]
    assert len(dots) == 7
    assert "b, d3: 2" in [el.findtext(f"{SVG}title") for el in dots]


def test_bar_lengths_follow_values_and_pareto_line_ends_at_100_percent():
    root = parse_svg(svg_bar_chart([("a", 4), ("b", 2), ("c", 1)], title="t"))
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert (
        widths[0]
        == pytest.approx(2 * widths[1], rel=0.01)
        == pytest.approx(4 * widths[2], rel=0.02)
    )
    root = parse_svg(
        svg_pareto_chart([(f"x{i}", 70 - i) for i in range(70)], title="t", max_items=10)
    )
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 10 and bars[-1].findtext(f"{SVG}title").startswith("61 others")
    assert bars[-1].findtext(f"{SVG}title").endswith("(cumulative 100%)")


def test_pareto_summary():
    rows = [
        {"id": c, "reuse": n}
        for c, n in zip("abcdefghij", [40, 30, 10, 8, 5, 3, 2, 1, 1, 0], strict=True)
    ]
    summary = pareto(rows)
    assert (summary["articles"], summary["total_reuse"], summary["top_articles"]) == (10, 100, 2)
    assert summary["top_share"] == 0.7 and summary["articles_for_80"] == 3
    assert [p["cumulative_share"] for p in summary["points"]][:3] == [0.4, 0.7, 0.8]
    assert pareto([])["top_share"] is None and pareto([])["articles_for_80"] is None


def test_activity_series_fills_every_period():
    daily = {
        "2026-11-02": {"suggestions": 2, "used": 1, "none_helped": 1},
        "2026-11-04": {"suggestions": 3, "used": 3},
        "1999-01-01": {"suggestions": 9},
    }
    days = activity_series(daily, dt.date(2026, 11, 1), dt.date(2026, 11, 5), "day")
    assert [d["start"] for d in days] == [f"2026-11-0{i}" for i in range(1, 6)]
    assert [d["suggestions"] for d in days] == [0, 2, 0, 3, 0]
    assert [d["none_helped_rate"] for d in days] == [None, 0.5, None, 0.0, None]
    weeks = activity_series(daily, dt.date(2026, 10, 28), dt.date(2026, 11, 5), "week")
    # Weeks start on Monday: 26 Oct and 2 Nov.
    assert [(w["start"], w["suggestions"]) for w in weeks] == [("2026-10-26", 0), ("2026-11-02", 5)]
