"""The report as one self-contained HTML page, with charts drawn as inline SVG.

The chart functions (``svg_line_chart``, ``svg_bar_chart``, ``svg_pareto_chart``,
``svg_stacked_bar``) take plain data and return an SVG string. Their output is meant to be
dropped into any page, including one served under a strict Content-Security-Policy: no
``<script>``, no event handlers, no ``style=`` attributes (only SVG presentation attributes
such as ``fill=``), no external references. Every piece of text is escaped. Hovering a
point or bar shows its exact value (an SVG ``<title>``; no script needed).

:func:`report_charts` turns :func:`kb.app.report.build_report`'s dict into every chart of the
report, by name (``usage``, ``none_helped_rate``, ``choices``, ``known``, ``rank``,
``pareto``, ``gaps``, ``stale``), for pages that lay them out themselves.
:func:`render_html` builds the whole page: it loads nothing from the network and carries
its own CSP, which allows only its one ``<style>`` block (by hash).

The signatures of these functions and the chart names are kept stable; new options come
as keyword arguments with defaults.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
TEXT = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"


def _e(value: Any) -> str:
    """Text escaped for HTML and SVG (element content and attribute values)."""
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate with at most one decimal."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if percent:
        return f"{value * 100:.0f}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}" '
        f'font-family="{_e(FONT)}" font-size="12" fill="{TEXT}">',
        f"<title>{_e(title)}</title>",
        f'<text x="0" y="16" font-size="14" font-weight="600">{_e(title)}</text>',
    ]


def _empty(width: int, height: int, title: str, message: str = "No data yet") -> str:
    parts = _open(width, height, title)
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
        f'fill="{MUTED}">{_e(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str], x: float, y: float, colors: Sequence[str]) -> list[str]:
    parts, cursor = [], x
    for name, color in zip(names, colors, strict=False):
        parts.append(
            f'<rect x="{_n(cursor)}" y="{_n(y - 9)}" width="10" height="10" fill="{color}"/>'
        )
        parts.append(f'<text x="{_n(cursor + 14)}" y="{_n(y)}">{_e(name)}</text>')
        cursor += 24 + 7 * len(str(name))
    return parts


def _y_axis(
    ticks: Sequence[float],
    left: float,
    right: float,
    top: float,
    bottom: float,
    percent: bool,
    anchor_x: float | None = None,
    anchor: str = "end",
    grid: bool = True,
) -> list[str]:
    parts = []
    span = ticks[-1] or 1.0
    for tick in ticks:
        y = bottom - (tick / span) * (bottom - top)
        if grid:
            parts.append(
                f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" '
                f'stroke="{GRID}" stroke-width="1"/>'
            )
        parts.append(
            f'<text x="{_n(anchor_x if anchor_x is not None else left - 6)}" '
            f'y="{_n(y + 4)}" text-anchor="{anchor}" fill="{MUTED}">'
            f"{_e(_fmt(tick, percent))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float, most: int = 8) -> list[str]:
    if not labels:
        return []
    every = max(1, math.ceil(len(labels) / most))
    parts = []
    for index in range(0, len(labels), every):
        parts.append(
            f'<text x="{_n(xs[index])}" y="{_n(y)}" text-anchor="middle" '
            f'fill="{MUTED}">{_e(_clip(labels[index], 12))}</text>'
        )
    return parts


def svg_line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    width: int = 640,
    height: int = 260,
    percent: bool = False,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Lines over shared x labels (e.g. days or weeks); one line per series.

    A ``None`` value leaves a gap in its line. ``percent`` reads values as fractions of 1
    and labels the axis in percent (0 to 100 %).
    """
    values = [v for vals in series.values() for v in vals if v is not None]
    if not labels or not values:
        return _empty(width, height, title)
    left, right, top, bottom = 52.0, width - 16.0, 44.0, height - 28.0
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if percent else nice_ticks(max(values))
    span = ticks[-1] or 1.0
    count = len(labels)
    xs = [left + (right - left) * (i / (count - 1) if count > 1 else 0.5) for i in range(count)]
    parts = _open(width, height, title)
    parts += _legend(list(series), 0, 34, colors)
    parts += _y_axis(ticks, left, right, top, bottom, percent)
    parts += _x_labels(labels, xs, height - 8)
    for (name, vals), color in zip(series.items(), colors, strict=False):
        run: list[str] = []
        runs: list[list[str]] = []
        dots = []
        for index, value in enumerate(vals[:count]):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x, y = xs[index], bottom - (value / span) * (bottom - top)
            run.append(f"{_n(x)},{_n(y)}")
            dots.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{3 if count <= 60 else 1.5}" fill="{color}">'
                f"<title>{_e(name)}, {_e(labels[index])}: {_e(_fmt(value, percent))}</title></circle>"
            )
        if run:
            runs.append(run)
        for points in runs:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
                f'stroke-width="2" stroke-linejoin="round"/>'
            )
        parts += dots
    parts.append("</svg>")
    return "".join(parts)


