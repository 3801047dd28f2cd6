"""The ranking profile: every number the ranking uses, fitted on the store's own data.

After each ``kb index`` the service replays a sample of its own resolved incidents as
queries (each one left out of the index while it is asked) and chooses, from that replay:

- the weight of lexical (BM25) evidence for short, medium and long queries;
- how strongly neighbours of one resolution add up (the vote temperature);
- the "no good match" threshold: the score below which only a small, stated share of
  in-scope replayed queries fall (see ``NO_MATCH_QUANTILE``);
- a logistic map from score to the probability that the resolution is the right one.

Where the store is too small to replay, the defaults below apply. They are deliberately
conservative: dense similarity leads, lexical evidence grows with query length (long
technical reports share rare identifiers that embeddings blur), and the threshold sits
below the similarity that unrelated texts reach with this kind of model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LENGTH_BUCKETS = (("short", 0, 20), ("medium", 20, 80), ("long", 80, 10**9))
DEFAULT_LEXICAL_WEIGHT = {"short": 0.1, "medium": 0.2, "long": 0.35}
DEFAULT_VOTE_TAU = 0.05
DEFAULT_THRESHOLD = 0.45
# Share of in-scope replayed queries the threshold is allowed to flag as "no good match".
NO_MATCH_QUANTILE = 0.03
DEFAULT_MATCH_THRESHOLD = 0.4
# Before a store has replay evidence: confidence from the best similarity alone, fitted on
# the development split of long bug reports (where a top result at similarity 0.7-0.8 was
# right about half the time).
DEFAULT_CONFIDENCE = [12.4, 0.0, -8.9]


def length_bucket(words: int) -> str:
    for name, low, high in LENGTH_BUCKETS:
        if low <= words < high:
            return name
    return "long"


def default_blends() -> dict[str, dict]:
    """Without replay evidence: short requests rank by embeddings plus a little BM25 (0.1;
    on short requests RRF can lose ten points, and on a free-text desk of short requests
    this beat embeddings alone by a point at accuracy@1); medium and long reports rank by
    reciprocal rank fusion, which keeps rare identifiers (error codes, class names) that the
    embedding of a text blurs. A fused weight fitted on one split of bug reports fell below
    plain fusion on other bug trackers (recall@10 0.746 vs 0.794)."""
    return {
        "short": {
            "kind": "fused",
            "weight": DEFAULT_LEXICAL_WEIGHT["short"],
            "tau": DEFAULT_VOTE_TAU,
        },
        "medium": {
            "kind": "rrf",
            "weight": DEFAULT_LEXICAL_WEIGHT["medium"],
            "tau": DEFAULT_VOTE_TAU,
        },
        "long": {"kind": "rrf", "weight": DEFAULT_LEXICAL_WEIGHT["long"], "tau": DEFAULT_VOTE_TAU},
    }


@dataclass
class RankingProfile:
    lexical_weight: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LEXICAL_WEIGHT))
    vote_tau: float = DEFAULT_VOTE_TAU
    vote_depth: int = 30
    threshold: float = DEFAULT_THRESHOLD
    # P(right) = 1 / (1 + exp(-(calib_a * score + calib_b)))
    calib_a: float = 12.0
    calib_b: float = -7.5
    collapse: list[str] = field(default_factory=list)
    feedback_weight: float = 0.05
    source: str = "default"
    fitted: dict[str, Any] = field(default_factory=dict)
    # Per query-length bucket: how that kind of query is ranked (search.ranking.Blend).
    blends: dict[str, dict] = field(default_factory=default_blends)
    # "No good match" when the best dense similarity of any candidate is below this.
    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    # P(right) = sigmoid(c0 * similarity + c1 * margin + c2), per bucket (see calibration).
    confidence_map: dict[str, list[float]] = field(default_factory=dict)
    classifier: dict[str, Any] | None = None
    # Per triage field: its model, its mix with the neighbours' vote, the calibration map and
    # the not-sure threshold, or why it has none (search.triage.fit_triage).
    triage: dict[str, Any] = field(default_factory=dict)
    # Confidence and "no good match" fitted on a mixed stream (search.confidence); None where
    # the store's replay was too small: results then show a band without a number.
    trust: dict[str, Any] | None = None
    # Resolution families found at kb index (search.families.Families.to_dict()).
    families: dict[str, Any] = field(default_factory=dict)

    def blend_for(self, words: int) -> dict:
        bucket = length_bucket(words)
        return self.blends.get(bucket) or default_blends()[bucket]

    def confidence_for(self, words: int) -> list[float]:
        return self.confidence_map.get(length_bucket(words)) or DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """What this profile chose and why, without its fitted weights (for kb index)."""
        fitted = self.fitted
        return {
            "source": self.source,
            "replay_queries": fitted.get("replay_queries", 0),
            "near_copies_left_out": fitted.get("near_copies_left_out", 0),
            "chosen": fitted.get("chosen", {}),
            "replay_accuracy_at_1": fitted.get("replay_accuracy_at_1"),
            "replay_mrr": fitted.get("replay_mrr"),
            "candidates": fitted.get("candidates", []),
            "classifier": fitted.get("classifier"),
            "no_good_match": {
                "similarity_below": round(self.match_threshold, 4),
                **fitted.get("no_match", {}),
            },
            "triage": fitted.get("triage", {}),
            "trust": fitted.get("trust", {}),
            "families": self.family_summary(),
            "note": fitted.get("note", ""),
        }

    def family_summary(self) -> dict[str, Any]:
        """Counts of the resolution families and every family, largest first (without
        their incident lists)."""
        info = (self.families or {}).get("info") or {}
        ranked = sorted(info.items(), key=lambda item: (-item[1].get("size", 0), item[0]))
        return {
            **((self.families or {}).get("summary") or {}),
            "examples": [{"family": fid, **facts} for fid, facts in ranked],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RankingProfile:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        profile = cls(**known)
        merged = dict(DEFAULT_LEXICAL_WEIGHT)
        merged.update(profile.lexical_weight)
        profile.lexical_weight = merged
        if "blends" not in data:  # a profile saved before blends existed: its fused numbers
            profile.blends = {
                name: {"kind": "fused", "weight": merged[name], "tau": profile.vote_tau}
                for name, _, _ in LENGTH_BUCKETS
            }
        if "match_threshold" not in data:
            profile.match_threshold = DEFAULT_MATCH_THRESHOLD
        return profile
