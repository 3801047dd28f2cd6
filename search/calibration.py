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

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kb
from indexer.chunking import incident_text
from kb.lexical import identifier_phrases, query_terms
from kb.store import Store
from kb.text import normalise_text
from search.classifier import (
    MAX_TRAINING_INCIDENTS,
    MIN_CLASS_SIZE,
    ResolutionClassifier,
    content_stems,
    train_classifier,
)
from search.families import Families, find_families, store_notes
from search.logistic import fit_logistic
from search.profile import (
    DEFAULT_CONFIDENCE,
    DEFAULT_LEXICAL_WEIGHT,
    DEFAULT_MATCH_THRESHOLD,
    LENGTH_BUCKETS,
    RankingProfile,
    length_bucket,
)
from search.ranking import (
    Blend,
    Candidates,
    GroupScore,
    Viewer,
    confidence_features,
    rank_groups,
    retrieve,
)
from search.state import DocKey, SearchState
from search.steps import family_steps
from search.triage import fit_triage
from search.trust_replay import fit_trust_maps

# A resolution group collapses when its members' mean pairwise similarity rises above the
# background (random pairs) by at least this share of the gap between the background and
# a typical nearest-neighbour similarity.
COHESION_SHARE = 0.25
# Members of one group whose vectors measure its cohesion (a sample of larger groups).
COHESION_SAMPLE = 2_000
MAX_REPLAY_QUERIES = 600
MIN_QUERIES_TO_FIT = 30
# The replay chooses the ranking only when the incidents it can ask (those whose answer is
# known: an article, a shared resolution, a family) are at least this share of the store's
# incidents; a replay of a few canned replies measures the wrong population.
MIN_REPLAY_COVERAGE = 0.1
MIN_QUERIES_PER_BUCKET = 100
# A length bucket ranks its own way only when that beats the store-wide choice on it by this
# much (accuracy@1 + MRR): small differences on a few dozen queries are noise.
BUCKET_MARGIN = 0.02
# ... and a fused or classifier ranking replaces the best reference ranking only by this much.
REFERENCE_MARGIN = 0.01
WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.6)
TAU_GRID = (0.02, 0.05, 0.1, 0.2)
CLASSIFIER_GRID = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
CLASSIFIER_FOLDS = 4
# Training incidents x classes the classifier may cost (77 classes x 8,000 incidents: 2.5 s a fit).
CLASSIFIER_BUDGET = 3_000_000
# A stored incident at least this similar to a replayed one is a near-copy of it.
COPY_SIMILARITY = 0.98
# Share of answerable (in-scope) incidents the no-good-match threshold may flag.
MAX_FLAGGED_SHARE = 0.02
BALANCE_MARGIN = 0.01
# Fewer in-scope scores than this cannot place a 2% quantile: the default threshold stays.
MIN_THRESHOLD_EVIDENCE = 50
BACKGROUND_FILE = Path(kb.__file__).parent / "data" / "background_requests.jsonl"


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