def svg_bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    horizontal: bool = True,
    percent: bool = False,
    color: str = PALETTE[0],
    max_items: int = 15,
    label_chars: int = 38,
) -> str:
    """Bars for (label, value) pairs, in the order given.

    Horizontal bars (labels on the left) suit long labels such as titles; vertical bars
    suit short ones such as ranks. At most ``max_items`` bars are drawn.
    """
    items = [(str(label), float(value)) for label, value in items[:max_items]]
    if not items:
        return _empty(width, 120, title)
    top_value = max(v for _, v in items)
    if horizontal:
        row, label_width = 24, min(8 * label_chars, width // 2)
        height = int(36 + row * len(items) + 8)
        left, right = float(label_width), width - 60.0
        span = top_value or 1.0
        parts = _open(width, height, title)
        for index, (label, value) in enumerate(items):
            y = 30 + index * row
            length = (right - left) * value / span
            parts.append(
                f'<text x="{_n(left - 8)}" y="{_n(y + 15)}" text-anchor="end">'
                f"{_e(_clip(label, label_chars))}</text>"
            )
            parts.append(
                f'<rect x="{_n(left)}" y="{_n(y + 3)}" width="{_n(max(length, 1))}" '
                f'height="{row - 8}" fill="{color}"><title>{_e(label)}: '
                f"{_e(_fmt(value, percent))}</title></rect>"
            )
            parts.append(
                f'<text x="{_n(left + length + 6)}" y="{_n(y + 15)}" fill="{MUTED}">'
                f"{_e(_fmt(value, percent))}</text>"
            )
        parts.append("</svg>")
        return "".join(parts)
    height = 240
    left, right, top, bottom = 52.0, width - 16.0, 30.0, height - 28.0
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if percent else nice_ticks(top_value)
    span = ticks[-1] or 1.0
    slot = (right - left) / len(items)
    parts = _open(width, height, title)
    parts += _y_axis(ticks, left, right, top, bottom, percent)
    xs = []
    for index, (label, value) in enumerate(items):
        x = left + index * slot + slot * 0.15
        bar_height = (bottom - top) * value / span
        xs.append(x + slot * 0.35)
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(bottom - bar_height)}" width="{_n(slot * 0.7)}" '
            f'height="{_n(max(bar_height, 0.5))}" fill="{color}"><title>{_e(label)}: '
            f"{_e(_fmt(value, percent))}</title></rect>"
        )
    parts += _x_labels([label for label, _ in items], xs, height - 8, most=len(items))
    parts.append("</svg>")
    return "".join(parts)


