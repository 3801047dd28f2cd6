"""KCS metrics for knowledge managers, gathered in one JSON-ready dict.

:func:`build_report` is the one entry point (``kb report``, ``GET /api/v1/metrics`` and the
dashboard page use it); :func:`render_text` is the terminal summary; the HTML page and
its SVG charts are in :mod:`kb.app.report_html`.

The report's keys (stable; add keys rather than change them):

``generated_at``, ``days``, ``since``
    when it was made, the window in days, and the window's start (ISO 8601 UTC).
``totals``
    suggestions, no_good_match (flagged), suggestions_with_feedback, feedback (choices),
    used, none_helped, incidents_closed, and ``articles`` (count per state).
``link_rate``
    {value, linked, closed}: closed incidents in the window linked to an article (their
    ``article_id`` or a used article result) over all closed incidents. value is None
    when there were none.
``new_vs_known``
    {known, new, known_rate}: closed incidents solved with existing knowledge (a linked
    article or any used result) and those solved without it.
``none_helped_rate``
    {value, none_helped, feedback}: choices that said no result helped, over all choices.
``acceptance_by_rank``
    [{rank, used, share}]: how often the result at each rank was the one used.
``reuse``
    [{id, title, status, in_store, linked_incidents, used, reuse}], most reused first:
    reuse = incidents linked + "used" choices not already counted through an incident.
``pareto``
    {articles, top_fraction, top_articles, top_share, articles_for_80, points: [{id,
    reuse, cumulative_share}]}: the top 20 % of articles by reuse and the share of reuse
    they carry; how many articles carry 80 % of it.
``over_time``
    {period: "day"|"week", series: [{start, suggestions, no_good_match, used,
    none_helped, incidents_closed, none_helped_rate}]}: every period of the window, zeros
    included (days for windows up to 31 days, else weeks starting on Monday).
``gaps``
    {threshold, queries, clusters: [{size, title, terms, examples, none_helped,
    no_good_match, first_seen, last_seen, suggestion_ids}]}: see :mod:`kb.app.gaps`.
``stale``
    {explanation, articles: [...]}: see :mod:`kb.stale`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from kb.app.gaps import GAP_CLUSTER_THRESHOLD, cluster_gaps
from kb.app.service import Service
from kb.errors import ValidationError
from kb.stale import HARM_EXPLANATION, stale_articles, window_start

PARETO_TOP_FRACTION = 0.2
PARETO_TARGET_SHARE = 0.8
DAILY_UP_TO_DAYS = 31
MAX_REPORT_DAYS = 3650


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _period_start(day: dt.date, period: str) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) if period == "week" else day


def activity_series(
    daily: dict[str, dict[str, int]], since: dt.date, until: dt.date, period: str
) -> list[dict[str, Any]]:
    """Daily counts summed per period, every period from ``since`` to ``until`` present."""
    keys = ("suggestions", "no_good_match", "used", "none_helped", "incidents_closed")
    buckets: dict[dt.date, dict[str, Any]] = {}
    day = _period_start(since, period)
    step = dt.timedelta(days=7 if period == "week" else 1)
    while day <= until:
        buckets[day] = {"start": day.isoformat(), **{k: 0 for k in keys}}
        day += step
    for text, counts in daily.items():
        try:
            start = _period_start(dt.date.fromisoformat(text), period)
        except ValueError:
            continue
        if start in buckets:
            for key in keys:
                buckets[start][key] += counts.get(key, 0)
    series = [buckets[d] for d in sorted(buckets)]
    for row in series:
        row["none_helped_rate"] = _rate(row["none_helped"], row["used"] + row["none_helped"])
    return series


def reuse_table(store: Any, since: str) -> list[dict[str, Any]]:
    """Reuse per article (every article not archived, plus any other article named)."""
    counts = store.article_reuse(since)
    rows = {}
    for article in store.iter_articles():
        if article.status != "archived" or article.id in counts:
            rows[article.id] = {
                "id": article.id,
                "title": article.title,
                "status": article.status,
                "in_store": True,
            }
    for article_id in counts:
        rows.setdefault(
            article_id, {"id": article_id, "title": "", "status": "", "in_store": False}
        )
    table = []
    for article_id, row in rows.items():
        c = counts.get(article_id, {"linked_incidents": 0, "used": 0})
        table.append(
            {
                **row,
                "linked_incidents": c["linked_incidents"],
                "used": c["used"],
                "reuse": c["linked_incidents"] + c["used"],
            }
        )
    table.sort(key=lambda r: (-r["reuse"], r["id"]))
    return table


def pareto(reuse: list[dict[str, Any]]) -> dict[str, Any]:
    """Which few articles carry most of the reuse (``reuse`` sorted, most first)."""
    total = sum(r["reuse"] for r in reuse)
    points, running, articles_for_80 = [], 0, None
    for index, row in enumerate(reuse, start=1):
        running += row["reuse"]
        share = running / total if total else 0.0
        points.append({"id": row["id"], "reuse": row["reuse"], "cumulative_share": round(share, 4)})
        if articles_for_80 is None and total and share >= PARETO_TARGET_SHARE - 1e-9:
            articles_for_80 = index
    top = math.ceil(len(reuse) * PARETO_TOP_FRACTION) if reuse else 0
    top_share = sum(r["reuse"] for r in reuse[:top]) / total if total else None
    return {
        "articles": len(reuse),
        "total_reuse": total,
        "top_fraction": PARETO_TOP_FRACTION,
        "top_articles": top,
        "top_share": None if top_share is None else round(top_share, 4),
        "articles_for_80": articles_for_80,
        "points": points,
    }


def build_report(
    service: Service,
    *,
    days: int = 90,
    now: dt.datetime | None = None,
    gap_threshold: float | None = None,
) -> dict[str, Any]:
    """Everything a knowledge manager looks at, for the last ``days`` days, as plain JSON
    types (see the module doc for the keys). The service's embedder groups knowledge gaps. Raises ValidationError for a bad window.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_REPORT_DAYS:
        raise ValidationError(f"days must be a whole number from 1 to {MAX_REPORT_DAYS}")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    since = window_start(now, days)
    store = service.store()
    with store.read():
        totals = store.feedback_totals(since)
        knowledge = store.incident_knowledge_counts(since)
        by_rank = store.acceptance_by_rank(since)
        daily = store.daily_activity(since)
        reuse = reuse_table(store, since)
        gap_rows = store.gap_suggestions(since)
        states = store.article_state_counts()
        stale = stale_articles(store, days=days, now=now)
        routing_rows = store.routing_outcomes(since)
        escalation = store.escalation_by_category(since)
    threshold = GAP_CLUSTER_THRESHOLD if gap_threshold is None else gap_threshold
    clusters = cluster_gaps(gap_rows, service.embedder(), threshold=threshold) if gap_rows else []
    used_total = sum(by_rank.values())
    period = "day" if days <= DAILY_UP_TO_DAYS else "week"
    return {
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days": days,
        "since": since + "Z",
        "totals": {**totals, "incidents_closed": knowledge["closed"], "articles": states},
        "link_rate": {
            "value": _rate(knowledge["linked"], knowledge["closed"]),
            "linked": knowledge["linked"],
            "closed": knowledge["closed"],
        },
        "new_vs_known": {
            "known": knowledge["known"],
            "new": knowledge["closed"] - knowledge["known"],
            "known_rate": _rate(knowledge["known"], knowledge["closed"]),
        },
        "none_helped_rate": {
            "value": _rate(totals["none_helped"], totals["feedback"]),
            "none_helped": totals["none_helped"],
            "feedback": totals["feedback"],
        },
        "acceptance_by_rank": [
            {"rank": rank, "used": count, "share": _rate(count, used_total)}
            for rank, count in sorted(by_rank.items())
        ],
        "reuse": reuse,
        "pareto": pareto(reuse),
        "over_time": {
            "period": period,
            "series": activity_series(daily, dt.date.fromisoformat(since[:10]), now.date(), period),
        },
        "gaps": {
            "threshold": threshold,
            "queries": len(gap_rows),
            "clusters": clusters,
            "draft_candidates": draft_candidates(store, service.embedder().model_id),
        },
        "stale": {"explanation": HARM_EXPLANATION, "articles": stale},
        "routing": routing_summary(routing_rows),
        "escalation_by_category": escalation,
    }