class IncidentVectors(Mapping):
    """Each incident's vector (the unit mean of its chunks' vectors), read back from the
    index when asked for and never held for the whole store: a million incidents' vectors
    would take 1.5 GB beside the index being published. A ``Mapping[str, ndarray]`` of the
    incidents that have at least one vector in the index."""

    def __init__(self, state: SearchState, chunks: dict[DocKey, list[int]]):
        self._state = state
        self._chunks = chunks

    def _rows(self, doc_id: str) -> list[np.ndarray]:
        cids = self._chunks.get(("incident", doc_id), ())
        return [v for v in (self._state.index.vector(c) for c in cids) if v is not None]

    def __getitem__(self, doc_id: str) -> np.ndarray:
        rows = self._rows(doc_id)
        if not rows:
            raise KeyError(doc_id)
        return _unit_mean(np.vstack(rows))

    def __contains__(self, doc_id: object) -> bool:
        cids = self._chunks.get(("incident", doc_id), ()) if isinstance(doc_id, str) else ()
        return any(self._state.index.contains(c) for c in cids)

    def __iter__(self) -> Iterator[str]:
        return (key[1] for key in self._chunks if key[0] == "incident" and key[1] in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def matrix(self, ids: Sequence[str]) -> np.ndarray:
        """The vectors of ``ids`` (each of which must be in the mapping), one row each."""
        out = np.zeros((len(ids), self._state.index.dimension), dtype=np.float32)
        for row, doc_id in enumerate(ids):
            out[row] = self[doc_id]
        return out


def incident_vectors(state: SearchState, chunks: dict[DocKey, list[int]]) -> IncidentVectors:
    return IncidentVectors(state, chunks)


def decide_collapse(
    state: SearchState, vectors: IncidentVectors, rng: random.Random
) -> tuple[list[str], dict]:
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
    matrix = vectors.matrix(sample)
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
        # The mean pairwise similarity of a random sample estimates the group's without bias.
        members = (
            doc_ids if len(doc_ids) <= COHESION_SAMPLE else rng.sample(doc_ids, COHESION_SAMPLE)
        )
        cohesion = _mean_pair_similarity(vectors.matrix(members))
        if cohesion >= cut:
            collapse.append(key)
    info = {
        "groups": len(shared),
        "collapsed": len(collapse),
        "background": round(background, 4),
        "nearest_neighbour": round(nn_typical, 4),
        "cut": round(cut, 4),
    }
    return sorted(collapse), info


@dataclass
class ReplayQuery:
    key: DocKey
    words: int
    res_key: str
    article: str
    cands: Candidates
    vector: np.ndarray
    stems: list[str]
    best_similarity: float
    copies: set[DocKey]
    fold: int = 0
    class_logp: dict[str, float] | None = None


@dataclass
class Config:
    collapse: str  # "cohesive" or "shared"
    blend: Blend

    @property
    def name(self) -> str:
        return f"{self.blend.describe()} ({self.collapse} groups)"


def shared_resolutions(state: SearchState) -> dict[str, list[str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for (kind, doc_id), doc in state.docs.items():
        if kind == "incident" and doc.res_key:
            members[doc.res_key].append(doc_id)
    return {k: v for k, v in members.items() if len(v) >= 2}


def drop_copies(cands: Candidates, state: SearchState) -> set[DocKey]:
    """Remove near-copies of the query (the same text filed twice, a template) from its
    candidates; returns the documents removed. A replay that kept them would measure how
    well the store finds copies, not how well it answers a new incident."""
    copies = {
        state.chunk_doc[c]
        for c, s in cands.dense.items()
        if s >= COPY_SIMILARITY and c in state.chunk_doc
    }
    if copies:
        for table in (cands.dense, cands.lexical):
            for cid in [c for c in table if state.chunk_doc.get(c) in copies]:
                del table[cid]
    return copies


def add_steps(state: SearchState, families: Families) -> None:
    """Each family's suggested steps (search.steps), kept with the family."""
    notes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (kind, doc_id), doc in state.docs.items():
        family = families.key_of.get(doc.res_key) if kind == "incident" else None
        if family:
            notes[family].append((doc_id, doc.resolution))
    for family, steps in family_steps(notes).items():
        families.info[family]["steps"] = steps


def replayable_share(
    state: SearchState, chunks: dict[DocKey, list[int]], shared: dict[str, list[str]]
) -> float:
    """Share of the store's indexed incidents whose right answer the replay knows."""
    viewer = Viewer()
    total = usable = 0
    for key, doc in state.docs.items():
        if key[0] != "incident" or key not in chunks:
            continue
        total += 1
        article = state.docs.get(("article", doc.article_id)) if doc.article_id else None
        usable += (article is not None and viewer.can_see(article)) or doc.res_key in shared
    return usable / total if total else 0.0


def replay_queries(
    store: Store,
    state: SearchState,
    chunks: dict[DocKey, list[int]],
    vectors: Mapping[str, np.ndarray],
    shared: dict[str, list[str]],
    rng: random.Random,
    limit: int = MAX_REPLAY_QUERIES,
) -> list[ReplayQuery]:
    """Incidents whose right answer is known without them (an article, or other incidents
    with the same resolution), asked with themselves and their near-copies left out."""
    viewer = Viewer()
    usable = []
    for key, doc in state.docs.items():
        if key[0] != "incident" or key not in chunks or key[1] not in vectors:
            continue
        article = state.docs.get(("article", doc.article_id)) if doc.article_id else None
        if article is not None and viewer.can_see(article):
            usable.append((key, doc.article_id))
        elif doc.res_key in shared:
            usable.append((key, ""))
    usable.sort()
    rng.shuffle(usable)
    usable = usable[:limit]
    texts = {
        i.id: normalise_text(incident_text(i.title, i.description))
        for i in store.iter_incidents([key[1] for key, _ in usable])
    }
    out = []
    for number, (key, article) in enumerate(usable):
        text = texts.get(key[1], "")
        rows = [v for v in (state.index.vector(c) for c in sorted(chunks[key])) if v is not None]
        if not text or not rows:
            continue
        cands = retrieve(
            state,
            store,
            np.vstack(rows),
            query_terms(text),
            exclude=key,
            phrases=identifier_phrases(text),
        )
        copies = drop_copies(cands, state)
        best = max(cands.dense.values(), default=0.0)
        out.append(
            ReplayQuery(
                key,
                len(text.split()),
                state.docs[key].res_key,
                article,
                cands,
                vectors[key[1]],
                content_stems(text),
                best,
                copies,
                number % CLASSIFIER_FOLDS,
            )
        )
    return out


def matches(group: str, query: ReplayQuery, state: SearchState) -> bool:
    """Whether a result group gives the query's known resolution (as kb eval judges it)."""
    if group.startswith("a:"):
        return bool(query.article) and group[2:] == query.article
    if query.article:
        return False
    if group.startswith("i:"):
        doc = state.docs.get(("incident", group[2:]))
        return doc is not None and doc.res_key == query.res_key
    return group == query.res_key


def ranked(
    query: ReplayQuery,
    state: SearchState,
    config: Config,
    collapse: set[str],
    depth: int,
    leads: dict[str, DocKey] | None,
) -> list[GroupScore]:
    viewer = Viewer()
    return rank_groups(
        query.cands,
        state,
        config.blend,
        depth=depth,
        collapse=collapse,
        viewer=viewer,
        accept=viewer.can_see,
        class_logp=query.class_logp,
        class_leads=leads,
    )


def first_match(groups: list[GroupScore], query: ReplayQuery, state: SearchState) -> int:
    for position, group in enumerate(groups, start=1):
        if matches(group.group, query, state):
            return position
    return 0


def quality(ranks: list[int]) -> tuple[float, float]:
    n = max(len(ranks), 1)
    return sum(r == 1 for r in ranks) / n, sum(1 / r for r in ranks if r) / n


def objective(ranks: list[int]) -> float:
    acc, mrr = quality(ranks)
    return round(acc + mrr, 4)


# --- the store's resolution classifier ---------------------------------------------------


def classifier_labels(state: SearchState, shared: dict[str, list[str]]) -> dict[str, str]:
    """incident id -> its group, for incidents of groups large enough to learn."""
    viewer = Viewer()
    labels = {}
    for (kind, doc_id), doc in state.docs.items():
        if kind != "incident":
            continue
        article = state.docs.get(("article", doc.article_id)) if doc.article_id else None
        if article is not None and viewer.can_see(article):
            labels[doc_id] = "a:" + doc.article_id
        elif doc.res_key in shared and len(shared[doc.res_key]) >= MIN_CLASS_SIZE:
            labels[doc_id] = doc.res_key
    sizes = Counter(labels.values())
    return {i: g for i, g in labels.items() if sizes[g] >= MIN_CLASS_SIZE}


def class_leads(labels: dict[str, str], vectors: dict[str, np.ndarray]) -> dict[str, str]:
    """The incident nearest each group's mean: what stands for the group when the
    classifier names it but no incident of it was retrieved."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for doc_id, group in labels.items():
        by_group[group].append(doc_id)
    leads = {}
    for group, ids in by_group.items():
        matrix = np.vstack([vectors[i] for i in ids])
        centre = _unit_mean(matrix)
        leads[group] = ids[int(np.argmax(matrix @ centre))]
    return leads


def fit_classifier(
    store: Store,
    state: SearchState,
    labels: dict[str, str],
    vectors: IncidentVectors,
    queries: list[ReplayQuery],
    rng: random.Random,
) -> tuple[ResolutionClassifier | None, dict]:
    """Train on the store's labelled incidents; cross-fit so that each replay query is
    scored by a model trained without it and its near-copies."""
    ids = sorted(i for i in labels if i in vectors)
    # Training cost grows with incidents x classes: a store with hundreds of resolutions
    # trains on a sample, so that kb index stays within a minute or two.
    limit = min(MAX_TRAINING_INCIDENTS, CLASSIFIER_BUDGET // max(len(set(labels.values())), 1))
    if len(ids) > limit:
        ids = sorted(rng.sample(ids, limit))
    stems_of = {
        i.id: content_stems(normalise_text(incident_text(i.title, i.description)))
        for i in store.iter_incidents(ids)
    }
    ids = [i for i in ids if i in stems_of]
    vectors = dict(zip(ids, vectors.matrix(ids), strict=True))  # read once, used by every fold
    leads = class_leads({i: labels[i] for i in ids}, vectors)
    began = time.monotonic()

    def train(keep: list[str]) -> ResolutionClassifier | None:
        return train_classifier(
            np.vstack([vectors[i] for i in keep]),
            [stems_of[i] for i in keep],
            [labels[i] for i in keep],
            leads,
        )

    for fold in range(CLASSIFIER_FOLDS):
        in_fold = [q for q in queries if q.fold == fold]
        left_out = {q.key[1] for q in in_fold}
        for q in in_fold:
            left_out.update(k[1] for k in q.copies if k[0] == "incident")
        model = train([i for i in ids if i not in left_out])
        if model is None:
            return None, {}
        for q in in_fold:
            logp = model.log_proba(q.vector, q.stems)
            q.class_logp = dict(zip(model.classes, logp.tolist(), strict=True))
    model = train(ids)
    info = {
        "classes": len(model.classes) if model else 0,
        "trained_on": len(ids),
        "seconds": round(time.monotonic() - began, 2),
    }
    return model, info


# --- "no good match" and confidence ------------------------------------------------------


def background_texts() -> list[str]:
    """Requests from everyday domains that no support desk's store answers: the negatives
    against which the no-good-match threshold is placed."""
    if not BACKGROUND_FILE.is_file():
        return []
    out = []
    for line in BACKGROUND_FILE.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            out.append(json.loads(line)["text"])
    return out


def best_similarities(state: SearchState, vectors: np.ndarray) -> np.ndarray:
    if not len(vectors) or not len(state.index):
        return np.zeros(len(vectors))
    with state.lock:
        scores, ids = state.index.search(vectors.astype(np.float32), 1)
    return np.where(ids[:, 0] >= 0, scores[:, 0], 0.0)


def neighbour_similarities(
    state: SearchState, vectors: Mapping[str, np.ndarray], rng: random.Random
) -> list[float]:
    """Each sampled incident's best similarity to another, not a near-copy: what an
    answerable incident scores on a store without replay evidence."""
    ids = sorted(vectors)
    sample = rng.sample(ids, min(len(ids), 400))
    if not sample:
        return []
    with state.lock:
        scores, found = state.index.search(np.vstack([vectors[i] for i in sample]), 8)
    out = []
    for row, doc_id in enumerate(sample):
        for score, cid in zip(scores[row], found[row], strict=True):
            key = state.chunk_doc.get(int(cid))
            if cid >= 0 and key != ("incident", doc_id) and score < COPY_SIMILARITY:
                out.append(float(score))
                break
    return out


def choose_threshold(in_scope: list[float], background: list[float]) -> tuple[float, dict]:
    """The similarity below which a query is flagged "no good match".

    The MAX_FLAGGED_SHARE quantile of the in-scope scores: the false-alarm rate aimed at,
    which catches the most off-topic requests that rate allows. Off-topic background
    requests check it: where a lower threshold would separate them from the in-scope scores
    clearly better (balanced accuracy higher by BALANCE_MARGIN), the threshold moves down to
    the highest such value; it never moves up. Without background requests: the quantile.
    """
    if len(in_scope) < MIN_THRESHOLD_EVIDENCE:
        return DEFAULT_MATCH_THRESHOLD, {
            "note": f"{len(in_scope)} in-scope scores (need {MIN_THRESHOLD_EVIDENCE}); default kept"
        }
    inside = np.sort(np.array(in_scope))
    limit = float(np.quantile(inside, MAX_FLAGGED_SHARE))
    if not background:
        return limit, {"in_scope": len(inside), "aim_flagged_in_scope": MAX_FLAGGED_SHARE}
    outside = np.sort(np.array(background))
    grid = np.unique(np.concatenate([inside, outside, [limit]]))
    grid = grid[grid <= limit + 1e-9]

    def balanced(t: float) -> float:
        flagged_out = np.searchsorted(outside, t, side="left") / len(outside)
        kept_in = 1.0 - np.searchsorted(inside, t, side="left") / len(inside)
        return 0.5 * (flagged_out + kept_in)

    scores = np.array([balanced(t) for t in grid])
    best = float(scores.max())
    # At the aimed false-alarm rate unless the background says a lower threshold separates
    # clearly better (by BALANCE_MARGIN); then the highest of the best.
    threshold = (
        limit
        if balanced(limit) >= best - BALANCE_MARGIN
        else float(grid[scores >= best - 1e-12][-1])
    )
    info = {
        "in_scope": len(inside),
        "background": len(outside),
        "aim_flagged_in_scope": MAX_FLAGGED_SHARE,
        "flagged_in_scope": round(float(np.mean(inside < threshold)), 4),
        "flagged_background": round(float(np.mean(outside < threshold)), 4),
    }
    return float(threshold), info


def fit_confidence(rows: list[tuple[list[GroupScore], ReplayQuery, int]]) -> list[float]:
    """Logistic map from (similarity, margin) to P(right), fitted on replayed top results."""
    gaps = [g[0].score - g[1].score for g, _, _ in rows if len(g) > 1]
    scale = float(np.median(gaps)) if gaps and np.median(gaps) > 1e-6 else 1.0
    features, labels = [], []
    for groups, query, rank in rows:
        # Fitted on the top result, the one whose confidence an agent reads first; lower
        # results get the same map (their similarity and lead are smaller).
        features.append(confidence_features(groups, query.cands, 0, scale) + [1.0])
        labels.append(1.0 if rank == 1 else 0.0)
    x, y = np.array(features), np.array(labels)
    if not len(y) or not 0 < y.sum() < len(y):
        return list(DEFAULT_CONFIDENCE) + [1.0]
    w = fit_logistic(x, y)
    return [float(w[0]), float(w[1]), float(w[2]), scale]


# --- fitting -----------------------------------------------------------------------------


def candidate_configs(same_collapse: bool) -> list[Config]:
    """The reference rankings and the fused grid, under each way of grouping."""
    configs = []
    for collapse in ("shared",) if same_collapse else ("cohesive", "shared"):
        configs += [Config(collapse, Blend(kind)) for kind in ("dense", "rrf", "bm25")]
        configs += [
            Config(collapse, Blend("fused", w, tau)) for tau in TAU_GRID for w in WEIGHT_GRID
        ]
    return configs


def classifier_configs(base: Blend) -> list[Config]:
    """The best fused blend with the classifier mixed in at each weight."""
    return [Config("shared", Blend(base.kind, base.weight, base.tau, c)) for c in CLASSIFIER_GRID]


def fit_profile(
    store: Store,
    state: SearchState,
    *,
    seed: int = 13,
    max_queries: int = MAX_REPLAY_QUERIES,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> RankingProfile:
    """Fit every number of the ranking profile on the store (see the module docstring)."""
    began = time.monotonic()
    rng = random.Random(seed)
    profile = RankingProfile()
    chunks = doc_chunks(state)
    vectors = incident_vectors(state, chunks)
    viewer = Viewer()
    families = find_families(store_notes(state, viewer.can_see), vectors, seed=seed)
    add_steps(state, families)
    state.use_families(store, families.to_dict())
    profile.families = families.to_dict()
    cohesive_list, collapse_info = decide_collapse(state, vectors, rng)
    shared = shared_resolutions(state)
    collapses = {"cohesive": set(cohesive_list), "shared": set(shared)}
    # Families group results but are not replay answers: small families of one fix judge
    # a sibling family's right answer wrong, and a replay of family members only asks the
    # incidents that have close neighbours (see docs/families.md).
    evidence = {k: v for k, v in shared.items() if not k.startswith("f:")}
    queries = replay_queries(store, state, chunks, vectors, evidence, rng, max_queries)
    profile.fitted = {
        "collapse": collapse_info,
        "replay_queries": len(queries),
        "near_copies_left_out": sum(len(q.copies) for q in queries),
    }
    profile.triage, profile.fitted["triage"] = fit_triage(
        state, vectors, np.random.default_rng(seed), store
    )
    background = background_texts()
    background_vectors = embed(background) if embed and background else None
    background_scores = (
        best_similarities(state, background_vectors).tolist()
        if background_vectors is not None
        else []
    )
    answerable = replayable_share(state, chunks, evidence)
    profile.fitted["replay_coverage"] = round(answerable, 4)
    if len(queries) < MIN_QUERIES_TO_FIT or answerable < MIN_REPLAY_COVERAGE:
        profile.source = "default"
        profile.collapse = cohesive_list
        profile.fitted["note"] = (
            f"{len(queries)} replayable incidents (need {MIN_QUERIES_TO_FIT}); defaults kept"
            if len(queries) < MIN_QUERIES_TO_FIT
            else f"the replayable incidents are {answerable:.1%} of the store (need {MIN_REPLAY_COVERAGE:.0%}); defaults kept"
        )
        in_scope = neighbour_similarities(state, vectors, rng)
        profile.match_threshold, profile.fitted["no_match"] = choose_threshold(
            in_scope, background_scores
        )
        profile.fitted["no_match"]["in_scope_evidence"] = "nearest other incident"
        profile.threshold = profile.match_threshold
        return profile
    depth = profile.vote_depth
    labels = classifier_labels(state, evidence)
    model, leads = None, None
    if len(set(labels.values())) >= 2 and len(labels) >= 100:
        model, profile.fitted["classifier"] = fit_classifier(
            store, state, labels, vectors, queries, rng
        )
        if model is not None:
            leads = model.lead_keys()

    def ranks_of(config: Config, subset: list[ReplayQuery]) -> list[int]:
        collapse = collapses[config.collapse]
        return [
            first_match(ranked(q, state, config, collapse, depth, leads), q, state) for q in subset
        ]

    same = collapses["cohesive"] == collapses["shared"]
    configs = candidate_configs(same)
    results = {c.name: (c, ranks_of(c, queries)) for c in configs}
    if model is not None:
        fused = [
            r for r in results.values() if r[0].collapse == "shared" and r[0].blend.kind == "fused"
        ]
        base = max(fused, key=lambda r: objective(r[1]))[0].blend
        for config in classifier_configs(base):
            results[config.name] = (config, ranks_of(config, queries))
    best_config, _ = max(results.values(), key=lambda r: (objective(r[1]), -len(r[0].name)))
    # A reference ranking (embeddings, RRF, BM25) serves unless another candidate beats the
    # best of them clearly: a replay of a few hundred incidents cannot tell a near-tie apart.
    references = [r for r in results.values() if r[0].blend.kind != "fused"]
    best_reference = max(references, key=lambda r: objective(r[1]))
    if objective(results[best_config.name][1]) < objective(best_reference[1]) + REFERENCE_MARGIN:
        best_config = best_reference[0]
    collapse_name = best_config.collapse
    profile.collapse = sorted(collapses[collapse_name])
    index_of = {q.key: i for i, q in enumerate(queries)}
    chosen: dict[str, Config] = {}
    buckets: dict[str, list[ReplayQuery]] = defaultdict(list)
    for q in queries:
        buckets[length_bucket(q.words)].append(q)
    for name, _, _ in LENGTH_BUCKETS:
        bucket = buckets.get(name, [])
        chosen[name] = best_config
        if len(bucket) >= MIN_QUERIES_PER_BUCKET:
            same_collapse = [r for r in results.values() if r[0].collapse == collapse_name]

            def on_bucket(ranks: list[int], bucket=bucket) -> float:
                return objective([ranks[index_of[q.key]] for q in bucket])

            top = max(same_collapse, key=lambda r: (on_bucket(r[1]), r[0] is best_config))
            if on_bucket(top[1]) >= on_bucket(results[best_config.name][1]) + BUCKET_MARGIN:
                chosen[name] = top[0]
    profile.blends = {name: c.blend.to_dict() for name, c in chosen.items()}
    profile.lexical_weight = {
        name: c.blend.weight if c.blend.kind == "fused" else DEFAULT_LEXICAL_WEIGHT[name]
        for name, c in chosen.items()
    }
    profile.vote_tau = best_config.blend.tau
    if model is not None and any(c.blend.classifier > 0 for c in chosen.values()):
        profile.classifier = model.to_dict()
    # No good match: the best similarity of honest in-scope replays against the background.
    profile.match_threshold, profile.fitted["no_match"] = choose_threshold(
        [q.best_similarity for q in queries], background_scores
    )
    profile.fitted["no_match"]["in_scope_evidence"] = "replayed incidents"
    profile.threshold = profile.match_threshold
    # Confidence per bucket, under the chosen blend.
    final_ranks = []
    rows_by_bucket: dict[str, list] = defaultdict(list)
    for q in queries:
        bucket = length_bucket(q.words)
        config = chosen[bucket]
        groups = ranked(q, state, config, collapses[collapse_name], depth, leads)
        rank = first_match(groups, q, state)
        final_ranks.append(rank)
        if groups:
            rows_by_bucket[bucket].append((groups, q, rank))
    every = [row for rows in rows_by_bucket.values() for row in rows]
    overall = fit_confidence(every)
    profile.confidence_map = {
        name: fit_confidence(rows_by_bucket[name])
        if len(rows_by_bucket.get(name, [])) >= MIN_QUERIES_PER_BUCKET
        else overall
        for name, _, _ in LENGTH_BUCKETS
    }
    profile.trust, profile.fitted["trust"] = fit_trust_maps(
        store,
        state,
        queries,
        chosen,
        collapses[collapse_name],
        depth,
        leads,
        model if profile.classifier else None,
        background,
        background_vectors,
        rng,
    )
    profile.source = "fitted"
    table = sorted(((objective(r), c.name, *quality(r)) for c, r in results.values()), reverse=True)
    acc, mrr = quality(final_ranks)
    profile.fitted.update(
        {
            "buckets": {name: len(b) for name, b in buckets.items()},
            "chosen": {name: c.name for name, c in chosen.items()},
            "candidates": [
                {"ranking": name, "accuracy_at_1": round(a, 4), "mrr": round(m, 4)}
                for _, name, a, m in table
            ],
            "replay_accuracy_at_1": round(acc, 4),
            "replay_mrr": round(mrr, 4),
            "seconds": round(time.monotonic() - began, 2),
        }
    )
    return profile
