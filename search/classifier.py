"""A linear model of the store's own resolution groups.

Where many incidents share one resolution (a desk with a few resolver groups, or intents
answered by the same fix), a classifier trained on those incidents can place a new one
better than its nearest neighbours: it weighs every stored example of a group, not only
the few closest. Features: the incident's mean embedding (the vectors already in the
index, so nothing is re-embedded) beside TF-IDF weights of its stemmed content words.
Multinomial logistic regression (scikit-learn), trained in seconds at ``kb index``.

The fitted model is kept in the ranking profile (weights in float16, base64), so every
worker and every node serving the profile serves the same model. Whether it is used, and
how much it counts against the neighbours' vote, is decided by the replay (see
``search.calibration``).
"""

from __future__ import annotations

import base64
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kb.lexical import STOPWORDS, stems, tokens

MAX_VOCABULARY = 20_000
MIN_TERM_DOCS = 2
MIN_CLASS_SIZE = 5
MIN_CLASSES = 2
MAX_TRAINING_INCIDENTS = 30_000
# Term weights kept in all (classes x vocabulary): the model lives in the ranking profile
# that every worker loads, so its size is bounded (2M float16 weights, about 5 MB as text).
MAX_TERM_WEIGHTS = 2_000_000
REGULARISATION = 10.0  # scikit-learn's C: inverse strength of the L2 penalty


def content_stems(text: str) -> list[str]:
    words = [t for t in tokens(text) if t not in STOPWORDS and 1 < len(t) <= 40]
    return stems(words)


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.float16).tobytes()).decode("ascii")


def _decode(text: str, shape: Sequence[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32).reshape(shape)


@dataclass
class Vocabulary:
    terms: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, documents: Sequence[list[str]], limit: int = MAX_VOCABULARY) -> Vocabulary:
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(doc))
        kept = [t for t, n in df.most_common() if n >= MIN_TERM_DOCS][:limit]
        n_docs = max(len(documents), 1)
        idf = np.array([math.log((1 + n_docs) / (1 + df[t])) + 1.0 for t in kept], dtype=np.float32)
        return cls({t: i for i, t in enumerate(kept)}, idf)

    def weights(self, doc: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values): sublinear TF-IDF, L2-normalised."""
        counts = Counter(self.terms[t] for t in doc if t in self.terms)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(
            (1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts)
        )
        values = tf * self.idf[cols]
        return cols, values / np.linalg.norm(values)


@dataclass
class ResolutionClassifier:
    classes: list[str]  # group keys, as search.ranking.group_key names them
    leads: list[str]  # per class, the incident id that represents it when none was retrieved
    vocabulary: Vocabulary
    coef_dense: np.ndarray  # (classes, dim)
    coef_terms: np.ndarray  # (classes, vocabulary)
    intercept: np.ndarray  # (classes,)

    def lead_keys(self) -> dict[str, tuple[str, str]]:
        """Per class, the document that stands for it: the article of an article class,
        else its lead incident."""
        return {
            g: (("article", g[2:]) if g.startswith("a:") else ("incident", i))
            for g, i in zip(self.classes, self.leads, strict=True)
        }

    def log_proba(self, vector: np.ndarray, doc_stems: list[str]) -> np.ndarray:
        cols, values = self.vocabulary.weights(doc_stems)
        z = self.coef_dense @ vector + self.intercept
        if len(cols):
            z = z + self.coef_terms[:, cols] @ values
        z = z - z.max()
        return z - math.log(float(np.exp(z).sum()))

    def to_dict(self) -> dict:
        return {
            "classes": self.classes,
            "leads": self.leads,
            "terms": sorted(self.vocabulary.terms, key=self.vocabulary.terms.__getitem__),
            "idf": _encode(self.vocabulary.idf),
            "dim": int(self.coef_dense.shape[1]),
            "coef_dense": _encode(self.coef_dense),
            "coef_terms": _encode(self.coef_terms),
            "intercept": _encode(self.intercept),
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> ResolutionClassifier | None:
        if not data:
            return None
        terms = list(data["terms"])
        n_classes, dim = len(data["classes"]), int(data["dim"])
        vocab = Vocabulary({t: i for i, t in enumerate(terms)}, _decode(data["idf"], (len(terms),)))
        return cls(
            list(data["classes"]),
            list(data["leads"]),
            vocab,
            _decode(data["coef_dense"], (n_classes, dim)),
            _decode(data["coef_terms"], (n_classes, len(terms))),
            _decode(data["intercept"], (n_classes,)),
        )


def feature_matrix(vectors: np.ndarray, docs: Sequence[list[str]], vocab: Vocabulary):
    from scipy import sparse

    rows, cols, values = [], [], []
    for row, doc in enumerate(docs):
        c, v = vocab.weights(doc)
        rows.append(np.full(len(c), row, dtype=np.int64))
        cols.append(c)
        values.append(v)
    terms = sparse.csr_matrix(
        (
            np.concatenate(values) if values else np.zeros(0),
            (
                np.concatenate(rows) if rows else np.zeros(0, int),
                np.concatenate(cols) if cols else np.zeros(0, int),
            ),
        ),
        shape=(len(docs), len(vocab.terms)),
        dtype=np.float32,
    )
    return sparse.hstack([sparse.csr_matrix(vectors.astype(np.float32)), terms], format="csr")


def train_classifier(
    vectors: np.ndarray,
    docs: Sequence[list[str]],
    labels: Sequence[str],
    leads: dict[str, str],
    *,
    regularisation: float = REGULARISATION,
    sample_weight: np.ndarray | None = None,
    max_terms: int = MAX_TERM_WEIGHTS,
) -> ResolutionClassifier | None:
    """Fit on incidents (mean vectors, content stems, group labels, optionally how much each
    counts); None when the labels do not make at least MIN_CLASSES groups. The vocabulary
    keeps at most ``max_terms`` weights over all classes."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    if len(classes) < MIN_CLASSES:
        return None
    vocab = Vocabulary.fit(docs, limit=min(MAX_VOCABULARY, max_terms // len(classes)))
    x = feature_matrix(vectors, docs, vocab)
    model = LogisticRegression(C=regularisation, max_iter=200, tol=1e-3)
    with warnings.catch_warnings():
        # Stopping at max_iter leaves a usable model; the replay judges it either way.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, np.array(labels), sample_weight=sample_weight)
    if len(classes) == 2:  # scikit-learn keeps one row for two classes: p(classes[1])
        coef = np.vstack([-model.coef_[0], model.coef_[0]]).astype(np.float32) / 2
        intercept = np.array([-model.intercept_[0], model.intercept_[0]], dtype=np.float32) / 2
    else:
        order = [list(model.classes_).index(c) for c in classes]
        coef = model.coef_[order].astype(np.float32)
        intercept = model.intercept_[order].astype(np.float32)
    dim = vectors.shape[1]
    return ResolutionClassifier(
        classes,
        [leads[c] for c in classes],
        vocab,
        coef[:, :dim].copy(),
        coef[:, dim:].copy(),
        intercept,
    )
