"""Triage from the same evidence as the suggestions: the similar resolved incidents.

For a new incident: the predicted category, product and assignment group (a similarity-
weighted vote of its nearest resolved incidents, with a probability calibrated on a replay
of the store's own incidents, or "not sure" when the evidence is thin), the priority most
similar incidents had (one step higher for a top-tier customer, said so), and whether the
first line can solve it: how many similar incidents were solved without escalation, and
with which resolution.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from search.logistic import fit_logistic
from search.state import DocInfo, DocKey, SearchState

FIELDS = ("category", "product", "assignment_group")
NEIGHBOURS = 20
VOTE_TAU = 0.05
MIN_EVIDENCE = 3
SURE = 0.5
SHOWN_INCIDENTS = 5
COPY_SIMILARITY = 0.98
REPLAY_SAMPLE = 600
CENSUS_SAMPLE = 50_000
MIN_REPLAY = 30

# Priority scales as ticket systems write them, lowest first; a word on several scales
# ("low") steps up on the first that has it (Jira's five steps).
LADDERS = (
    ("lowest", "low", "medium", "high", "highest"),
    ("low", "normal", "high", "urgent"),
    ("planning", "low", "moderate", "high", "critical"),
    ("trivial", "minor", "major", "critical", "blocker"),
)


def neighbours(dense: dict[int, float], state: SearchState, exclude: DocKey | None = None,
               limit: int = NEIGHBOURS) -> list[tuple[DocInfo, float]]:
    """The most similar resolved incidents, best chunk per incident, best first."""
    best: dict[DocKey, float] = {}
    for chunk_id, score in dense.items():
        key = state.chunk_doc.get(int(chunk_id))
        if key is None or key[0] != "incident" or key == exclude or key not in state.docs:
            continue
        if score > best.get(key, -2.0):
            best[key] = float(score)
    top = sorted(best.items(), key=lambda item: -item[1])[:limit]
    return [(state.docs[key], score) for key, score in top]


def vote(near: Sequence[tuple[DocInfo, float]], field: str) -> tuple[str, float, int, list[str]]:
    """(value, its share of the similarity-weighted vote, incidents that had a value, the
    incidents that voted for it) over the neighbours that have ``field``."""
    known = [(getattr(doc, field), score, doc.id) for doc, score in near if getattr(doc, field)]
    if not known:
        return "", 0.0, 0, []
    top = max(score for _, score, _ in known)
    weights: dict[str, float] = defaultdict(float)
    backers: dict[str, list[str]] = defaultdict(list)
    for value, score, doc_id in known:
        weights[value] += math.exp((score - top) / VOTE_TAU)
        backers[value].append(doc_id)
    value = max(weights, key=weights.get)
    return value, weights[value] / sum(weights.values()), len(known), backers[value]


def vote_features(share: float, evidence: int) -> list[float]:
    return [share, math.log1p(evidence), 1.0]


def probability(calibration: dict[str, Any], field: str, share: float, evidence: int) -> float:
    """P(the vote is right), from the store's replay when it has one; else the share,
    shrunk when few incidents voted."""
    weights = (calibration or {}).get(field, {}).get("weights")
    if not weights:
        return share * evidence / (evidence + 2)
    z = sum(w * x for w, x in zip(weights, vote_features(share, evidence), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def raise_priority(value: str) -> str | None:
    """One step more urgent on the value's own scale ("3 - Moderate" -> "2 - High",
    "P3" -> "P2", "Medium" -> "High"), or None when the scale is unknown or at the top."""
    match = re.fullmatch(r"\s*([Pp]?)(\d)(\s*-\s*(.*))?\s*", value)
    if match:
        number = int(match.group(2))
        if number <= 1:
            return None
        word = match.group(4)
        new_word = ""
        if word:
            for ladder in LADDERS:
                if word.lower() in ladder and ladder.index(word.lower()) + 1 < len(ladder):
                    new_word = ladder[ladder.index(word.lower()) + 1]
                    new_word = new_word.capitalize() if word[:1].isupper() else new_word
                    break
        return f"{match.group(1)}{number - 1}" + (f" - {new_word}" if new_word else "")
    for ladder in LADDERS:
        if value.strip().lower() in ladder:
            position = ladder.index(value.strip().lower())
            if position + 1 >= len(ladder):
                return None
            word = ladder[position + 1]
            return word.capitalize() if value.strip()[:1].isupper() else word
    return None


def triage(near: Sequence[tuple[DocInfo, float]], calibration: dict[str, Any], *,
           customer_tier: str = "", top_tiers: Sequence[str] = (),
           article_title: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The triage object of one suggestion (see the module docstring and the README);
    ``article_title`` names an article by its title in the first-line hint."""
    out: dict[str, Any] = {"similar_incidents": len(near)}
    for field in FIELDS:
        value, share, evidence, backers = vote(near, field)
        p = probability(calibration, field, share, evidence) if value else 0.0
        sure = bool(value) and evidence >= MIN_EVIDENCE and p >= SURE
        nearest = next((getattr(doc, field) for doc, _ in near if getattr(doc, field)), None)
        out[field] = {
            "value": value if sure else None, "probability": round(p, 3), "not_sure": not sure,
            "best_guess": value or None, "nearest": nearest, "evidence": evidence,
            "similar_incidents": backers[:SHOWN_INCIDENTS],
        }
    out["priority"] = _priority(near, customer_tier, top_tiers)
    out["first_line"] = _first_line(near, article_title)
    return out


