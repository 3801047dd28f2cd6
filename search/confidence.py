"""Confidence that is a probability, and "no good match" that knows what close looks like.

Both are fitted at ``kb index`` on a mixed stream built from the store itself:

- answerable requests: replayed incidents whose right answer is known (see
  search.calibration), asked with themselves and their near-copies left out, and asked again
  without their three nearest siblings (incidents of the same resolution), as a new wording
  of a known problem would be;
- near-domain off-topic requests: replayed incidents asked with their whole resolution
  held out of the store (its article and every incident resolved with it), so that nothing
  in the store answers them: "close but unanswered" on this store, in its own language;
- far off-topic requests: the packaged background of everyday requests (cooking, travel,
  small talk) that no support desk answers.

Two logistic maps are fitted on that stream, each on evidence beyond the best similarity
(the spread of the top results, whether the lexical half agrees with the dense half, the
classifier's probability where the store has one):

- ``answerable``: P(the store holds an answer). A request is flagged "no good match" below
  the cut that separates answerable from off-topic best (balanced accuracy) while flagging
  at most ``MAX_FLAGGED_SHARE`` of answerable replays.
- ``confidence``: P(this result fixes this incident), per shown result, over the whole mixed
  stream (an off-topic request's results are all wrong): P(answerable) and P(right | the
  request is answerable, from the result's own features) combined by a last logistic map
  fitted on the stream, so that the number is calibrated on it. It is shrunk toward the stream's
  base rate by ``PRIOR_WEIGHT`` pseudo-queries, so a store with thin evidence shows less
  certainty, not more. "High" is given only above the cut where the replayed top results
  were right at least nine times in ten, with a one-sided lower confidence bound.

Where a store's replay is too small to fit either map, no number is claimed: results carry
a band without a number (``confidence`` is null in the API).

Each language present in the store with enough replay evidence gets its own pair of maps
and cut (languages as ``kb.language.detect_code`` names them); others use the store-wide one.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.ranking import Candidates, GroupScore, group_similarity
from search.state import DocKey, SearchState

ANSWERABLE, NEAR, FAR = "answerable", "near", "far"
# The mix of the stream the maps are calibrated for: mostly answerable requests, with
# off-topic ones from the same domain and from elsewhere.
STREAM_MIX = {ANSWERABLE: 0.8, NEAR: 0.1, FAR: 0.1}
# Results per request whose confidence is fitted (the first few an agent reads).
POSITIONS = 3
# Share of answerable replays that "no good match" may flag.
MAX_FLAGGED_SHARE = 0.03
# Pseudo-queries at the base rate that every fitted confidence is shrunk toward.
PRIOR_WEIGHT = 20.0
# Minimum evidence for a fitted map: answerable replays, and off-topic ones.
MIN_ANSWERABLE = 30
MIN_OFF_TOPIC = 20
# A language gets maps of its own with at least this many answerable replays.
MIN_LANGUAGE_ANSWERABLE = 60
MIN_LANGUAGE_NEAR = 30
# Answerable replays are asked a second time without their SIBLINGS_OUT nearest incidents
# of the same resolution (a new wording of a known problem).
SIBLINGS_OUT = 3
# Near-domain off-topic replays: incidents asked with their whole resolution held out.
MAX_HELD_OUT = 300
# Bands: "high" needs the fitted cut (right at least HIGH_PRECISION of the time, lower bound
# at one-sided z = HIGH_Z) and at least MIN_HIGH_CUT; "medium" from MEDIUM_CUT.
HIGH_PRECISION = 0.9
HIGH_Z = 1.28
MIN_HIGH_CUT = 0.7
MIN_HIGH_EVIDENCE = 20
MEDIUM_CUT = 0.4
# Cuts whose balanced accuracy on the replay is within this of the best count as equally good.
CUT_TOLERANCE = 0.005
# Under "no good match" a result never shows more than this.
NO_MATCH_CAP = 0.39
L2 = 0.01
STORE_WIDE = "*"
BANDS = ("high", "medium", "low")


# --- evidence of one request ---------------------------------------------------------------


@dataclass
class Evidence:
    """What one request's candidates say, beyond its ranked groups."""

    best_similarity: float
    spread: float  # best similarity minus the fifth best document's
    lexical_doc: DocKey | None  # the document of the best BM25 chunk
    class_probability: dict[str, float]  # group -> classifier probability (empty without one)
    overlap: float = 0.0  # share of the ten most similar documents that BM25 found too


