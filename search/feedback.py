"""Feedback that counts: a prior per resolution from what agents used and passed over.

Each recorded choice says something about the results that were shown:

- the result the agent used gains one "use";
- results ranked above it were read and passed over: each gains one "skip";
- "none helped" is a skip for every result shown.

Events fade with age (half-life ``HALF_LIFE_DAYS``). One agent counts at most once per
resolution per day, and for at most ``PER_AGENT_PER_DAY`` events a day in all, so a single
noisy agent (or a script) cannot move the ranking far. The prior added to a resolution's
score is ``weight * (uses - skips) / (uses + skips + SHRINK)``: bounded by ``weight``, and
small until there is real evidence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

from kb.store import Store

HALF_LIFE_DAYS = 90.0
PER_AGENT_PER_DAY = 30
SHRINK = 20.0
DEFAULT_WEIGHT = 0.05


def _age_days(stamp: str, now: datetime) -> float:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return 0.0
    return max(0.0, (now - when).total_seconds() / 86400)


def feedback_evidence(
    store: Store, *, now: datetime | None = None
) -> dict[str, tuple[float, float]]:
    """(decayed uses, decayed skips) per result group."""
    now = now or datetime.now(UTC)
    uses: dict[str, float] = defaultdict(float)
    skips: dict[str, float] = defaultdict(float)
    seen: set[tuple[str, str, str, str]] = set()  # (agent, day, group, kind of event)
    per_day: dict[tuple[str, str], int] = defaultdict(int)
    for row in store.feedback_with_results():
        day = (row["updated_at"] or "")[:10]
        # Influence is bounded per caller that asked (an API token, or a signed-in person),
        # not per the free-text agent name a token may send: one token inventing names
        # still counts as one.
        agent = row.get("principal") or row["agent"] or "anonymous"
        decay = 0.5 ** (_age_days(row["updated_at"], now) / HALF_LIFE_DAYS)
        results = sorted(row["results"], key=lambda r: r.get("rank", 0))
        used_rank = None
        if row["outcome"] == "used":
            used_rank = next((r["rank"] for r in results if r["id"] == row["used_id"]), None)
        events = []
        for result in results:
            group = result.get("group") or result["id"]
            if used_rank is not None and result["rank"] == used_rank:
                events.append((group, "use"))
            elif row["outcome"] == "none_helped" or (
                used_rank is not None and result["rank"] < used_rank
            ):
                events.append((group, "skip"))
        for group, kind in events:
            key = (agent, day, group, kind)
            if key in seen or per_day[(agent, day)] >= PER_AGENT_PER_DAY:
                continue
            seen.add(key)
            per_day[(agent, day)] += 1
            (uses if kind == "use" else skips)[group] += decay
    return {g: (uses.get(g, 0.0), skips.get(g, 0.0)) for g in set(uses) | set(skips)}


def priors_from_evidence(
    evidence: dict[str, tuple[float, float]], weight: float
) -> dict[str, float]:
    out = {}
    for group, (used, skipped) in evidence.items():
        value = weight * (used - skipped) / (used + skipped + SHRINK)
        if not math.isclose(value, 0.0):
            out[group] = value
    return out


def compute_priors(
    store: Store, weight: float = DEFAULT_WEIGHT, *, now: datetime | None = None
) -> dict[str, float]:
    """The additive prior per result group (see the module docstring)."""
    if weight <= 0:
        return {}
    return priors_from_evidence(feedback_evidence(store, now=now), weight)