def svg_pareto_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    height: int = 280,
    target: float = 0.8,
    max_items: int = 60,
    color: str = PALETTE[0],
    line_color: str = PALETTE[4],
) -> str:
    """Bars for each item's count, largest first, with the cumulative share as a line
    (right axis, 0 to 100 %) and a dashed line at ``target``. Items beyond ``max_items``
    are drawn as one "others" bar, so the line still ends at 100 %."""
    ordered = sorted(((str(label), float(value)) for label, value in items), key=lambda i: -i[1])
    total = sum(v for _, v in ordered)
    if not ordered or total <= 0:
        return _empty(width, height, title)
    if len(ordered) > max_items:
        rest = ordered[max_items - 1 :]
        ordered = ordered[: max_items - 1] + [(f"{len(rest)} others", sum(v for _, v in rest))]
    left, right, top, bottom = 52.0, width - 52.0, 44.0, height - 28.0
    ticks = nice_ticks(max(v for _, v in ordered))
    span = ticks[-1] or 1.0
    slot = (right - left) / len(ordered)
    parts = _open(width, height, title)
    parts += _legend(
        ["count", "cumulative share", f"{target * 100:.0f}%"], 0, 34, [color, line_color, MUTED]
    )
    parts += _y_axis(ticks, left, right, top, bottom, False)
    parts += _y_axis(
        [0.0, 0.25, 0.5, 0.75, 1.0],
        left,
        right,
        top,
        bottom,
        True,
        anchor_x=right + 6,
        anchor="start",
        grid=False,
    )
    target_y = bottom - target * (bottom - top)
    parts.append(
        f'<line x1="{_n(left)}" y1="{_n(target_y)}" x2="{_n(right)}" y2="{_n(target_y)}" '
        f'stroke="{MUTED}" stroke-width="1" stroke-dasharray="4 4"/>'
    )
    running, points, dots = 0.0, [], []
    for index, (label, value) in enumerate(ordered):
        x = left + index * slot
        bar_height = (bottom - top) * value / span
        running += value
        share = running / total
        parts.append(
            f'<rect x="{_n(x + slot * 0.1)}" y="{_n(bottom - bar_height)}" '
            f'width="{_n(slot * 0.8)}" height="{_n(max(bar_height, 0.5))}" fill="{color}">'
            f"<title>{_e(label)}: {_e(_fmt(value))} "
            f"(cumulative {_e(_fmt(share, True))})</title></rect>"
        )
        cx, cy = x + slot / 2, bottom - share * (bottom - top)
        points.append(f"{_n(cx)},{_n(cy)}")
        dots.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="2.5" fill="{line_color}"/>')
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{line_color}" '
        f'stroke-width="2"/>'
    )
    parts += dots
    parts.append(
        f'<text x="{_n(left)}" y="{height - 8}" fill="{MUTED}">'
        f"{len(ordered)} bars, most reused on the left (hover for names)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def svg_stacked_bar(
    parts: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    colors: Sequence[str] = PALETTE,
) -> str:
    """One bar split into the shares of a whole (e.g. used vs none helped), with a legend
    giving each part's count and percentage."""
    items = [(str(label), float(value)) for label, value in parts if value > 0]
    total = sum(v for _, v in items)
    height = 92
    if total <= 0:
        return _empty(width, height, title)
    out = _open(width, height, title)
    x, bar_width = 0.0, float(width)
    for (label, value), color in zip(items, colors, strict=False):
        length = bar_width * value / total
        out.append(
            f'<rect x="{_n(x)}" y="28" width="{_n(length)}" height="24" fill="{color}">'
            f"<title>{_e(label)}: {_e(_fmt(value))} ({_e(_fmt(value / total, True))})"
            "</title></rect>"
        )
        x += length
    names = [f"{label} {_fmt(value)} ({_fmt(value / total, True)})" for label, value in items]
    out += _legend(names, 0, 76, colors)
    out.append("</svg>")
    return "".join(out)


# --- the page --------------------------------------------------------------------------

PAGE_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2937;
       margin: 0 auto; max-width: 1400px; padding: 24px; background: #f9fafb; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
p.meta { color: #6b7280; margin: 0 0 20px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
         margin-bottom: 20px; }
.tile { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 12px 14px; }
.tile .value { font-size: 26px; font-weight: 600; }
.tile .label { color: #6b7280; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(660px, 1fr)); gap: 16px; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 16px;
          margin-bottom: 16px; overflow-x: auto; }