def gather_evidence(
    cands: Candidates, state: SearchState, class_logp: dict[str, float] | None
) -> Evidence:
    best: dict[DocKey, float] = {}
    for cid, score in cands.dense.items():
        key = state.chunk_doc.get(cid)
        if key is not None and score > best.get(key, -2.0):
            best[key] = score
    ordered = sorted(best.values(), reverse=True)
    s1 = ordered[0] if ordered else 0.0
    s5 = ordered[min(4, len(ordered) - 1)] if ordered else 0.0
    lexical_doc = None
    if cands.lexical:
        top = max(cands.lexical, key=cands.lexical.get)
        lexical_doc = state.chunk_doc.get(top)
    probs = {}
    if class_logp:
        probs = {name: math.exp(value) for name, value in class_logp.items()}
    lexical_docs = {state.chunk_doc.get(cid) for cid in cands.lexical}
    top_docs = sorted(best, key=best.get, reverse=True)[:10]
    overlap = sum(key in lexical_docs for key in top_docs) / len(top_docs) if top_docs else 0.0
    return Evidence(float(s1), float(s1 - s5), lexical_doc, probs, float(overlap))


def _agrees(group: GroupScore, evidence: Evidence, state: SearchState) -> float:
    key = evidence.lexical_doc
    if key is None:
        return 0.0
    if any(member[0] == key for member in group.members):
        return 1.0
    doc = state.docs.get(key)
    if doc is None:
        return 0.0
    if group.group.startswith("a:"):
        return float(
            doc.kind == "article"
            and group.group == "a:" + doc.id
            or doc.kind == "incident"
            and group.group == "a:" + (doc.article_id or "")
        )
    return float(bool(doc.res_key) and doc.res_key == group.group)


def answer_features(
    groups: Sequence[GroupScore], cands: Candidates, evidence: Evidence, state: SearchState
) -> list[float]:
    """(best similarity, top group's similarity, spread, lexical agreement, classifier top,
    BM25 overlap with the nearest documents, log size of the top group, 1)."""
    if not groups:
        return [
            evidence.best_similarity,
            0.0,
            evidence.spread,
            0.0,
            0.0,
            evidence.overlap,
            0.0,
            1.0,
        ]
    top = groups[0]
    return [
        evidence.best_similarity,
        group_similarity(top, cands),
        evidence.spread,
        _agrees(top, evidence, state),
        max(evidence.class_probability.values(), default=0.0),
        evidence.overlap,
        math.log1p(state.group_size(top.group)),
        1.0,
    ]


def result_features(
    groups: Sequence[GroupScore],
    cands: Candidates,
    evidence: Evidence,
    position: int,
    scale: float,
    state: SearchState,
) -> list[float]:
    """Features of the result at ``position`` (see ``ConfidenceModel``)."""
    group = groups[position]
    following = groups[position + 1].score if position + 1 < len(groups) else group.score - scale
    return [
        group_similarity(group, cands),
        (group.score - following) / scale,
        (groups[0].score - group.score) / scale,
        evidence.best_similarity,
        evidence.spread,
        _agrees(group, evidence, state),
        evidence.class_probability.get(group.group, 0.0),
        math.log1p(state.group_size(group.group)),
        evidence.overlap,
        1.0 if position == 0 else 0.0,
        1.0,
    ]


# --- the fitted maps -----------------------------------------------------------------------


