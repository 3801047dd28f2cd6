"""Stale articles, ranked by the harm they do.

An article (not archived) is listed when at least one of these holds:

- overdue: its ``review_by`` date has passed;
- unused: it has existed for the whole window (by its first stored version or its
  ``updated`` date) and in the last N days no "used" choice named it and no closed
  incident was linked to it;
- passed over: in the last N days agents read past it: it was shown above the result they
  used, or in a list where they said none helped ("skipped"). Shown below the result used
  does not count: the agent had found the answer before reaching it;
- flagged: an agent flagged it (wrong, outdated or unclear) and no knowledge manager has
  resolved the flag yet.

Harm = 2 x open flags + times skipped + months overdue (days / 30) + 1 if unused. A flag
is an agent saying outright that the article failed them, worth two silent skips; a skip
is an agent who read the article in a result list and had to move on; an overdue review
weighs about one skip a month; an unused article is clutter that makes the others harder
to find.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

HARM_PER_SKIP = 1.0
HARM_PER_OVERDUE_DAY = 1 / 30
HARM_IF_UNUSED = 1.0
HARM_PER_FLAG = 2.0
HARM_EXPLANATION = (
    "harm = 2 x open flags (wrong, outdated, unclear) "
    "+ times skipped (shown above the result used, or when none helped) "
    "+ days overdue / 30 + 1 if unused in the window"
)


def _date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def window_start(now: dt.datetime, days: int) -> str:
    """The ISO 8601 UTC timestamp ``days`` days before ``now``."""
    start = now.astimezone(dt.UTC) - dt.timedelta(days=days)
    return start.strftime("%Y-%m-%dT%H:%M:%S")


def stale_articles(
    store: Any, *, days: int = 90, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Articles that are overdue, unused or passed over, most harmful first."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(dt.UTC).date()
    since = window_start(now, days)
    exposure = store.article_exposure(since)
    flags = store.open_flag_counts()
    out = []
    for row in store.article_activity():
        review_by = _date(row["review_by"])
        overdue = max(0, (today - review_by).days) if review_by else 0
        existed_from = min(
            d for d in (_date(row["first_stored"]), _date(row["updated"]), today) if d
        )
        recent_use = max(row["last_used"] or "", row["last_linked"] or "") >= since
        unused = existed_from <= _date(since) and not recent_use
        seen = exposure.get(row["id"], {"shown": 0, "judged": 0, "skipped": 0})
        reasons = []
        if overdue:
            reasons.append(f"review overdue by {overdue} days")
        if unused:
            reasons.append(f"not used in {days} days")
        if seen["skipped"]:
            reasons.append(f"passed over {seen['skipped']} of {seen['judged']} times judged")
        flagged = flags.get(row["id"], {})
        if flagged:
            reasons.append(
                "flagged "
                + ", ".join(f"{kind} x{count}" for kind, count in sorted(flagged.items()))
            )
        if not reasons:
            continue
        harm = (
            HARM_PER_FLAG * sum(flagged.values())
            + HARM_PER_SKIP * seen["skipped"]
            + HARM_PER_OVERDUE_DAY * overdue
            + (HARM_IF_UNUSED if unused else 0.0)
        )
        out.append(
            {
                "id": row["id"],
                "title": row["title"],
                "status": row["status"],
                "owner": row["owner"] or "",
                "path": row["path"] or "",
                "review_by": row["review_by"] or "",
                "overdue_days": overdue,
                "unused": unused,
                "last_used": row["last_used"] or None,
                "last_linked_incident": row["last_linked"] or None,
                "shown": seen["shown"],
                "judged": seen["judged"],
                "skipped": seen["skipped"],
                "skip_rate": round(seen["skipped"] / seen["judged"], 4) if seen["judged"] else None,
                "flags": sum(flagged.values()),
                "flag_kinds": dict(sorted(flagged.items())),
                "harm": round(harm, 3),
                "reasons": reasons,
            }
        )
    out.sort(key=lambda a: (-a["harm"], a["id"]))
    return out