section svg { display: block; max-width: 100%; height: auto; margin-bottom: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 12px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { color: #6b7280; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
ul.examples { margin: 0; padding-left: 18px; color: #374151; }
.note { color: #6b7280; font-size: 13px; }
""".strip()


def _tile(value: str, label: str) -> str:
    return f'<div class="tile"><div class="value">{_e(value)}</div><div class="label">{_e(label)}</div></div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_charts(report: dict[str, Any]) -> dict[str, str]:
    """Every chart of the report as SVG strings, by name (for pages that lay them out)."""
    series = report["over_time"]["series"]
    labels = [row["start"][5:] for row in series]
    per = report["over_time"]["period"]
    reuse = [(r["id"], r["reuse"]) for r in report["reuse"] if r["reuse"] > 0]
    gaps = [(c["title"], c["size"]) for c in report["gaps"]["clusters"]]
    stale = [(a["id"], a["harm"]) for a in report["stale"]["articles"]]
    known = report["new_vs_known"]
    feedback = report["totals"]
    return {
        "usage": svg_line_chart(
            labels,
            {
                "suggestions": [r["suggestions"] for r in series],
                "used": [r["used"] for r in series],
                "none helped": [r["none_helped"] for r in series],
            },
            title=f"Suggestions and usage per {per}",
        ),
        "none_helped_rate": svg_line_chart(
            labels,
            {"none-helped rate": [r["none_helped_rate"] for r in series]},
            title=f"None-helped rate per {per}",
            percent=True,
            colors=(PALETTE[2],),
        ),
        "choices": svg_stacked_bar(
            [("used", feedback["used"]), ("none helped", feedback["none_helped"])],
            title="Choices recorded",
            colors=(PALETTE[1], PALETTE[2]),
        ),
        "known": svg_stacked_bar(
            [("solved with existing knowledge", known["known"]), ("new", known["new"])],
            title="Closed incidents: known vs new",
            colors=(PALETTE[0], PALETTE[6]),
        ),
        "rank": svg_bar_chart(
            [(f"#{r['rank']}", r["used"]) for r in report["acceptance_by_rank"]],
            title="Used results by rank shown",
            horizontal=False,
            max_items=10,
        ),
        "pareto": svg_pareto_chart(reuse, title="Reuse per article (Pareto)"),
        "gaps": svg_bar_chart(
            gaps, title="Knowledge gaps: searches where nothing helped, by topic", color=PALETTE[3]
        ),
        "stale": svg_bar_chart(stale, title="Stale articles by harm", color=PALETTE[4]),
    }


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no script, no network)."""
    charts = report_charts(report)
    t = report["totals"]
    p = report["pareto"]
    pareto_note = (
        f"The top {p['top_articles']} of {p['articles']} articles ({p['top_fraction'] * 100:.0f}%) "
        f"carry {_fmt(p['top_share'], True)} of reuse; {p['articles_for_80']} articles carry 80%."
        if p["total_reuse"]
        else "No article was reused in this window."
    )
    tiles = "".join(
        [
            _tile(
                _fmt(report["link_rate"]["value"], True),
                "link rate (closed incidents with an article)",
            ),
            _tile(
                _fmt(report["new_vs_known"]["known_rate"], True), "solved with existing knowledge"
            ),
            _tile(_fmt(report["none_helped_rate"]["value"], True), "none-helped rate"),
            _tile(_fmt(t["suggestions"]), "suggestions"),
            _tile(_fmt(t["feedback"]), "choices recorded"),
            _tile(_fmt(t["incidents_closed"]), "incidents closed"),
        ]
    )
    gap_rows = [
        (
            _e(c["title"]),
            _e(c["size"]),
            _e(", ".join(c["terms"])),
            '<ul class="examples">' + "".join(f"<li>{_e(x)}</li>" for x in c["examples"]) + "</ul>",
        )
        for c in report["gaps"]["clusters"][:20]
    ]
    stale_rows = [
        (
            _e(a["id"]),
            _e(a["title"]),
            _e(a["owner"]),
            _e("; ".join(a["reasons"])),
            _e(_fmt(a["harm"])),
        )
        for a in report["stale"]["articles"][:30]
    ]
    body = f"""
<h1>Knowledge report</h1>
<p class="meta">Last {_e(report["days"])} days, since {_e(report["since"][:10])}; generated {_e(report["generated_at"])}.</p>
<div class="tiles">{tiles}</div>
<div class="grid">
<section><h2>Suggestions and usage</h2>{charts["usage"]}</section>
<section><h2>None helped</h2>{charts["none_helped_rate"]}{charts["choices"]}</section>
<section><h2>Which articles carry the load</h2>{charts["pareto"]}<p class="note">{_e(pareto_note)}</p></section>
<section><h2>Known vs new, and rank used</h2>{charts["known"]}{charts["rank"]}</section>
</div>
<section><h2>Knowledge gaps</h2>{charts["gaps"]}
<p class="note">{_e(report["gaps"]["queries"])} searches where nothing helped, grouped by similarity of their text. Each topic's title is its most central search: a candidate article.</p>
{_table(["suggested article", "searches", "terms", "examples"], gap_rows, {1}) if gap_rows else ""}</section>
<section><h2>Stale articles</h2>{charts["stale"]}
<p class="note">{_e(report["stale"]["explanation"])}</p>
{_table(["id", "title", "owner", "why", "harm"], stale_rows, {4}) if stale_rows else ""}</section>
"""
    digest = base64.b64encode(hashlib.sha256(PAGE_CSS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Knowledge report: last {_e(report['days'])} days</title>\n"
        f"<style>{PAGE_CSS}</style>\n</head>\n<body>{body}</body>\n</html>\n"
    )