def combined_features(answer_logit: float, right_logit: float) -> list[float]:
    clip = 30.0
    return [max(min(answer_logit, clip), -clip), max(min(right_logit, clip), -clip), 1.0]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class ConfidenceModel:
    """The maps of one language (or the whole store)."""

    answerable: list[float]
    answer_cut: float
    confidence: list[float]  # P(right | answerable) from the result's features
    combine: list[float]  # over (logit P(answerable), logit P(right | answerable), 1)
    base_rate: float
    evidence: int  # answerable replays behind it
    high_cut: float
    no_match_cap: float = NO_MATCH_CAP
    fitted: dict[str, Any] = field(default_factory=dict)

    def p_answerable(self, features: list[float]) -> float:
        return _sigmoid(float(np.dot(self.answerable, features)))

    def no_good_match(self, features: list[float]) -> bool:
        return self.p_answerable(features) < self.answer_cut

    def p_right(self, features: list[float], answer: list[float]) -> float:
        """Fitted probability, shrunk toward the base rate by PRIOR_WEIGHT pseudo-queries."""
        raw = _sigmoid(
            float(
                np.dot(
                    self.combine,
                    combined_features(
                        float(np.dot(self.answerable, answer)),
                        float(np.dot(self.confidence, features)),
                    ),
                )
            )
        )
        n = float(self.evidence)
        return (n * raw + PRIOR_WEIGHT * self.base_rate) / (n + PRIOR_WEIGHT)

    def band(self, p: float) -> str:
        if p >= self.high_cut:
            return "high"
        if p >= MEDIUM_CUT:
            return "medium"
        return "low"

    def to_dict(self) -> dict[str, Any]:
        return {
            "answerable": self.answerable,
            "answer_cut": self.answer_cut,
            "confidence": self.confidence,
            "combine": self.combine,
            "base_rate": self.base_rate,
            "evidence": self.evidence,
            "high_cut": self.high_cut,
            "no_match_cap": self.no_match_cap,
            "fitted": self.fitted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceModel:
        return cls(
            answerable=list(data["answerable"]),
            answer_cut=float(data["answer_cut"]),
            confidence=list(data["confidence"]),
            combine=list(data["combine"]),
            base_rate=float(data["base_rate"]),
            evidence=int(data["evidence"]),
            high_cut=float(data["high_cut"]),
            no_match_cap=float(data.get("no_match_cap", NO_MATCH_CAP)),
            fitted=dict(data.get("fitted", {})),
        )


@dataclass
class Judgement:
    """The verdict on one request and the shown confidence of each result."""

    no_good_match: bool
    confidences: list[float | None]  # None: no honest number (a band only)
    bands: list[str]
    scores: list[float]  # the number kept in the API's "score" (always a number)
    p_answerable: float | None = None
    language: str = STORE_WIDE


@dataclass
class TrustProfile:
    scale: float
    models: dict[str, ConfidenceModel]

    def model_for(self, language: str | None) -> tuple[str, ConfidenceModel]:
        if language and language in self.models:
            return language, self.models[language]
        return STORE_WIDE, self.models[STORE_WIDE]

    @property
    def languages(self) -> list[str]:
        return sorted(k for k in self.models if k != STORE_WIDE)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "models": {k: m.to_dict() for k, m in self.models.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrustProfile | None:
        if not data or STORE_WIDE not in (data.get("models") or {}):
            return None
        return cls(
            scale=float(data.get("scale") or 1.0),
            models={k: ConfidenceModel.from_dict(v) for k, v in data["models"].items()},
        )

    def judge(
        self,
        groups: Sequence[GroupScore],
        cands: Candidates,
        evidence: Evidence,
        state: SearchState,
        count: int,
        language: str | None = None,
    ) -> Judgement:
        name, model = self.model_for(language)
        features = answer_features(groups, cands, evidence, state)
        p_answer = model.p_answerable(features)
        flagged = p_answer < model.answer_cut or not groups
        values: list[float] = []
        for position in range(min(count, len(groups))):
            p = model.p_right(
                result_features(groups, cands, evidence, position, self.scale, state), features
            )
            if values:
                # A lower result never shows more than the one above it. Each value is the
                # result's own chance, not a share: two results that give the same fix
                # (incidents not grouped into one resolution) can both be likely.
                p = min(p, values[-1])
            if flagged:
                p = min(p, model.no_match_cap)
            values.append(max(p, 0.0))
        bands = ["low" if flagged else model.band(p) for p in values]
        return Judgement(flagged, list(values), bands, values, round(p_answer, 4), name)


def unfitted_judgement(scores: Sequence[float], no_good_match: bool) -> Judgement:
    """Without a fitted trust profile: no number is claimed; the band comes from the old
    similarity map, never "high" (nothing says it would be right nine times in ten)."""
    bands = []
    for p in scores:
        bands.append("low" if no_good_match or p < MEDIUM_CUT else "medium")
    capped = [min(p, NO_MATCH_CAP) if no_good_match else p for p in scores]
    return Judgement(no_good_match, [None] * len(scores), bands, capped)


# --- fitting -------------------------------------------------------------------------------


@dataclass
class StreamQuery:
    """One request of the mixed stream, reduced to what the maps need."""

    kind: str  # ANSWERABLE, NEAR or FAR
    language: str | None
    answer: list[float]
    results: list[tuple[list[float], bool]]  # (result features, right) for the first POSITIONS
    top_margin: float = 0.0


def fit_weighted_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2
) -> np.ndarray:
    """Weighted logistic regression by Newton's method; ``x`` carries its own constant
    (last) column, which is not penalised."""
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 1e-6
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))
        gradient = x.T @ (w * (p - y)) + penalty * beta
        hessian = (x.T * (w * p * (1 - p))) @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _weights(queries: Sequence[StreamQuery]) -> dict[str, float]:
    """Per-query weight that gives each kind its STREAM_MIX share, with weights
    averaging 1 (so the L2 penalty means the same on every store size)."""
    counts = Counter(q.kind for q in queries)
    present = {k: v for k, v in STREAM_MIX.items() if counts.get(k)}
    total = sum(present.values())
    n = len(queries)
    return {k: (present[k] / total) * n / counts[k] for k in present}