def _priority(near, customer_tier: str, top_tiers: Sequence[str]) -> dict[str, Any]:
    value, share, evidence, backers = vote(near, "priority")
    result: dict[str, Any] = {"value": value or None, "share": round(share, 3), "evidence": evidence,
                              "similar_incidents": backers[:SHOWN_INCIDENTS], "raised": False, "note": ""}
    if not value:
        result["note"] = "no similar incident has a priority"
        return result
    top = customer_tier.strip().lower() in {t.strip().lower() for t in top_tiers if t.strip()}
    if top:
        raised = raise_priority(value)
        if raised:
            result.update(value=raised, raised=True, similar_priority=value,
                          note=f"raised one step from {value} for a {customer_tier} customer")
    return result


def _first_line(near, article_title: Callable[[str], str] | None = None) -> dict[str, Any]:
    known = [doc for doc, _ in near if doc.escalated in ("yes", "no")]
    solved = [doc for doc in known if doc.escalated == "no"]
    result: dict[str, Any] = {"similar": len(known), "solved_at_first_line": len(solved),
                              "resolution": None, "text": ""}
    if not known:
        result["text"] = "no similar incident says whether it was escalated"
        return result
    if solved:
        ways = Counter((("article", d.article_id) if d.article_id else ("incident", d.res_key or d.id)) for d in solved)
        (kind, key), count = ways.most_common(1)[0]
        example = next(d for d in solved if (d.article_id if kind == "article" else (d.res_key or d.id)) == key)
        result["resolution"] = {"kind": kind, "id": example.article_id if kind == "article" else example.id,
                                "incidents": count, "resolution": example.resolution[:200]}
        title = (article_title(example.article_id) if article_title else "") if kind == "article" else ""
        if kind == "article":
            how = f"the article “{title}”" if title else f"article {example.article_id}"
        else:
            how = f"the fix of {example.id}"
        if title:
            result["resolution"]["title"] = title
        result["text"] = (f"{len(solved)} of {len(known)} similar incidents were solved at the first line"
                          + (f", {count} of them with {how}" if count < len(solved) else f" with {how}"))
    else:
        result["text"] = f"none of {len(known)} similar incidents was solved at the first line"
    return result


# --- calibration, at `kb index` -----------------------------------------------------------

def fit_triage(state: SearchState, vectors: Mapping[str, np.ndarray], rng: np.random.Generator) -> tuple[dict, dict]:
    """Replay stored incidents that have a value for each field: each one's neighbours
    (without itself and its near-copies) vote, and a logistic map from (share, evidence) to
    "the vote was right" is fitted. Returns (calibration for the profile, figures: replay
    accuracy, the share marked not sure, the majority and nearest-neighbour baselines)."""
    ids = [doc_id for doc_id in vectors if ("incident", doc_id) in state.docs]
    if not ids:
        return {}, {}
    sample = list(rng.choice(ids, size=min(REPLAY_SAMPLE, len(ids)), replace=False))
    with state.lock:
        scores, found = state.index.search(np.vstack([vectors[i] for i in sample]), 100)
    calibration: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    # Which values a field takes and how often (the majority baseline), from every incident
    # of a store of up to CENSUS_SAMPLE, else from that many drawn at random.
    census = ids if len(ids) <= CENSUS_SAMPLE else list(rng.choice(ids, size=CENSUS_SAMPLE, replace=False))
    for field in FIELDS:
        values = Counter(getattr(state.docs[("incident", i)], field) for i in census)
        values.pop("", None)
        if len(values) < 2:
            continue
        majority = values.most_common(1)[0][0]
        rows, right, nearest_right, majority_right, not_sure = [], 0, 0, 0, 0
        for row, doc_id in enumerate(sample):
            truth = getattr(state.docs[("incident", doc_id)], field)
            if not truth:
                continue
            dense = {int(c): float(s) for c, s in zip(found[row], scores[row], strict=True)
                     if c >= 0 and s < COPY_SIMILARITY}
            near = neighbours(dense, state, exclude=("incident", doc_id))
            value, share, evidence, _ = vote(near, field)
            if not value:
                continue
            rows.append((vote_features(share, evidence), 1.0 if value == truth else 0.0, evidence))
            first = next((getattr(d, field) for d, _ in near if getattr(d, field)), "")
            nearest_right += first == truth
            majority_right += majority == truth
        if len(rows) < MIN_REPLAY:
            continue
        x = np.array([r[0] for r in rows])
        y = np.array([r[1] for r in rows])
        weights = fit_logistic(x, y) if 0 < y.sum() < len(y) else None
        entry = {"weights": [float(w) for w in weights]} if weights is not None else {}
        calibration[field] = entry
        for features, label, evidence in rows:
            p = probability(calibration, field, features[0], evidence)
            sure = evidence >= MIN_EVIDENCE and p >= SURE
            not_sure += not sure
            right += sure and label == 1.0
        figures[field] = {
            "replayed": len(rows), "accuracy_at_1": round(float(y.mean()), 4),
            "accuracy_when_sure": round(right / max(1, len(rows) - not_sure), 4),
            "not_sure_share": round(not_sure / len(rows), 4),
            "majority_baseline": round(majority_right / len(rows), 4),
            "nearest_neighbour_baseline": round(nearest_right / len(rows), 4),
        }
    return calibration, figures
