"""From retrieved chunks to ranked resolutions.

1. Retrieval: dense neighbours from FAISS (one query row per window of a long incident)
   and BM25 hits from SQLite FTS5, as candidate chunks.
2. Fusion: a chunk scores ``dense + w * bm25 / max_bm25``, where ``w`` depends on query
   length and is fitted on the store (see search.profile). A document scores its best chunk.
3. Grouping: documents are grouped by resolution: an article with the incidents resolved
   with it; incidents that share a resolution text whose members really are alike; other
   incidents alone.
4. Vote: a group's score is a soft maximum over its documents among the top ``vote_depth``,
   ``tau * log(sum(exp(s / tau)))``: the best match counts most, and each further close
   neighbour adds a little, bounded by ``tau * log(n)``.

These functions are shared by live queries and by the replay that fits the profile, so
the fitted numbers describe exactly the ranking that is served.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kb.lexical import rarest_terms, stems
from kb.models import SEARCHABLE_ARTICLE_STATES
from kb.names import name_key
from kb.store import Store
from search.state import DocInfo, DocKey, SearchState

DENSE_DEPTH = 100
LEXICAL_DEPTH = 100
# An identifier is asked as a phrase when its rarest piece is in at most this many chunks.
IDENTIFIER_POSTINGS = 2000


@dataclass
class Viewer:
    """Who is asking, and so which documents they may be offered."""

    include_drafts: bool = False
    audience: str = "internal"  # "public": only validated public articles, no incidents

    def can_see(self, doc: DocInfo) -> bool:
        if doc.kind == "incident":
            return self.audience != "public"
        if self.audience == "public":
            return doc.status == "validated" and doc.audience == "public"
        if doc.status in SEARCHABLE_ARTICLE_STATES:
            return True
        return self.include_drafts and doc.status == "draft"


@dataclass
class Filters:
    product: str = ""
    category: str = ""

    def accept(self, doc: DocInfo) -> bool:
        """Whether a document fits; names compare as kb.names does ("Laptop" is "laptops")."""
        if self.product and name_key(doc.product) != name_key(self.product):
            return False
        if self.category and name_key(doc.category) != name_key(self.category):
            return False
        return True


@dataclass
class Candidates:
    dense: dict[int, float] = field(default_factory=dict)
    lexical: dict[int, float] = field(default_factory=dict)


def lexical_candidates(
    state: SearchState,
    store: Store,
    terms: list[str],
    depth: int = LEXICAL_DEPTH,
    phrases: list[str] | None = None,
) -> dict[int, float]:
    """BM25 hits (chunk id -> score, higher is better) for a query's rarest terms and its
    identifiers (``phrases``: each asked as a phrase, so it matches whole or not at all)."""
    if not terms or depth <= 0:
        return {}
    terms = rarest_terms(terms, state.term_counts(store, stems(terms)), state.chunk_total)
    if not terms:
        return {}
    kept = []
    for phrase in phrases or []:
        pieces = set(stems(phrase.split()))
        found = state.term_counts(store, list(pieces))
        if len(found) == len(pieces) and min(found.values()) <= IDENTIFIER_POSTINGS:
            kept.append(phrase)
    return {
        cid: float(score)
        for cid, score in store.fts_chunks(terms + kept, depth)
        if cid in state.chunk_doc
    }


def retrieve(
    state: SearchState,
    store: Store,
    query_vectors: np.ndarray,
    terms: list[str],
    *,
    dense_depth: int = DENSE_DEPTH,
    lexical_depth: int = LEXICAL_DEPTH,
    exclude: DocKey | None = None,
    lexical: dict[int, float] | None = None,
    phrases: list[str] | None = None,
) -> Candidates:
    """Dense and lexical candidate chunks; every candidate gets a dense score.

    ``lexical`` takes BM25 hits already fetched (the suggester fetches them while the
    query is being embedded).
    """
    cands = Candidates()
    with state.lock:
        scores, ids = state.index.search(query_vectors, dense_depth)
    for row in range(ids.shape[0]):
        for score, cid in zip(scores[row], ids[row], strict=True):
            cid = int(cid)
            if cid < 0:
                continue
            if score > cands.dense.get(cid, -2.0):
                cands.dense[cid] = float(score)
    if lexical is None:
        lexical = lexical_candidates(state, store, terms, lexical_depth, phrases)
    cands.lexical = dict(lexical)
    if state.index.approximate:
        # Compressed vectors rank the candidates; their scores come from the exact vectors
        # in the store, for dense and keyword candidates alike.
        cands.dense = exact_scores(state, store, query_vectors, [*cands.dense, *cands.lexical])
    else:
        missing = [cid for cid in cands.lexical if cid not in cands.dense]
        if missing:
            with state.lock:
                vectors = [(cid, state.index.vector(cid)) for cid in missing]
            for cid, vector in vectors:
                if vector is not None:
                    cands.dense[cid] = float(np.max(query_vectors @ vector))
    if exclude is not None:
        for table in (cands.dense, cands.lexical):
            for cid in [c for c in table if state.chunk_doc.get(c) == exclude]:
                del table[cid]
    return cands


def exact_scores(
    state: SearchState, store: Store, query_vectors: np.ndarray, chunk_ids: list[int]
) -> dict[int, float]:
    """Each chunk's best inner product with the query rows, from the store's exact vectors
    (a chunk the store has no vector for keeps the index's approximate one)."""
    wanted = list(dict.fromkeys(chunk_ids))
    if not wanted:
        return {}
    vectors = store.chunk_vectors(state.model_id, wanted)
    with state.lock:
        for cid in wanted:
            if cid not in vectors:
                vector = state.index.vector(cid)
                if vector is not None:
                    vectors[cid] = vector
    present = [cid for cid in wanted if cid in vectors]
    if not present:
        return {}
    matrix = np.vstack([vectors[cid] for cid in present]).astype(np.float32)
    best = (query_vectors.astype(np.float32) @ matrix.T).max(axis=0)
    return {cid: float(score) for cid, score in zip(present, best.tolist(), strict=True)}


def document_scores(
    cands: Candidates,
    state: SearchState,
    lexical_weight: float,
    accept: Callable[[DocInfo], bool] | None = None,
) -> dict[DocKey, tuple[float, int]]:
    """Best fused chunk score and that chunk, per visible document."""
    top_lexical = max(cands.lexical.values(), default=0.0)
    out: dict[DocKey, tuple[float, int]] = {}
    for cid, dense in cands.dense.items():
        key = state.chunk_doc.get(cid)
        if key is None:
            continue
        doc = state.docs.get(key)
        if doc is None or (accept is not None and not accept(doc)):
            continue
        lexical = cands.lexical.get(cid, 0.0) / top_lexical if top_lexical > 0 else 0.0
        score = dense + lexical_weight * lexical
        if key not in out or score > out[key][0]:
            out[key] = (score, cid)
    return out


RRF_K = 60


def baseline_document_scores(
    cands: Candidates,
    state: SearchState,
    mode: str,
    accept: Callable[[DocInfo], bool] | None = None,
) -> dict[DocKey, tuple[float, int]]:
    """Scores for the reference rankings that the shipped one is measured against:
    ``dense`` (embeddings only), ``bm25`` (keywords only) and ``rrf`` (reciprocal rank
    fusion of the two with k=60). Groups then take their best document (no vote)."""
    if mode == "dense":
        chunk_scores = dict(sorted(cands.dense.items(), key=lambda i: -i[1])[:DENSE_DEPTH])
    elif mode == "bm25":
        chunk_scores = dict(cands.lexical)
    elif mode == "rrf":
        chunk_scores = {}
        for table in (
            dict(sorted(cands.dense.items(), key=lambda i: -i[1])[:DENSE_DEPTH]),
            cands.lexical,
        ):
            for rank, cid in enumerate(sorted(table, key=lambda c: -table[c]), start=1):
                chunk_scores[cid] = chunk_scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    else:
        raise ValueError(f"unknown ranking mode {mode!r}")
    out: dict[DocKey, tuple[float, int]] = {}
    for cid, score in chunk_scores.items():
        key = state.chunk_doc.get(cid)
        doc = state.docs.get(key) if key else None
        if doc is None or (accept is not None and not accept(doc)):
            continue
        if key not in out or score > out[key][0]:
            out[key] = (score, cid)
    return out


def group_key(
    doc: DocInfo, state: SearchState, collapse: set[str], article_visible: Callable[[str], bool]
) -> str:
    if doc.kind == "article":
        return "a:" + doc.id
    if doc.article_id and article_visible(doc.article_id):
        return "a:" + doc.article_id
    if doc.res_key and doc.res_key in collapse:
        return doc.res_key
    return "i:" + doc.id


@dataclass
class GroupScore:
    group: str
    score: float
    members: list[tuple[DocKey, float, int]]  # (doc, score, best chunk), best first


def vote(
    doc_scores: dict[DocKey, tuple[float, int]],
    state: SearchState,
    *,
    tau: float,
    depth: int,
    collapse: set[str],
    viewer: Viewer,
    priors: dict[str, float] | None = None,
) -> list[GroupScore]:
    """Group documents by resolution and score each group by a soft maximum."""
    ranked = sorted(doc_scores.items(), key=lambda item: -item[1][0])[:depth]

    def article_visible(article_id: str) -> bool:
        doc = state.docs.get(("article", article_id))
        return doc is not None and viewer.can_see(doc)

    members: dict[str, list[tuple[DocKey, float, int]]] = {}
    for key, (score, cid) in ranked:
        doc = state.docs[key]
        members.setdefault(group_key(doc, state, collapse, article_visible), []).append(
            (key, score, cid)
        )
    groups = []
    for group, items in members.items():
        top = items[0][1]
        total = sum(math.exp((s - top) / tau) for _, s, _ in items)
        # A resolution family scores its best incident: its members are paraphrases that a
        # store without families would rank one by one, and a large family must not outvote
        # a closer incident of another fix by its size alone.
        score = top if group.startswith("f:") else top + tau * math.log(total)
        if priors:
            score += priors.get(group, 0.0)
        groups.append(GroupScore(group, score, items))
    groups.sort(key=lambda g: -g.score)
    return groups


BLEND_KINDS = ("fused", "dense", "rrf", "bm25")


@dataclass
class Blend:
    """How one kind of query is ranked: which scoring, and its numbers.

    ``fused``: dense + ``weight`` x normalised BM25 per chunk, then the soft-max vote with
    temperature ``tau``. ``dense``, ``rrf`` and ``bm25``: the reference rankings, each group
    taking its best document. ``classifier`` > 0 mixes in the store's resolution classifier:
    a group scores ``(1 - c) * vote + c * log P(group)``.
    """

    kind: str = "fused"
    weight: float = 0.1
    tau: float = 0.05
    classifier: float = 0.0

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "weight": self.weight,
            "tau": self.tau,
            "classifier": self.classifier,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Blend:
        data = data or {}
        kind = data.get("kind", "fused")
        return cls(
            kind=kind if kind in BLEND_KINDS else "fused",
            weight=float(data.get("weight", 0.1)),
            tau=float(data.get("tau", 0.05)),
            classifier=float(data.get("classifier", 0.0)),
        )

    def describe(self) -> str:
        if self.kind == "fused":
            text = f"embeddings + {self.weight:g} x BM25, vote tau {self.tau:g}"
        else:
            text = {
                "dense": "embeddings only",
                "rrf": "reciprocal rank fusion",
                "bm25": "BM25 only",
            }[self.kind]
        return text + (f", classifier {self.classifier:g}" if self.classifier else "")


# Log-probability given to groups the classifier does not know (articles, lone incidents).
CLASSIFIER_FLOOR = math.log(1e-4)
# Classes the classifier adds to the list even when none of their incidents was retrieved.
CLASSIFIER_EXTRA = 10


def rank_groups(
    cands: Candidates,
    state: SearchState,
    blend: Blend,
    *,
    depth: int,
    collapse: set[str],
    viewer: Viewer,
    accept: Callable[[DocInfo], bool] | None = None,
    priors: dict[str, float] | None = None,
    class_logp: dict[str, float] | None = None,
    class_leads: dict[str, DocKey] | None = None,
) -> list[GroupScore]:
    """Resolution groups for one query's candidates, best first, under ``blend``."""
    if blend.kind == "fused":
        doc_scores = document_scores(cands, state, blend.weight, accept)
        groups = vote(
            doc_scores,
            state,
            tau=blend.tau,
            depth=depth,
            collapse=collapse,
            viewer=viewer,
            priors=priors,
        )
    else:
        doc_scores = baseline_document_scores(cands, state, blend.kind, accept)
        groups = vote(
            doc_scores,
            state,
            tau=1e-9,
            depth=depth,
            collapse=collapse,
            viewer=viewer,
            priors=priors,
        )
    c = blend.classifier
    if c <= 0 or not class_logp:
        return groups
    floor = min((g.score for g in groups), default=0.0) - 0.05
    by_name = {g.group: g for g in groups}
    for name, _ in sorted(class_logp.items(), key=lambda i: -i[1])[:CLASSIFIER_EXTRA]:
        if name in by_name or not class_leads or name not in class_leads:
            continue
        key = class_leads[name]
        doc = state.docs.get(key)
        if doc is None or (accept is not None and not accept(doc)):
            continue
        cid = state.doc_chunk(key)
        if cid is None:
            continue
        by_name[name] = GroupScore(name, floor, [(key, floor, cid)])
    # A group outside every class (a lone incident, a small article) is never pushed down by
    # the classifier: it counts as likely as the likeliest class.
    outside = max(class_logp.values(), default=CLASSIFIER_FLOOR)
    mixed = []
    for g in by_name.values():
        g.score = (1 - c) * g.score + c * class_logp.get(g.group, outside) + 1e-6 * g.score
        mixed.append(g)
    mixed.sort(key=lambda g: -g.score)
    return mixed


def group_similarity(group: GroupScore, cands: Candidates) -> float:
    """The best dense similarity among a group's retrieved documents."""
    return max((cands.dense.get(cid, 0.0) for _, _, cid in group.members), default=0.0)


def confidence_features(
    groups: list[GroupScore], cands: Candidates, position: int, scale: float
) -> list[float]:
    """(best similarity of the group, its lead over the next group / scale)."""
    group = groups[position]
    following = groups[position + 1].score if position + 1 < len(groups) else group.score - scale
    return [group_similarity(group, cands), (group.score - following) / scale]


def result_confidence(
    groups: list[GroupScore], cands: Candidates, position: int, mapping: list[float]
) -> float:
    """P(the result at ``position`` is the right one) under a fitted confidence map
    ``[similarity weight, margin weight, intercept, margin scale]``."""
    a, b, c = mapping[0], mapping[1], mapping[2]
    scale = mapping[3] if len(mapping) > 3 and mapping[3] > 0 else 1.0
    similarity, margin = confidence_features(groups, cands, position, scale)
    return _sigmoid(a * similarity + b * margin + c)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