def wilson_lower(share: float, n: float, z: float = HIGH_Z) -> float:
    if n <= 0:
        return 0.0
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def choose_cut(
    p_in: np.ndarray, p_out: np.ndarray, max_flagged: float = MAX_FLAGGED_SHARE
) -> tuple[float, dict]:
    """The P(answerable) cut below which a request is flagged: the best balanced accuracy
    among cuts that flag at most ``max_flagged`` of answerable replays; of cuts about as
    good (within CUT_TOLERANCE), the lowest. A new request is worded less like the store than
    the store's own replayed incidents are (their siblings are still in it), so the
    answerable side of the replay is optimistic, while the off-topic side (held-out
    resolutions, background requests) is not: the cut stays as close to the off-topic
    requests as the evidence allows."""
    inside, outside = np.sort(p_in), np.sort(p_out)
    grid = np.unique(np.concatenate([inside, outside, [0.0]]))
    scored = []
    for cut in grid:
        flagged_in = np.searchsorted(inside, cut, side="left") / len(inside)
        if flagged_in > max_flagged:
            break
        flagged_out = (
            np.searchsorted(outside, cut, side="left") / len(outside) if len(outside) else 0.0
        )
        scored.append((float(cut), 0.5 * (flagged_out + 1 - flagged_in)))
    best_score = max(score for _, score in scored)
    best_cut = min(cut for cut, score in scored if score >= best_score - CUT_TOLERANCE)
    flagged_in = float(np.mean(inside < best_cut))
    flagged_out = float(np.mean(outside < best_cut)) if len(outside) else None
    info = {
        "flagged_answerable": round(flagged_in, 4),
        "flagged_off_topic": round(flagged_out, 4) if flagged_out is not None else None,
        "balanced_accuracy": round(0.5 * ((flagged_out or 0.0) + 1 - flagged_in), 4),
    }
    return best_cut, info


