"""Triage from the store's own evidence: where a new incident should go, and how sure that is.

For a new incident: the predicted assignment group, category, product and priority, each from
two sources combined: a similarity-weighted vote of its nearest resolved incidents, and a
linear model of that field learned from every stored incident that carries it (the same kind
of classifier the ranking uses: mean embedding beside TF-IDF of stemmed content words, see
``search.classifier``). How much each source counts, the map from the combined share to a
calibrated probability, and the probability below which triage says "not sure" are all read
off a replay of the store's own incidents at ``kb index`` (``fit_triage``): each replayed
incident is scored by a model trained without it and its near-copies (cross-fitted), and its
neighbours vote without them. A field with too little evidence says so.

Also: the priority, raised one step for a top-tier customer (said so); the group a store
routes a customer tier to, when it routes that tier differently (shown as evidence); and
whether the first line can solve it (how many similar incidents were solved without
escalation, and with which resolution). What a viewer may not see of results (incidents for
the public audience, draft articles) triage does not show either.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.classifier import MIN_CLASS_SIZE, ResolutionClassifier, train_classifier
from search.logistic import fit_logistic
from search.ranking import Viewer
from search.state import DocInfo, DocKey, SearchState

ROUTED_FIELDS = ("assignment_group", "category", "product", "priority")
FIELDS = ("category", "product", "assignment_group")  # shown with value / not sure
NEIGHBOURS = 20
VOTE_TAU = 0.05
MIN_EVIDENCE = 3
SURE = 0.5
SHOWN_INCIDENTS = 5
COPY_SIMILARITY = 0.98
REPLAY_SAMPLE = 600
CENSUS_SAMPLE = 50_000
MIN_REPLAY = 30
# Stored incidents that carry a field before it is learned and replayed.
MIN_LABELLED = 50
# Share of the model in the mix with the neighbours' vote, chosen per field on the replay.
MIX_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# Temperatures of the neighbours' vote tried on the replay: a low one follows the nearest
# incidents, a high one counts all twenty nearly alike (steadier where labels are noisy).
TAU_GRID = (0.02, 0.05, 0.1, 0.2)
# A mix with the model replaces the vote alone only when the replay says it is this much
# more accurate: a few hundred replayed incidents cannot tell a near-tie apart.
MIX_MARGIN = 0.005
REPLAY_FOLDS = 4
# Training incidents x classes one field's model may cost, and training incidents at most.
MODEL_BUDGET = 1_500_000
MAX_MODEL_INCIDENTS = 20_000
# Term weights one field's model keeps in the profile (classes x vocabulary).
MODEL_TERM_WEIGHTS = 600_000
# Share of replayed incidents triage may mark "not sure" (the least sure ones), and the
# probability above which it never does.
NOT_SURE_SHARE = 0.12
# An incident that left the first desk (escalated, reassigned) counts this much as a label
# of where incidents like it go: its first group was wrong, and its last may be too.
ESCALATED_LABEL_WEIGHT = 0.5
# A customer tier steers the group when at least this many stored incidents of the tier
# went to one group at least TIER_LIFT times as often as incidents in general did.
MIN_TIER_INCIDENTS = 20
TIER_LIFT = 2.0
TIER_MIN_SHARE = 0.2
TIER_TOKEN = "tier:"

# Priority scales as ticket systems write them, lowest first; a word on several scales
# ("low") steps up on the first that has it (Jira's five steps).
LADDERS = (
    ("lowest", "low", "medium", "high", "highest"),
    ("low", "normal", "high", "urgent"),
    ("planning", "low", "moderate", "high", "critical"),
    ("trivial", "minor", "major", "critical", "blocker"),
)


def neighbours(
    dense: dict[int, float],
    state: SearchState,
    exclude: DocKey | None = None,
    limit: int = NEIGHBOURS,
) -> list[tuple[DocInfo, float]]:
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


def label_weight(doc: DocInfo, field: str) -> float:
    """How much an incident counts as evidence of where incidents like it go."""
    return ESCALATED_LABEL_WEIGHT if field == "assignment_group" and doc.escalated == "yes" else 1.0


def vote_shares(
    near: Sequence[tuple[DocInfo, float]], field: str, tau: float = VOTE_TAU
) -> tuple[dict[str, float], int, dict[str, list[str]]]:
    """(value -> its share of the similarity-weighted vote, incidents that had a value,
    value -> the incidents that voted for it) over the neighbours that have ``field``."""
    known = [
        (getattr(doc, field), score, doc.id, label_weight(doc, field))
        for doc, score in near
        if getattr(doc, field)
    ]
    if not known:
        return {}, 0, {}
    top = max(score for _, score, _, _ in known)
    weights: dict[str, float] = defaultdict(float)
    backers: dict[str, list[str]] = defaultdict(list)
    for value, score, doc_id, weight in known:
        weights[value] += weight * math.exp((score - top) / tau)
        backers[value].append(doc_id)
    total = sum(weights.values())
    return {v: w / total for v, w in weights.items()}, len(known), dict(backers)


def vote(near: Sequence[tuple[DocInfo, float]], field: str) -> tuple[str, float, int, list[str]]:
    """(value, its share of the similarity-weighted vote, incidents that had a value, the
    incidents that voted for it) over the neighbours that have ``field``."""
    shares, evidence, backers = vote_shares(near, field)
    if not shares:
        return "", 0.0, 0, []
    value = max(shares, key=shares.get)
    return value, shares[value], evidence, backers[value]


def vote_features(share: float, evidence: int) -> list[float]:
    return [share, math.log1p(evidence), 1.0]


def probability(calibration: dict[str, Any], field: str, share: float, evidence: int) -> float:
    """P(the vote is right) for a profile fitted before fields had models (a map from the
    vote's share and evidence), else the share, shrunk when few incidents voted."""
    weights = (calibration or {}).get(field, {}).get("weights")
    if not weights:
        return share * evidence / (evidence + 2)
    z = sum(w * x for w, x in zip(weights, vote_features(share, evidence), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def combine(
    shares: Mapping[str, float], model: Mapping[str, float] | None, mix: float
) -> dict[str, float]:
    """The neighbours' vote and the model's probabilities, mixed: ``mix`` is the model's
    share. Without neighbours that have a value, the model alone; without a model, the vote."""
    if not model:
        return dict(shares)
    if not shares:
        return dict(model)
    out: dict[str, float] = defaultdict(float)
    for value, p in shares.items():
        out[value] += (1.0 - mix) * p
    for value, p in model.items():
        out[value] += mix * p
    return dict(out)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def confidence_features(
    value: str,
    mixed: Mapping[str, float],
    shares: Mapping[str, float],
    model: Mapping[str, float] | None,
) -> list[float]:
    """What the calibration map reads of a prediction: the logits of its combined share, of
    its share of the neighbours' vote and of the model's probability (each source's say, so
    that agreement counts), and a constant."""
    top = mixed.get(value, 0.0)
    return [
        _logit(top),
        _logit(shares.get(value, 0.0) if shares else top),
        _logit(model.get(value, 0.0) if model else top),
        1.0,
    ]


def calibrated(weights: Sequence[float], features: Sequence[float]) -> float:
    """P(right) of a prediction: a logistic map of its confidence features."""
    z = sum(w * x for w, x in zip(weights, features, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def tier_stems(doc_stems: Sequence[str], tier: str) -> list[str]:
    """A group model reads the customer's tier as one more term."""
    tier = tier.strip().casefold()
    return [*doc_stems, TIER_TOKEN + "_".join(tier.split())] if tier else list(doc_stems)


FIELD_WORDS = {
    "assignment_group": "an assignment group",
    "category": "a category",
    "product": "a product",
    "priority": "a priority",
}


@dataclass
class FieldModel:
    """One field's fitted choice (see ``fit_triage``), as the profile keeps it."""

    field: str
    status: str  # fitted | single | too_little_evidence | legacy | none
    labelled: int = 0
    mix: float = 0.0
    tau: float = VOTE_TAU
    weights: tuple[float, ...] | None = None
    threshold: float = SURE
    model: ResolutionClassifier | None = None
    tiers: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_entry(cls, field: str, entry: Mapping[str, Any] | None) -> FieldModel:
        if not entry:
            return cls(field, "none")
        if "status" not in entry:
            return cls(field, "legacy")
        weights = entry.get("calibration")
        return cls(
            field,
            entry["status"],
            int(entry.get("labelled", 0)),
            float(entry.get("mix", 0.0)),
            float(entry.get("tau", VOTE_TAU)),
            tuple(float(w) for w in weights) if weights else None,
            float(entry.get("threshold", SURE)),
            ResolutionClassifier.from_dict(entry.get("model")),
            entry.get("tiers") or None,
        )

    def model_probabilities(
        self, vector: np.ndarray | None, doc_stems: Sequence[str] | None, tier: str = ""
    ) -> dict[str, float] | None:
        if self.model is None or vector is None or self.mix <= 0:
            return None
        words = (
            tier_stems(doc_stems or [], tier)
            if self.field == "assignment_group"
            else list(doc_stems or [])
        )
        logp = self.model.log_proba(vector, words)
        return dict(zip(self.model.classes, np.exp(logp).tolist(), strict=True))


class TriageModels:
    """The profile's triage entries, decoded once per profile."""

    def __init__(self, entries: Mapping[str, Any] | None):
        self.entries = dict(entries or {})
        self.fields = {
            field: FieldModel.from_entry(field, self.entries.get(field)) for field in ROUTED_FIELDS
        }


def predict_field(
    field: FieldModel,
    near: Sequence[tuple[DocInfo, float]],
    entries: Mapping[str, Any],
    *,
    vector: np.ndarray | None = None,
    doc_stems: Sequence[str] | None = None,
    tier: str = "",
    no_good_match: bool = False,
) -> dict[str, Any]:
    """One field's prediction: value (None when not sure), calibrated probability, the best
    guess, the nearest incident's value, the evidence and, when not sure, why."""
    name = field.field
    shares, evidence, backers = vote_shares(near, name, field.tau)
    model = field.model_probabilities(vector, doc_stems, tier) if field.status == "fitted" else None
    mixed = combine(shares, model, field.mix if shares else 1.0)
    nearest = next((getattr(doc, name) for doc, _ in near if getattr(doc, name)), None)
    value = max(mixed, key=mixed.get) if mixed else ""
    reason = ""
    if field.status == "fitted" and field.weights:
        p = (
            calibrated(field.weights, confidence_features(value, mixed, shares, model))
            if value
            else 0.0
        )
        sure = bool(value) and p >= field.threshold
        if not sure:
            reason = (
                f"no similar incident has {FIELD_WORDS[name]}"
                if not value
                else f"the probability is under this store's threshold ({field.threshold:.0%})"
            )
    else:
        p = probability(entries, name, shares.get(value, 0.0), evidence) if value else 0.0
        sure = bool(value) and evidence >= MIN_EVIDENCE and p >= SURE
        if field.status == "too_little_evidence":
            sure = False
            reason = (
                f"too little evidence: {field.labelled} stored incidents have {FIELD_WORDS[name]}"
            )
        elif field.status == "none" and entries and "status" in next(iter(entries.values()), {}):
            sure = False
            reason = f"no stored incident has {FIELD_WORDS[name]}"
        elif not sure:
            reason = (
                f"no similar incident has {FIELD_WORDS[name]}"
                if not value
                else "too few similar incidents agree"
            )
    if no_good_match and sure:
        sure, reason = False, "no good match: nothing stored is much like this incident"
    out: dict[str, Any] = {
        "value": value if sure else None,
        "probability": round(p, 3),
        "not_sure": not sure,
        "best_guess": value or None,
        "nearest": nearest,
        "evidence": evidence,
        "similar_incidents": backers.get(value, [])[:SHOWN_INCIDENTS],
        "source": "model and similar incidents"
        if model and shares and field.mix < 1
        else "model"
        if model
        else "similar incidents",
    }
    if reason:
        out["reason"] = reason
    return out


def tier_route(field: FieldModel, tier: str, value: str) -> dict[str, Any] | None:
    """Why a group follows from the customer's tier: the store routes that tier to it far
    more often than other incidents (None when it does not, or the tier is not given)."""
    if not tier.strip() or not field.tiers:
        return None
    routed = field.tiers.get(tier.strip().casefold())
    if not routed or routed.get("group") != value:
        return None
    return dict(
        routed,
        tier=tier.strip(),
        note=f"{tier.strip()} customers' incidents went to {value} in {routed['share']:.0%} of "
        f"{routed['incidents']} cases ({routed['overall_share']:.0%} of all incidents)",
    )


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


def triage(
    near: Sequence[tuple[DocInfo, float]],
    calibration: dict[str, Any],
    *,
    customer_tier: str = "",
    top_tiers: Sequence[str] = (),
    models: TriageModels | None = None,
    vector: np.ndarray | None = None,
    doc_stems: Sequence[str] | None = None,
    no_good_match: bool = False,
    viewer: Viewer | None = None,
    docs: Mapping[DocKey, DocInfo] | None = None,
) -> dict[str, Any]:
    """The triage object of one suggestion (see the module docstring and docs/triage.md).

    ``vector`` (the query's unit mean embedding) and ``doc_stems`` (its content stems) feed
    the fields' models; ``no_good_match`` (the suggestion's verdict) makes every field not
    sure; ``viewer`` decides what may be shown; ``docs`` (the state's documents) names the
    articles similar incidents were solved with."""
    models = models or TriageModels(calibration)
    public = getattr(viewer, "audience", "internal") == "public"
    out: dict[str, Any] = {"similar_incidents": len(near)}
    for name in FIELDS:
        out[name] = predict_field(
            models.fields[name],
            near,
            models.entries,
            vector=vector,
            doc_stems=doc_stems,
            tier=customer_tier,
            no_good_match=no_good_match,
        )
    routed = tier_route(
        models.fields["assignment_group"],
        customer_tier,
        out["assignment_group"]["best_guess"] or "",
    )
    if routed:
        out["assignment_group"]["customer_tier"] = routed
    out["priority"] = _priority(
        models.fields["priority"],
        near,
        models.entries,
        customer_tier,
        top_tiers,
        vector=vector,
        doc_stems=doc_stems,
        no_good_match=no_good_match,
    )
    out["first_line"] = _first_line(near, viewer, docs)
    if public:  # no incident of another customer, by id or by text
        for name in (*FIELDS, "priority"):
            out[name]["similar_incidents"] = []
    return out


def _priority(
    field: FieldModel,
    near,
    entries,
    customer_tier: str,
    top_tiers: Sequence[str],
    *,
    vector=None,
    doc_stems=None,
    no_good_match: bool = False,
) -> dict[str, Any]:
    predicted = predict_field(
        field, near, entries, vector=vector, doc_stems=doc_stems, no_good_match=no_good_match
    )
    value = predicted["best_guess"] or ""
    _, share, evidence, backers = vote(near, "priority")
    result: dict[str, Any] = {
        "value": value or None,
        "share": round(share, 3),
        "evidence": evidence,
        "similar_incidents": predicted["similar_incidents"],
        "raised": False,
        "note": "",
        "probability": predicted["probability"],
        "not_sure": predicted["not_sure"],
        "nearest": predicted["nearest"],
    }
    if not value:
        result["note"] = "no similar incident has a priority"
        return result
    top = customer_tier.strip().lower() in {t.strip().lower() for t in top_tiers if t.strip()}
    if top:
        raised = raise_priority(value)
        if raised:
            result.update(
                value=raised,
                raised=True,
                similar_priority=value,
                note=f"raised one step from {value} for a {customer_tier} customer",
            )
    return result


def _first_line(near, viewer=None, docs: Mapping[DocKey, DocInfo] | None = None) -> dict[str, Any]:
    """How many similar incidents were solved without escalation, and the usual way: an
    article the viewer may see (named by its title), else, for agents, an incident's fix."""
    public = getattr(viewer, "audience", "internal") == "public"
    known = [doc for doc, _ in near if doc.escalated in ("yes", "no")]
    solved = [doc for doc in known if doc.escalated == "no"]
    result: dict[str, Any] = {
        "similar": len(known),
        "solved_at_first_line": len(solved),
        "resolution": None,
        "text": "",
    }
    if not known:
        result["text"] = "no similar incident says whether it was escalated"
        return result
    if not solved:
        result["text"] = f"none of {len(known)} similar incidents was solved at the first line"
        return result
    summary = f"{len(solved)} of {len(known)} similar incidents were solved at the first line"
    viewer = viewer or Viewer()
    articles = {}
    for doc in solved:
        article = (
            docs.get(("article", doc.article_id)) if docs is not None and doc.article_id else None
        )
        if article is not None and viewer.can_see(article):
            articles[doc.id] = article

    def way(doc):
        return (
            ("article", articles[doc.id].id)
            if doc.id in articles
            else ("incident", doc.res_key or doc.id)
        )

    ways = Counter(way(d) for d in solved if d.id in articles or not public)
    if not ways:
        result["text"] = summary
        return result
    (kind, key), count = ways.most_common(1)[0]
    example = next(d for d in solved if (d.id in articles or not public) and way(d) == (kind, key))
    if kind == "article":
        article = articles[example.id]
        result["resolution"] = {
            "kind": "article",
            "id": article.id,
            "title": article.title,
            "incidents": count,
            "resolution": article.resolution[:200],
        }
        how = f"the article “{article.title}”"
    else:
        result["resolution"] = {
            "kind": "incident",
            "id": example.id,
            "incidents": count,
            "resolution": example.resolution[:200],
        }
        how = f"the fix of {example.id}"
    result["text"] = summary + (
        f", {count} of them with {how}" if count < len(solved) else f" with {how}"
    )
    return result


# --- fitting, at `kb index` ----------------------------------------------------------------


def reliability(rows: Sequence[tuple[float, bool]], bins: int = 10) -> list[dict[str, Any]]:
    """Per probability bin: how many predictions, their mean probability, how many were right."""
    table = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(p, r) for p, r in rows if low <= p < high or (b == bins - 1 and p == 1.0)]
        if inside:
            table.append(
                {
                    "bin": f"{low:.1f}-{high:.1f}",
                    "n": len(inside),
                    "mean_probability": round(sum(p for p, _ in inside) / len(inside), 3),
                    "accuracy": round(sum(r for _, r in inside) / len(inside), 3),
                }
            )
    return table


@dataclass
class _Replayed:
    doc_id: str
    fold: int
    near: list[tuple[DocInfo, float]]
    copies: set[str]


def _replay_neighbours(state: SearchState, ids: list[str], matrix: np.ndarray) -> list[_Replayed]:
    """Each replayed incident's neighbours without itself and its near-copies (which a new
    incident would not have), and those near-copies (left out of its fold's training)."""
    with state.lock:
        scores, found = state.index.search(matrix.astype(np.float32), 100)
    out = []
    for row, doc_id in enumerate(ids):
        dense, copies = {}, set()
        for cid, score in zip(found[row], scores[row], strict=True):
            if cid < 0:
                continue
            if score >= COPY_SIMILARITY:
                key = state.chunk_doc.get(int(cid))
                if key is not None and key[0] == "incident":
                    copies.add(key[1])
            else:
                dense[int(cid)] = float(score)
        copies.discard(doc_id)
        near = [
            (d, s)
            for d, s in neighbours(dense, state, exclude=("incident", doc_id))
            if d.id not in copies
        ]
        out.append(_Replayed(doc_id, row % REPLAY_FOLDS, near, copies))
    return out


def _tier_routes(values: Mapping[str, str], tiers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Tiers the store routes differently: tier -> the group its incidents go to far more
    often than incidents in general (share, incidents of the tier, overall share)."""
    overall = Counter(values.values())
    total = sum(overall.values())
    by_tier: dict[str, Counter] = defaultdict(Counter)
    for doc_id, group in values.items():
        tier = tiers.get(doc_id, "").strip().casefold()
        if tier:
            by_tier[tier][group] += 1
    routes = {}
    for tier, groups in by_tier.items():
        n = sum(groups.values())
        if n < MIN_TIER_INCIDENTS or len(by_tier) < 2:
            continue
        group, count = max(groups.items(), key=lambda item: (item[1] / overall[item[0]], item[1]))
        share, base = count / n, overall[group] / total
        if share >= TIER_MIN_SHARE and share >= TIER_LIFT * base:
            routes[tier] = {
                "group": group,
                "share": round(share, 3),
                "incidents": n,
                "overall_share": round(base, 3),
            }
    return routes


def fit_triage(
    state: SearchState,
    vectors: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    store: Any = None,
) -> tuple[dict, dict]:
    """Fit each routed field on the store (see the module docstring). Returns (the profile's
    triage entries, figures per field: replay accuracy of the vote, the model and the chosen
    mix, the share marked not sure and the accuracy of the rest, the majority and
    nearest-incident baselines, a reliability table)."""
    began = time.monotonic()
    ids = sorted(doc_id for doc_id in vectors if ("incident", doc_id) in state.docs)
    ids = [i for i in ids if any(getattr(state.docs[("incident", i)], f) for f in ROUTED_FIELDS)]
    if not ids:
        return {}, {}
    census = (
        ids
        if len(ids) <= CENSUS_SAMPLE
        else sorted(rng.choice(ids, size=CENSUS_SAMPLE, replace=False))
    )
    sample = (
        ids
        if len(ids) <= MAX_MODEL_INCIDENTS
        else sorted(rng.choice(ids, size=MAX_MODEL_INCIDENTS, replace=False))
    )
    order = list(rng.permutation(len(sample)))
    replay_ids = [sample[i] for i in order[:REPLAY_SAMPLE]]
    texts, tiers = _texts_and_tiers(store, sample)
    matrix = (
        vectors.matrix(sample)
        if hasattr(vectors, "matrix")
        else np.vstack([vectors[i] for i in sample])
    )
    row_of = {doc_id: row for row, doc_id in enumerate(sample)}
    replayed = _replay_neighbours(state, replay_ids, matrix[[row_of[i] for i in replay_ids]])
    entries: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    for field in ROUTED_FIELDS:
        counts = Counter(getattr(state.docs[("incident", i)], field) for i in census)
        counts.pop("", None)
        labelled = sum(counts.values())
        if not counts:
            continue
        if len(counts) == 1:
            entries[field] = {"status": "single", "labelled": labelled}
            continue
        if labelled < MIN_LABELLED:
            entries[field] = {"status": "too_little_evidence", "labelled": labelled}
            figures[field] = {"note": f"{labelled} incidents have a value (need {MIN_LABELLED})"}
            continue
        entry, figure = _fit_field(
            field, state, sample, matrix, row_of, texts, tiers, replayed, counts, rng
        )
        entries[field] = entry
        figures[field] = figure
    figures["seconds"] = round(time.monotonic() - began, 2)
    return entries, figures


def _texts_and_tiers(store: Any, ids: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    from indexer.chunking import incident_text
    from kb.text import normalise_text
    from search.classifier import content_stems

    if store is None:
        return {}, {}
    texts, tiers = {}, {}
    for incident in store.iter_incidents(ids):
        texts[incident.id] = content_stems(
            normalise_text(incident_text(incident.title, incident.description))
        )
        if incident.customer_tier:
            tiers[incident.id] = incident.customer_tier
    return texts, tiers


def _fit_field(
    field: str,
    state: SearchState,
    sample: list[str],
    matrix: np.ndarray,
    row_of: dict[str, int],
    texts: dict[str, list[str]],
    tiers: dict[str, str],
    replayed: list[_Replayed],
    counts: Counter,
    rng: np.random.Generator,
) -> tuple[dict, dict]:
    value_of = {i: getattr(state.docs[("incident", i)], field) for i in sample}
    sizes = Counter(v for v in value_of.values() if v)
    classes = {v for v, n in sizes.items() if n >= MIN_CLASS_SIZE}
    train_ids = [i for i in sample if value_of[i] in classes and i in texts]
    limit = min(MAX_MODEL_INCIDENTS, MODEL_BUDGET // max(len(classes), 1))
    if len(train_ids) > limit:
        train_ids = sorted(rng.choice(train_ids, size=limit, replace=False))

    def stems_of(doc_id: str) -> list[str]:
        words = texts.get(doc_id, [])
        return tier_stems(words, tiers.get(doc_id, "")) if field == "assignment_group" else words

    def train(keep: list[str]) -> ResolutionClassifier | None:
        if len({value_of[i] for i in keep}) < 2:
            return None
        weights = np.array([label_weight(state.docs[("incident", i)], field) for i in keep])
        return train_classifier(
            matrix[[row_of[i] for i in keep]],
            [stems_of(i) for i in keep],
            [value_of[i] for i in keep],
            dict.fromkeys(classes, ""),
            sample_weight=weights,
            max_terms=MODEL_TERM_WEIGHTS,
        )

    rows = [r for r in replayed if value_of.get(r.doc_id)]
    model_p: dict[str, dict[str, float] | None] = {}
    if len(classes) >= 2 and len(train_ids) >= MIN_LABELLED:
        for fold in range(REPLAY_FOLDS):
            in_fold = [r for r in rows if r.fold == fold]
            left_out = {r.doc_id for r in in_fold} | {c for r in in_fold for c in r.copies}
            model = train([i for i in train_ids if i not in left_out])
            for r in in_fold:
                if model is None or r.doc_id not in texts:
                    model_p[r.doc_id] = None
                    continue
                logp = model.log_proba(matrix[row_of[r.doc_id]], stems_of(r.doc_id))
                model_p[r.doc_id] = dict(zip(model.classes, np.exp(logp).tolist(), strict=True))
    has_model = any(p for p in model_p.values())
    majority = counts.most_common(1)[0][0]

    def replay(mix: float, tau: float) -> list[tuple[list[float], bool]]:
        out = []
        for r in rows:
            shares, _, _ = vote_shares(r.near, field, tau)
            model = model_p.get(r.doc_id) if mix > 0 else None
            mixed = combine(shares, model, mix if shares else 1.0)
            value = max(mixed, key=mixed.get) if mixed else ""
            out.append(
                (confidence_features(value, mixed, shares, model), value == value_of[r.doc_id])
            )
        return out

    def score(results: list[tuple[float, bool]]) -> float:
        return sum(right for _, right in results) / max(len(results), 1)

    grid = {
        (mix, tau): replay(mix, tau)
        for mix in (MIX_GRID if has_model else (0.0,))
        for tau in TAU_GRID
    }
    plain = (0.0, VOTE_TAU)
    best_key = max(grid, key=lambda k: (score(grid[k]), k[0], k[1] == VOTE_TAU))
    if score(grid[best_key]) < score(grid[plain]) + MIX_MARGIN:
        best_key = plain
    best, tau = best_key
    chosen = grid[best_key]
    if len(rows) < MIN_REPLAY:
        return (
            {"status": "too_little_evidence", "labelled": sum(counts.values())},
            {"note": f"{len(rows)} replayed incidents have a value (need {MIN_REPLAY})"},
        )
    x = np.array([features for features, _ in chosen])
    y = np.array([1.0 if right else 0.0 for _, right in chosen])
    weights = fit_logistic(x, y) if 0 < y.sum() < len(y) else np.array([1.0, 0.0, 0.0, 0.0])
    probabilities = [calibrated(weights, features) for features, _ in chosen]
    threshold = min(SURE, float(np.quantile(probabilities, NOT_SURE_SHARE)))
    sure = [
        (p, right) for p, (_, right) in zip(probabilities, chosen, strict=True) if p >= threshold
    ]
    final = train(train_ids) if best > 0 else None
    if best > 0 and final is None:
        best = 0.0
    entry: dict[str, Any] = {
        "status": "fitted",
        "labelled": sum(counts.values()),
        "classes": len(counts),
        "mix": best,
        "tau": tau,
        "calibration": [float(w) for w in weights],
        "threshold": round(threshold, 4),
    }
    if final is not None:
        entry["model"] = final.to_dict()
    if field == "assignment_group" and tiers:
        entry["tiers"] = _tier_routes({i: value_of[i] for i in sample if value_of[i]}, tiers)
    nearest = [
        next((getattr(d, field) for d, _ in r.near if getattr(d, field)), "") == value_of[r.doc_id]
        for r in rows
    ]
    figure = {
        "replayed": len(rows),
        "mix": best,
        "tau": tau,
        "accuracy_at_1": round(score(chosen), 4),
        "vote_accuracy": round(score(grid[plain]), 4),
        "model_accuracy": round(score(grid[(1.0, VOTE_TAU)]), 4)
        if (1.0, VOTE_TAU) in grid
        else None,
        "threshold": round(threshold, 4),
        "not_sure_share": round(1 - len(sure) / len(rows), 4),
        "accuracy_when_sure": round(sum(r for _, r in sure) / len(sure), 4) if sure else None,
        "majority_baseline": round(
            sum(value_of[r.doc_id] == majority for r in rows) / len(rows), 4
        ),
        "nearest_neighbour_baseline": round(sum(nearest) / len(rows), 4),
        "trained_on": len(train_ids),
        "reliability": reliability(list(zip(probabilities, y.astype(bool), strict=True))),
    }
    return entry, figure