# A resolution family of at least this many incidents and no article is a draft candidate.
DRAFT_FAMILY_SIZE = 10


def draft_candidates(store: Any, model_id: str) -> list[dict[str, Any]]:
    """Resolution families (search.families) of DRAFT_FAMILY_SIZE incidents or more: a fix
    agents keep writing in their own words that no article holds (incidents resolved with
    an article are grouped by it, never into a family). Largest first."""
    families = ((store.latest_ranking_profile(model_id) or {}).get("families") or {}).get(
        "info"
    ) or {}
    rows = [
        {
            "family": fid,
            "size": f.get("size", 0),
            "representative": f.get("representative", ""),
            "representative_id": f.get("representative_id", ""),
            "steps": f.get("steps", []),
        }
        for fid, f in families.items()
        if f.get("size", 0) >= DRAFT_FAMILY_SIZE
    ]
    return sorted(rows, key=lambda r: (-r["size"], r["family"]))


def routing_summary(rows: list[tuple]) -> dict[str, Any]:
    """Triage's predicted group against the group that resolved the incident, per week and
    overall: accuracy of the prediction (its best guess when not sure), the share it was not
    sure of, and its accuracy when sure. Suggestions recorded before triage said whether it
    was sure count in the accuracy only."""
    weeks: dict[str, list[int]] = {}
    for week, predicted, final, *rest in rows:
        sure = rest[0] if rest else ""
        tally = weeks.setdefault(
            week, [0, 0, 0, 0, 0]
        )  # incidents, right, told, sure, right when sure
        tally[0] += 1
        tally[1] += predicted == final
        tally[2] += sure in ("yes", "no")
        tally[3] += sure == "yes"
        tally[4] += sure == "yes" and predicted == final

    def figures(t: list[int]) -> dict[str, Any]:
        return {
            "incidents": t[0],
            "right": t[1],
            "accuracy": _rate(t[1], t[0]),
            "not_sure_share": _rate(t[2] - t[3], t[2]),
            "sure": t[3],
            "accuracy_when_sure": _rate(t[4], t[3]),
        }

    total = [sum(t[i] for t in weeks.values()) for i in range(5)]
    return {
        **figures(total),
        "weeks": [{"week": w, **figures(t)} for w, t in sorted(weeks.items())],
    }