def fit_model(queries: Sequence[StreamQuery]) -> ConfidenceModel | None:
    """Both maps, the no-good-match cut and the "high" cut for one language's stream."""
    counts = Counter(q.kind for q in queries)
    off = counts.get(NEAR, 0) + counts.get(FAR, 0)
    if counts.get(ANSWERABLE, 0) < MIN_ANSWERABLE or off < MIN_OFF_TOPIC:
        return None
    weight_of = _weights(queries)
    # P(answerable): near and far off-topic weigh equally against the answerable replays.
    x = np.array([q.answer for q in queries])
    y = np.array([1.0 if q.kind == ANSWERABLE else 0.0 for q in queries])
    off_kinds = Counter(q.kind for q in queries if q.kind != ANSWERABLE)
    w = np.array(
        [
            0.5 * len(queries) / counts[ANSWERABLE]
            if q.kind == ANSWERABLE
            else 0.5 * len(queries) / (len(off_kinds) * off_kinds[q.kind])
            for q in queries
        ]
    )
    answerable = fit_weighted_logistic(x, y, w)
    p = 1.0 / (1.0 + np.exp(-(x @ answerable)))
    inside = p[y == 1]
    near = p[np.array([q.kind == NEAR for q in queries])]
    far = p[np.array([q.kind == FAR for q in queries])]
    # Off-topic pooled with near and far weighing equally: repeat the smaller side.
    outside = _balanced_pool(near, far)
    cut, cut_info = choose_cut(inside, outside)
    # P(right | answerable) for each of the first results, on the answerable replays.
    rows, labels = [], []
    for q in queries:
        if q.kind == ANSWERABLE:
            for features, right in q.results:
                rows.append(features)
                labels.append(1.0 if right else 0.0)
    if not rows or not 0 < sum(labels) < len(labels):
        return None
    confidence = fit_weighted_logistic(np.array(rows), np.array(labels), np.ones(len(rows)))
    # The last map: calibrated over the whole mixed stream.
    mixed, mixed_y, mixed_w = [], [], []
    for q in queries:
        answer_logit = float(np.dot(answerable, q.answer))
        for features, right in q.results:
            mixed.append(combined_features(answer_logit, float(np.dot(confidence, features))))
            mixed_y.append(1.0 if right else 0.0)
            mixed_w.append(weight_of[q.kind])
    combine = fit_weighted_logistic(np.array(mixed), np.array(mixed_y), np.array(mixed_w), l2=1e-3)
    tops = [(q, q.results[0]) for q in queries if q.results]
    top_w = np.array([weight_of[q.kind] for q, _ in tops])
    top_right = np.array([1.0 if r else 0.0 for _, (_, r) in tops])
    base = float((top_w * top_right).sum() / top_w.sum()) if len(top_w) else 0.0
    model = ConfidenceModel(
        answerable.tolist(),
        cut,
        confidence.tolist(),
        combine.tolist(),
        base,
        counts[ANSWERABLE],
        1.01,
    )
    shown = np.array([model.p_right(f, q.answer) for q, (f, _) in tops])
    flags = np.array([model.p_answerable(q.answer) < cut for q, _ in tops])
    shown = np.where(flags, np.minimum(shown, NO_MATCH_CAP), shown)
    model.high_cut, high_info = choose_high_cut(shown, top_right, top_w, flags)
    if flags.any():
        flagged_right = float((top_w[flags] * top_right[flags]).sum() / top_w[flags].sum())
        model.no_match_cap = round(min(NO_MATCH_CAP, max(flagged_right, 0.01)), 4)
    model.fitted = {
        "answerable": counts.get(ANSWERABLE, 0),
        "near": counts.get(NEAR, 0),
        "far": counts.get(FAR, 0),
        "no_good_match": cut_info,
        "high": high_info,
        "base_rate": round(base, 4),
        "ece": round(
            expected_calibration_error(
                list(
                    zip(
                        np.minimum(shown, np.where(flags, model.no_match_cap, 1.0)).tolist(),
                        top_right.astype(bool).tolist(),
                        strict=True,
                    )
                ),
                top_w.tolist(),
            ),
            4,
        ),
    }
    return model


def _balanced_pool(near: np.ndarray, far: np.ndarray) -> np.ndarray:
    if not len(near) or not len(far):
        return near if len(near) else far
    repeat_near = max(1, round(len(far) / len(near)))
    repeat_far = max(1, round(len(near) / len(far)))
    return np.concatenate([np.repeat(near, repeat_near), np.repeat(far, repeat_far)])


def choose_high_cut(
    shown: np.ndarray, right: np.ndarray, weight: np.ndarray, flagged: np.ndarray
) -> tuple[float, dict]:
    """The lowest confidence from which top results count as "high": where those at or
    above it were right at least HIGH_PRECISION of the time, by a one-sided lower bound."""
    keep = ~flagged
    for cut in np.arange(MIN_HIGH_CUT, 1.0, 0.01):
        above = keep & (shown >= cut)
        n = int(above.sum())
        if n < MIN_HIGH_EVIDENCE:
            break
        share = float((weight[above] * right[above]).sum() / weight[above].sum())
        if wilson_lower(share, n) >= HIGH_PRECISION:
            return round(float(cut), 2), {
                "cut": round(float(cut), 2),
                "results": n,
                "right_share": round(share, 4),
            }
    return 1.01, {"cut": None, "note": "no confidence was right nine times in ten on the replay"}


