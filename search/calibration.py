"""Fitting the ranking profile on the store's own resolved incidents.

Replay: a sample of resolved incidents is asked as new incidents, each with itself left
out of the index. An incident is usable when its resolution has other evidence in the
store (its article, or other incidents with the same resolution): the right answer is then
known. The replay chooses the fusion weights and vote temperature that put that answer
highest (mean reciprocal rank), and reads the no-good-match threshold and the confidence
map off the same replay. Nothing here looks at evaluation files.

Which identical resolution texts collapse into one result is decided first, from the
vectors: a group collapses when its members are clearly more alike than random incidents
(see ``COHESION_SHARE``). A generic note such as "Fixed" shared by unrelated incidents
stays split, so each of those incidents keeps its own place in the ranking.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from indexer.chunking import incident_text
from kb.store import Store
from search.profile import (
    DEFAULT_LEXICAL_WEIGHT,
    LENGTH_BUCKETS,
    NO_MATCH_QUANTILE,
    RankingProfile,
    length_bucket,
)
from search.ranking import Candidates, Viewer, document_scores, retrieve, vote
from search.state import DocKey, SearchState
from search.text import query_terms

# A resolution group collapses when its members' mean pairwise similarity rises above the
# background (random pairs) by at least this share of the gap between the background and
# a typical nearest-neighbour similarity.
COHESION_SHARE = 0.25
MAX_REPLAY_QUERIES = 600
MIN_QUERIES_TO_FIT = 30
MIN_QUERIES_PER_BUCKET = 40
WEIGHT_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)
TAU_GRID = (0.02, 0.035, 0.05, 0.08)


@dataclass
class ReplayQuery:
    key: DocKey
    words: int
    target: str
    cands: Candidates


def doc_chunks(state: SearchState) -> dict[DocKey, list[int]]:
    out: dict[DocKey, list[int]] = defaultdict(list)
    for cid, key in state.chunk_doc.items():
        out[key].append(cid)
    return out


def _unit_mean(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else mean


def _mean_pair_similarity(vectors: np.ndarray) -> float:
    n = len(vectors)
    if n < 2:
        return 1.0
    total = vectors.sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def incident_vectors(state: SearchState, chunks: dict[DocKey, list[int]]) -> dict[str, np.ndarray]:
    out = {}
    for key, cids in chunks.items():
        if key[0] != "incident":
            continue
        vectors = [v for v in (state.index.vector(c) for c in cids) if v is not None]
        if vectors:
            out[key[1]] = _unit_mean(np.vstack(vectors))
    return out


def decide_collapse(state: SearchState, vectors: dict[str, np.ndarray], rng: random.Random) -> tuple[list[str], dict]:
    """Resolution keys whose incidents are alike enough to be shown as one resolution."""
    members: dict[str, list[str]] = defaultdict(list)
    for (kind, doc_id), doc in state.docs.items():
        if kind == "incident" and doc.res_key and doc_id in vectors:
            members[doc.res_key].append(doc_id)
    shared = {k: v for k, v in members.items() if len(v) >= 2}
    ids = list(vectors)
    if len(ids) < 3 or not shared:
        return [], {"groups": 0}
    sample = rng.sample(ids, min(len(ids), 2000))
    matrix = np.vstack([vectors[i] for i in sample])
    background = _mean_pair_similarity(matrix)
    probe = matrix[: min(300, len(matrix))]
    with state.lock:
        scores, found = state.index.search(probe, 3)
    nearest = []
    for row, doc_id in enumerate(sample[: len(probe)]):
        for score, cid in zip(scores[row], found[row], strict=True):
            if cid >= 0 and state.chunk_doc.get(int(cid)) != ("incident", doc_id):
                nearest.append(float(score))
                break
    nn_typical = float(np.median(nearest)) if nearest else 1.0
    cut = background + COHESION_SHARE * max(nn_typical - background, 0.0)
    collapse = []
    for key, doc_ids in shared.items():
        cohesion = _mean_pair_similarity(np.vstack([vectors[i] for i in doc_ids]))
        if cohesion >= cut:
            collapse.append(key)
    info = {"groups": len(shared), "collapsed": len(collapse), "background": round(background, 4),
            "nearest_neighbour": round(nn_typical, 4), "cut": round(cut, 4)}
    return sorted(collapse), info


def replay_queries(
    store: Store, state: SearchState, chunks: dict[DocKey, list[int]], collapse: set[str],
    rng: random.Random, limit: int = MAX_REPLAY_QUERIES,
) -> list[ReplayQuery]:
    """Incidents whose right answer is known without them, retrieved with themselves left out."""
    viewer = Viewer()
    resolution_sizes = defaultdict(int)
    for doc in state.docs.values():
        if doc.kind == "incident" and doc.res_key:
            resolution_sizes[doc.res_key] += 1
    usable = []
    for key, doc in state.docs.items():
        if key[0] != "incident" or key not in chunks:
            continue
        article = state.docs.get(("article", doc.article_id)) if doc.article_id else None
        if article is not None and viewer.can_see(article):
            usable.append((key, "a:" + doc.article_id))
        elif doc.res_key in collapse and resolution_sizes[doc.res_key] >= 2:
            usable.append((key, doc.res_key))
    rng.shuffle(usable)
    usable = usable[:limit]
    texts = {i.id: incident_text(i.title, i.description)
             for i in store.iter_incidents([key[1] for key, _ in usable])}
    out = []
    for key, target in usable:
        text = texts.get(key[1], "")
        vectors = [v for v in (state.index.vector(c) for c in sorted(chunks[key])) if v is not None]
        if not text or not vectors:
            continue
        cands = retrieve(state, store, np.vstack(vectors), query_terms(text), exclude=key)
        out.append(ReplayQuery(key, len(text.split()), target, cands))
    return out


def _rank_of_target(query: ReplayQuery, state: SearchState, weight: float, tau: float,
                    depth: int, collapse: set[str], viewer: Viewer) -> tuple[int, list]:
    scores = document_scores(query.cands, state, weight, viewer.can_see)
    groups = vote(scores, state, tau=tau, depth=depth, collapse=collapse, viewer=viewer)
    for position, group in enumerate(groups, start=1):
        if group.group == query.target:
            return position, groups
    return 0, groups


def _mrr(queries, state, weight, tau, depth, collapse, viewer) -> float:
    total = 0.0
    for query in queries:
        rank, _ = _rank_of_target(query, state, weight, tau, depth, collapse, viewer)
        total += 1.0 / rank if rank else 0.0
    return total / max(len(queries), 1)


def fit_logistic(scores: np.ndarray, labels: np.ndarray, iterations: int = 200) -> tuple[float, float]:
    """P(label) = sigmoid(a * score + b), by Newton's method with a little L2 damping."""
    a, b = 1.0, 0.0
    x = np.vstack([scores, np.ones_like(scores)]).T
    w = np.array([a, b], dtype=np.float64)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - labels) + 1e-3 * w
        hessian = (x.T * (p * (1 - p))) @ x + 1e-3 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def fit_profile(store: Store, state: SearchState, *, seed: int = 13,
                max_queries: int = MAX_REPLAY_QUERIES) -> RankingProfile:
    """Fit every number of the ranking profile on the store (see the module docstring)."""
    began = time.monotonic()
    rng = random.Random(seed)
    profile = RankingProfile()
    chunks = doc_chunks(state)
    vectors = incident_vectors(state, chunks)
    collapse_list, collapse_info = decide_collapse(state, vectors, rng)
    profile.collapse = collapse_list
    collapse = set(collapse_list)
    queries = replay_queries(store, state, chunks, collapse, rng, max_queries)
    profile.fitted = {"collapse": collapse_info, "replay_queries": len(queries)}
    if len(queries) < MIN_QUERIES_TO_FIT:
        profile.source = "default"
        profile.fitted["note"] = (
            f"{len(queries)} replayable incidents (need {MIN_QUERIES_TO_FIT}); defaults kept"
        )
        return profile
    viewer = Viewer()
    depth = profile.vote_depth
    best = max(
        ((w, tau) for tau in TAU_GRID for w in WEIGHT_GRID),
        key=lambda wt: (round(_mrr(queries, state, wt[0], wt[1], depth, collapse, viewer), 4), -wt[0]),
    )
    profile.vote_tau = best[1]
    weights = dict(DEFAULT_LEXICAL_WEIGHT)
    by_bucket: dict[str, list[ReplayQuery]] = defaultdict(list)
    for query in queries:
        by_bucket[length_bucket(query.words)].append(query)
    fitted_buckets = {}
    for name, _, _ in LENGTH_BUCKETS:
        bucket = by_bucket.get(name, [])
        if len(bucket) >= MIN_QUERIES_PER_BUCKET:
            weights[name] = max(
                WEIGHT_GRID,
                key=lambda w: (round(_mrr(bucket, state, w, best[1], depth, collapse, viewer), 4), -w),
            )
            fitted_buckets[name] = len(bucket)
        elif fitted_buckets or name != "short":
            # No data for this length: never weigh words less than for shorter queries.
            weights[name] = max([weights[name], *(weights[b] for b in fitted_buckets)])
    profile.lexical_weight = weights
    # Threshold and confidence map from the replay under the chosen numbers.
    top_scores, pairs = [], []
    ranks = []
    for query in queries:
        rank, groups = _rank_of_target(
            query, state, profile.weight_for(query.words), profile.vote_tau, depth, collapse, viewer
        )
        ranks.append(rank)
        if groups:
            top_scores.append(groups[0].score)
        for position, group in enumerate(groups[:3], start=1):
            pairs.append((group.score, 1.0 if position == rank else 0.0))
    if top_scores:
        profile.threshold = float(np.quantile(np.array(top_scores), NO_MATCH_QUANTILE))
    if pairs:
        scores = np.array([p[0] for p in pairs])
        labels = np.array([p[1] for p in pairs])
        if 0 < labels.sum() < len(labels):
            profile.calib_a, profile.calib_b = fit_logistic(scores, labels)
    profile.source = "fitted"
    n = len(ranks)
    profile.fitted.update(
        {
            "buckets": fitted_buckets,
            "replay_accuracy_at_1": round(sum(r == 1 for r in ranks) / n, 4),
            "replay_mrr": round(sum(1 / r for r in ranks if r) / n, 4),
            "seconds": round(time.monotonic() - began, 2),
        }
    )
    return profile