# --- the terminal summary --------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def render_text(report: dict[str, Any], *, top: int = 5) -> str:
    """A short plain-text summary of a report, for the terminal."""
    t = report["totals"]
    lines = [
        f"KCS report for the last {report['days']} days (since {report['since'][:10]})",
        "",
        f"Suggestions: {t['suggestions']} ({t['no_good_match']} flagged no good match); "
        f"choices recorded: {t['feedback']} ({t['used']} used, {t['none_helped']} none helped)",
        f"Link rate: {_percent(report['link_rate']['value'])} of {report['link_rate']['closed']} "
        f"closed incidents linked to an article",
        f"New vs known: {report['new_vs_known']['known']} solved with existing knowledge, "
        f"{report['new_vs_known']['new']} new",
        f"None-helped rate: {_percent(report['none_helped_rate']['value'])}",
    ]
    if report["acceptance_by_rank"]:
        ranks = ", ".join(
            f"#{r['rank']} {_percent(r['share'])}" for r in report["acceptance_by_rank"][:5]
        )
        lines.append(f"Used results by rank: {ranks}")
    p = report["pareto"]
    if p["total_reuse"]:
        lines.append(
            f"Pareto: the top {p['top_articles']} of {p['articles']} articles carry "
            f"{_percent(p['top_share'])} of reuse; {p['articles_for_80']} carry 80%"
        )
    reused = [r for r in report["reuse"] if r["reuse"]][:top]
    if reused:
        lines += ["", "Most reused articles:"]
        lines += [f"  {r['reuse']:>4}  {r['id']}  {r['title']}" for r in reused]
    clusters = report["gaps"]["clusters"][:top]
    lines += [
        "",
        f"Knowledge gaps: {report['gaps']['queries']} searches where nothing helped"
        + (f", {len(report['gaps']['clusters'])} topics" if clusters else ""),
    ]
    for c in clusters:
        terms = f" [{', '.join(c['terms'])}]" if c["terms"] else ""
        lines.append(f"  {c['size']:>4}  {c['title']}{terms}")
    drafts = report["gaps"].get("draft_candidates") or []
    if drafts:
        lines += ["", f"Draft candidates: {len(drafts)} resolution families with no article"]
        lines += [f"  {d['size']:>4}  {d['representative'][:100]}" for d in drafts[:top]]
    stale = report["stale"]["articles"][:top]
    lines += ["", f"Stale articles: {len(report['stale']['articles'])}"]
    for a in stale:
        lines.append(f"  {a['harm']:>6.1f}  {a['id']}: {'; '.join(a['reasons'])}")
    return "\n".join(lines)