def expected_calibration_error(
    rows: Sequence[tuple[float, bool]], weights: Sequence[float] | None = None, bins: int = 10
) -> float:
    """Mean |shown - right share| over equal-width bins of the shown value, weighted by size."""
    if not rows:
        return 0.0
    weights = list(weights) if weights is not None else [1.0] * len(rows)
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for (p, right), w in zip(rows, weights, strict=True):
        b = min(int(p * bins), bins - 1)
        sums[b][0] += w
        sums[b][1] += w * p
        sums[b][2] += w * (1.0 if right else 0.0)
    total = sum(s[0] for s in sums.values())
    return sum(abs(s[1] - s[2]) for s in sums.values()) / total if total else 0.0


def fit_trust(queries: Sequence[StreamQuery], scale: float) -> tuple[TrustProfile | None, dict]:
    """The store-wide maps, and one set per language with enough evidence of its own."""
    model = fit_model(queries)
    counts = Counter(q.kind for q in queries)
    if model is None:
        return None, {
            "note": f"too little evidence for a fitted confidence ({dict(counts)}); "
            "results show a band without a number"
        }
    models = {STORE_WIDE: model}
    languages = Counter(q.language for q in queries if q.kind == ANSWERABLE and q.language)
    near_languages = Counter(q.language for q in queries if q.kind == NEAR and q.language)
    enough = sorted(
        language
        for language, n in languages.items()
        if n >= MIN_LANGUAGE_ANSWERABLE and near_languages.get(language, 0) >= MIN_LANGUAGE_NEAR
    )
    # An English store needs no maps of its own beside the store-wide ones.
    if enough and enough != ["en"]:
        for language in enough:
            fitted = fit_model([q for q in queries if q.language == language or q.kind == FAR])
            if fitted is not None:
                models[language] = fitted
    info = {
        "stream": dict(counts),
        "languages": dict(languages),
        "models": {
            k: m.fitted | {"answer_cut": round(m.answer_cut, 4), "high_cut": m.high_cut}
            for k, m in models.items()
        },
    }
    return TrustProfile(scale, models), info


# --- the mixed stream from a replay --------------------------------------------------------


def held_out_candidates(
    cands: Candidates, state: SearchState, held: Callable[[DocKey], bool]
) -> Candidates:
    """A copy of ``cands`` without the chunks of the documents ``held`` names."""

    def keep(cid: int) -> bool:
        key = state.chunk_doc.get(cid)
        return key is None or not held(key)

    return Candidates(
        dense={c: s for c, s in cands.dense.items() if keep(c)},
        lexical={c: s for c, s in cands.lexical.items() if keep(c)},
    )


def without_class(class_logp: dict[str, float] | None, name: str) -> dict[str, float] | None:
    """The classifier's log-probabilities with one class held out, renormalised."""
    if not class_logp:
        return class_logp
    rest = {k: v for k, v in class_logp.items() if k != name}
    if not rest:
        return None
    top = max(rest.values())
    total = top + math.log(sum(math.exp(v - top) for v in rest.values()))
    return {k: v - total for k, v in rest.items()}


def stream_query(
    kind: str,
    language: str | None,
    groups: Sequence[GroupScore],
    cands: Candidates,
    evidence: Evidence,
    state: SearchState,
    scale: float,
    is_right: Callable[[GroupScore], bool],
) -> StreamQuery:
    results = []
    for position in range(min(POSITIONS, len(groups))):
        right = kind == ANSWERABLE and is_right(groups[position])
        results.append((result_features(groups, cands, evidence, position, scale, state), right))
    return StreamQuery(kind, language, answer_features(groups, cands, evidence, state), results)


def margin_scale(margins: Sequence[float]) -> float:
    """The typical lead of the top group over the second (the unit of the margin features)."""
    positive = [m for m in margins if m > 0]
    scale = float(np.median(positive)) if positive else 1.0
    return scale if scale > 1e-6 else 1.0


