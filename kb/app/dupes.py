"""Near-duplicate articles, found through the vectors the index already holds.

Each article is indexed as one chunk per section. Two articles are compared section by
section: every section of one is matched to its closest section of the other (cosine of
the normalised vectors), and the pair's similarity is the mean of those best matches,
taken both ways. Two copies of one article score 1.0; an article and a rewrite of it in
other words score about 0.84 with all-MiniLM-L6-v2, while the closest pairs of distinct
articles in the sample knowledge base score at most 0.64.

Default threshold, chosen from the data: for each article take its similarity to its
closest other article; the median of those is how alike *related* articles typically are
in this knowledge base. The threshold lies halfway between that and identical:
``median + (1 - median) / 2``. On the sample knowledge base this is 0.77 with MiniLM
(related articles 0.55; no pair flagged, a rewritten copy caught). Being relative, it
follows the model in use (a tuned model, or the hashing embedder in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.index_files import read_config
from kb.app.service import Service
from kb.errors import IndexMissingError
from kb.store import Store

SECTION_OVERLAP = 0.8  # a section pair at least this alike is listed as overlapping
CANDIDATES_PER_ARTICLE = 20
MIN_ARTICLES = 2


@dataclass
class ArticleVectors:
    id: str
    title: str
    headings: list[str]
    vectors: np.ndarray  # one normalised row per chunk


@dataclass
class DuplicatePair:
    a: str
    b: str
    title_a: str
    title_b: str
    similarity: float
    sections: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "title_a": self.title_a,
            "title_b": self.title_b,
            "similarity": round(self.similarity, 4),
            "sections": self.sections,
        }


@dataclass
class DupesReport:
    pairs: list[DuplicatePair]
    threshold: float
    threshold_source: str  # how the threshold was chosen
    articles: int
    typical_similarity: float | None
    model_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 4),
            "threshold_source": self.threshold_source,
            "articles": self.articles,
            "typical_similarity": None
            if self.typical_similarity is None
            else round(self.typical_similarity, 4),
            "model_id": self.model_id,
            "pairs": [p.to_dict() for p in self.pairs],
        }


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def indexed_article_vectors(store: Store, model_id: str) -> list[ArticleVectors]:
    """The section vectors of every indexed article that is not archived."""
    rows = store.article_chunk_rows()
    vectors = store.chunk_vectors(model_id, [r["id"] for r in rows])
    titles = {a.id: (a.title, a.status) for a in store.iter_articles()}
    grouped: dict[str, list[tuple[int, str, np.ndarray]]] = {}
    for row in rows:
        if row["id"] in vectors and titles.get(row["doc_id"], ("", "archived"))[1] != "archived":
            grouped.setdefault(row["doc_id"], []).append(
                (row["position"], row["heading"] or "(intro)", vectors[row["id"]])
            )
    out = []
    for article_id in sorted(grouped):
        parts = sorted(grouped[article_id], key=lambda p: p[0])
        out.append(
            ArticleVectors(
                article_id,
                titles[article_id][0],
                [p[1] for p in parts],
                _normalise(np.vstack([p[2] for p in parts]).astype(np.float32)),
            )
        )
    return out


def pair_similarity(a: ArticleVectors, b: ArticleVectors) -> tuple[float, np.ndarray]:
    """Mean best-match section similarity, both ways; and the section similarity matrix."""
    sims = a.vectors @ b.vectors.T
    score = 0.5 * (float(sims.max(axis=1).mean()) + float(sims.max(axis=0).mean()))
    return score, sims


def overlapping_sections(
    a: ArticleVectors, b: ArticleVectors, sims: np.ndarray, floor: float = SECTION_OVERLAP
) -> list[dict[str, Any]]:
    """Each section of ``a`` with its closest section of ``b``, when at least ``floor``."""
    out = []
    for i, heading in enumerate(a.headings):
        j = int(sims[i].argmax())
        if sims[i, j] >= floor:
            out.append(
                {"a": heading, "b": b.headings[j], "similarity": round(float(sims[i, j]), 4)}
            )
    return out


def _candidate_pairs(articles: list[ArticleVectors]) -> list[tuple[int, int]]:
    """Pairs worth an exact comparison: each article's closest ones by mean vector."""
    centroids = _normalise(np.vstack([a.vectors.mean(axis=0) for a in articles]))
    keep = min(CANDIDATES_PER_ARTICLE, len(articles) - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(articles), 1024):
        block = centroids[start : start + 1024] @ centroids.T
        for offset, row in enumerate(block):
            i = start + offset
            row[i] = -np.inf
            for j in np.argpartition(-row, keep - 1)[:keep]:
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def default_threshold(nearest: list[float]) -> float:
    """Halfway between the median closest-article similarity and 1.0 (see module doc)."""
    typical = float(np.median(nearest))
    return typical + (1.0 - typical) / 2


def find_duplicates(
    store: Store,
    model_id: str,
    *,
    threshold: float | None = None,
) -> DupesReport:
    """Pairs of articles at least ``threshold`` alike (default: from the data), most alike
    first, each with the sections that overlap."""
    articles = indexed_article_vectors(store, model_id)
    if len(articles) < MIN_ARTICLES:
        return DupesReport(
            [], threshold or 1.0, "fewer than two indexed articles", len(articles), None, model_id
        )
    scored: list[tuple[float, int, int, np.ndarray]] = []
    nearest = [-1.0] * len(articles)
    for i, j in _candidate_pairs(articles):
        score, sims = pair_similarity(articles[i], articles[j])
        nearest[i], nearest[j] = max(nearest[i], score), max(nearest[j], score)
        scored.append((score, i, j, sims))
    typical = float(np.median(nearest))
    if threshold is None:
        threshold = default_threshold(nearest)
        source = (
            f"default: halfway between the median closest-article similarity "
            f"({typical:.3f}) and 1.0"
        )
    else:
        source = "given"
    pairs = [
        DuplicatePair(
            articles[i].id,
            articles[j].id,
            articles[i].title,
            articles[j].title,
            score,
            overlapping_sections(articles[i], articles[j], sims),
        )
        for score, i, j, sims in sorted(scored, key=lambda s: -s[0])
        if score >= threshold
    ]
    return DupesReport(pairs, threshold, source, len(articles), typical, model_id)


def index_model_id(index_root: Path) -> str:
    """The model the published index was built with. Raises IndexMissingError."""
    model_id = read_config(index_root).get("model_id")
    if not model_id:
        raise IndexMissingError(
            "the index does not say which model built it: run `kb index --rebuild`"
        )
    return model_id


def find_service_duplicates(service: Service, *, threshold: float | None = None) -> DupesReport:
    """:func:`find_duplicates` over the service's current index."""
    return find_duplicates(service.store(), index_model_id(service.index_root), threshold=threshold)