def collect_stream(
    state: SearchState,
    queries: Sequence[Any],
    *,
    rank: Callable[[Candidates, int, dict | None], list[GroupScore]],
    matches: Callable[[str, Any, SearchState], bool],
    languages: dict[DocKey, str | None],
    background: Sequence[tuple[int, Candidates, dict | None]],
    use_class: bool,
    rng,
) -> tuple[list[StreamQuery], float]:
    """The mixed stream of a replay (see the module docstring) and the margin scale.

    ``queries`` are search.calibration's replay queries (key, words, res_key, article,
    cands, class_logp); ``rank`` ranks candidates as the shipped profile does for a request
    of that many words; ``background`` holds each far off-topic request's (words,
    candidates, classifier log-probabilities).
    """
    ranked = []
    for q in queries:
        logp = q.class_logp if use_class else None
        ranked.append((q, logp, rank(q.cands, q.words, logp)))
    scale = margin_scale([g[0].score - g[1].score for _, _, g in ranked if len(g) > 1])
    stream = []
    for q, logp, groups in ranked:
        evidence = gather_evidence(q.cands, state, logp)
        stream.append(
            stream_query(
                ANSWERABLE,
                languages.get(q.key),
                groups,
                q.cands,
                evidence,
                state,
                scale,
                lambda g, q=q: matches(g.group, q, state),
            )
        )
    # New wordings: the same requests with their nearest siblings (the incidents of the same
    # resolution most like them) held out too. A store's own incidents have siblings filed
    # from the same template or by the same person; a new request rarely does.
    for q, _, _ in ranked:
        held = _held_resolution(q, state)
        siblings: dict[DocKey, float] = {}
        for cid, score in q.cands.dense.items():
            key = state.chunk_doc.get(cid)
            if key is not None and key[0] == "incident" and held(key):
                siblings[key] = max(score, siblings.get(key, -2.0))
        nearest = set(sorted(siblings, key=siblings.get, reverse=True)[:SIBLINGS_OUT])
        if len(siblings) - len(nearest) < 1 and not q.article:
            continue
        cands = held_out_candidates(q.cands, state, lambda key, nearest=nearest: key in nearest)
        logp = q.class_logp if use_class else None
        groups = rank(cands, q.words, logp)
        evidence = gather_evidence(cands, state, logp)
        stream.append(
            stream_query(
                ANSWERABLE,
                languages.get(q.key),
                groups,
                cands,
                evidence,
                state,
                scale,
                lambda g, q=q: matches(g.group, q, state),
            )
        )
    # Near-domain: whole resolutions held out, a few incidents of each, over many resolutions.
    by_answer: dict[str, list[Any]] = defaultdict(list)
    for q, _, _ in ranked:
        by_answer["a:" + q.article if q.article else q.res_key].append(q)
    names = sorted(by_answer)
    rng.shuffle(names)
    picked: list[tuple[str, Any]] = []
    for round_ in range(3):
        for name in names:
            if len(picked) < MAX_HELD_OUT and round_ < len(by_answer[name]):
                picked.append((name, by_answer[name][round_]))
    for name, q in picked:
        held = _held_resolution(q, state)
        cands = held_out_candidates(q.cands, state, held)
        logp = without_class(q.class_logp, name) if use_class else None
        groups = rank(cands, q.words, logp)
        evidence = gather_evidence(cands, state, logp)
        stream.append(
            stream_query(
                NEAR, languages.get(q.key), groups, cands, evidence, state, scale, lambda g: False
            )
        )
    for words, cands, logp in background:
        logp = logp if use_class else None
        groups = rank(cands, words, logp)
        evidence = gather_evidence(cands, state, logp)
        stream.append(
            stream_query(FAR, None, groups, cands, evidence, state, scale, lambda g: False)
        )
    return stream, scale


def _held_resolution(q: Any, state: SearchState) -> Callable[[DocKey], bool]:
    """Which documents belong to the query's known resolution."""

    def held(key: DocKey) -> bool:
        doc = state.docs.get(key)
        if doc is None:
            return False
        if q.article:
            return (key == ("article", q.article)) or (
                doc.kind == "incident" and doc.article_id == q.article
            )
        return doc.kind == "incident" and bool(doc.res_key) and doc.res_key == q.res_key

    return held
