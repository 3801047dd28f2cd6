"""A synthetic incident corpus of any size, recombined from the sample knowledge base.

`kb bench` needs ten thousand to a million incidents that read like the real ones. They are
made from the sample knowledge base (``kb/sample/incidents.jsonl`` and ``articles/*.md``):

- the sample descriptions and the non-resolution sections of the articles are split into
  sentence-sized fragments;
- each synthetic incident takes a sample title and a description of 2 to 4 fragments, plus
  a ticket-like reference that keeps every text distinct;
- its resolution comes from a pool (the distinct sample resolutions, topped up with steps of
  the articles' Resolution sections), drawn with a mild Zipf skew so resolution groups of
  every size exist; resolutions that came with an article keep its ``article_id``.

Everything is drawn from seeded generators: the same seed gives the same corpus, the same
queries and the same throughput sample. Queries are made like the corpus (a title and 1 to 3
fragments) but carry no reference, so none of them is a stored text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kb.articles import article_sections, plain_text, scan_articles
from kb.errors import KBError
from kb.importers import read_incident_file, sample_incidents_path
from kb.models import Article, Incident

MIN_FRAGMENT_WORDS = 3
MAX_FRAGMENT_WORDS = 40
MIN_FRAGMENTS, MAX_FRAGMENTS = 2, 4
BLOCK = 5_000  # incidents drawn per generator; also the import batch
RESOLUTION_SKEW = 0.6  # Zipf exponent of how often each pool resolution is used
REFERENCE_PREFIXES = ("INC", "REQ", "CASE", "TKT", "SR")
REFERENCE_SPACE = 10_000_019  # prime: i -> (i * step + offset) % space is one-to-one
RESOLUTION_HEADINGS = ("resolution", "fix", "solution", "workaround")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ResolutionTemplate:
    text: str
    code: str = ""
    product: str = ""
    category: str = ""
    article_id: str = ""


@dataclass
class CorpusSource:
    """The pieces synthetic incidents are made of."""

    titles: list[str]
    fragments: list[str]
    resolutions: list[ResolutionTemplate]
    articles: list[Article]


def split_fragments(text: str) -> list[str]:
    """Sentence-sized pieces of a text: lines, then sentences, of a usable length."""
    pieces = []
    for line in text.splitlines():
        for sentence in _SENTENCE_END.split(line.strip()):
            words = sentence.split()
            if MIN_FRAGMENT_WORDS <= len(words) <= MAX_FRAGMENT_WORDS:
                pieces.append(" ".join(words))
    return pieces


def load_source(
    articles_dir: Path, *, resolutions: int = 500, incidents_path: Path | None = None
) -> CorpusSource:
    """Read the sample knowledge base and cut it into titles, fragments and resolutions.

    Raises KBError when the sample holds too little text to build from.
    """
    if not Path(articles_dir).is_dir():
        raise KBError(
            f"the sample articles folder {articles_dir} does not exist; run from the project "
            "folder, or name it with --articles or KB_ARTICLES_DIR"
        )
    incidents = read_incident_file(incidents_path or sample_incidents_path())
    articles = [p.article for p in scan_articles(articles_dir).parsed]
    titles = _distinct([i.title.strip() for i in incidents] + [a.title.strip() for a in articles])
    fragments: list[str] = []
    steps: list[ResolutionTemplate] = []
    for incident in incidents:
        fragments.extend(split_fragments(incident.description))
    for article in articles:
        for heading, markdown in article_sections(article.body):
            pieces = split_fragments(plain_text(markdown))
            if heading.lower().startswith(RESOLUTION_HEADINGS):
                steps.extend(
                    ResolutionTemplate(
                        p, "solved_permanently", article.product, article.category, article.id
                    )
                    for p in pieces
                )
            elif not heading.lower().startswith("applies"):
                fragments.extend(pieces)
    pool = _resolution_pool(incidents, steps, resolutions)
    fragments = _distinct(fragments)
    if len(titles) < 10 or len(fragments) < 20 or not pool:
        raise KBError(
            f"the sample knowledge base in {articles_dir} is too small to build a corpus from"
        )
    return CorpusSource(titles, fragments, pool, articles)


def _distinct(items: list[str]) -> list[str]:
    return [item for item in dict.fromkeys(items) if item]


def _resolution_pool(
    incidents: list[Incident], steps: list[ResolutionTemplate], size: int
) -> list[ResolutionTemplate]:
    """The sample's distinct resolutions first, then article resolution steps, up to ``size``."""
    pool: dict[str, ResolutionTemplate] = {}
    for incident in incidents:
        text = " ".join(incident.resolution.split())
        if text and incident.status in ("resolved", "closed") and text not in pool:
            pool[text] = ResolutionTemplate(
                text,
                incident.resolution_code,
                incident.product,
                incident.category,
                incident.article_id or "",
            )
    for step in steps:
        if len(pool) >= size:
            break
        pool.setdefault(step.text, step)
    return list(pool.values())[:size]


@dataclass
class SyntheticBatch:
    """A batch of incidents and what each was made of (for composing vectors)."""

    incidents: list[Incident]
    title_index: np.ndarray  # (n,) into source.titles
    fragment_index: np.ndarray  # (n, MAX_FRAGMENTS) into source.fragments, -1 where unused


class SyntheticCorpus:
    def __init__(self, source: CorpusSource, seed: int = 1):
        self.source = source
        self.seed = seed
        ranks = np.arange(1, len(source.resolutions) + 1, dtype=np.float64)
        weights = ranks**-RESOLUTION_SKEW
        self.resolution_weights = weights / weights.sum()

    def batches(self, total: int) -> Iterator[SyntheticBatch]:
        """``total`` incidents in batches of up to BLOCK. Incident i depends only on the seed
        and i, so a smaller corpus is the start of a larger one."""
        reference = np.random.default_rng([self.seed, 9])
        step = int(reference.integers(1_000, REFERENCE_SPACE - 1))
        offset = int(reference.integers(0, REFERENCE_SPACE))
        for start in range(0, total, BLOCK):
            yield self._block(start, min(BLOCK, total - start), step, offset)

    def _block(self, start: int, n: int, step: int, offset: int) -> SyntheticBatch:
        rng = np.random.default_rng([self.seed, 0, start // BLOCK])
        titles = rng.integers(0, len(self.source.titles), BLOCK)[:n]
        fragments = self._fragment_rows(rng, BLOCK, MIN_FRAGMENTS, MAX_FRAGMENTS)[:n]
        resolutions = rng.choice(len(self.source.resolutions), BLOCK, p=self.resolution_weights)
        prefixes = rng.integers(0, len(REFERENCE_PREFIXES), BLOCK)
        opened = rng.integers(0, 730 * 24 * 60, BLOCK)
        took = rng.integers(10, 7 * 24 * 60, BLOCK)
        closed = rng.random(BLOCK) < 0.3
        incidents = []
        for row in range(n):
            number = start + row
            reference = f"{REFERENCE_PREFIXES[prefixes[row]]}-{(number * step + offset) % REFERENCE_SPACE:08d}"
            resolution = self.source.resolutions[resolutions[row]]
            opened_at = EPOCH + timedelta(minutes=int(opened[row]))
            incidents.append(
                Incident(
                    id=f"BENCH-{number:07d}",
                    title=self.source.titles[titles[row]],
                    description=self._description(fragments[row]) + f" (ref {reference})",
                    resolution=resolution.text,
                    resolution_code=resolution.code,
                    product=resolution.product,
                    category=resolution.category,
                    status="closed" if closed[row] else "resolved",
                    opened_at=_iso(opened_at),
                    resolved_at=_iso(opened_at + timedelta(minutes=int(took[row]))),
                    article_id=resolution.article_id,
                )
            )
        return SyntheticBatch(incidents, titles, fragments)

    def queries(self, count: int) -> list[tuple[str, str]]:
        """(title, description) pairs made like the corpus; none of them is in it."""
        rng = np.random.default_rng([self.seed, 1])
        titles = rng.integers(0, len(self.source.titles), count)
        fragments = self._fragment_rows(rng, count, 1, 3)
        return [
            (self.source.titles[titles[i]], self._description(fragments[i])) for i in range(count)
        ]

    def sample_texts(self, count: int) -> list[str]:
        """Composed incident texts (as they are embedded) for measuring embedding speed.

        Drawn from their own seeded stream, so the sample is the same whatever the corpus size.
        """
        from indexer.chunking import incident_text

        rng = np.random.default_rng([self.seed, 2])
        titles = rng.integers(0, len(self.source.titles), count)
        fragments = self._fragment_rows(rng, count, MIN_FRAGMENTS, MAX_FRAGMENTS)
        return [
            incident_text(self.source.titles[titles[i]], self._description(fragments[i]))
            for i in range(count)
        ]

    def _fragment_rows(self, rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
        rows = rng.integers(0, len(self.source.fragments), (n, MAX_FRAGMENTS))
        counts = rng.integers(low, high + 1, n)
        rows[np.arange(MAX_FRAGMENTS)[None, :] >= counts[:, None]] = -1
        return rows

    def _description(self, row: np.ndarray) -> str:
        return " ".join(self.source.fragments[i] for i in row if i >= 0)


def compose_vectors(
    title_vectors: np.ndarray,
    fragment_vectors: np.ndarray,
    batch: SyntheticBatch,
    rng: np.random.Generator,
    noise: float = 0.05,
) -> np.ndarray:
    """One unit vector per incident: the normalised sum of its title's and fragments'
    vectors, plus a little seeded noise (standing in for the words that make it unique)."""
    summed = title_vectors[batch.title_index].astype(np.float32, copy=True)
    for column in range(batch.fragment_index.shape[1]):
        picked = batch.fragment_index[:, column]
        used = picked >= 0
        summed[used] += fragment_vectors[picked[used]]
    summed /= np.linalg.norm(summed, axis=1, keepdims=True)
    dimension = summed.shape[1]
    summed += rng.normal(0.0, noise / np.sqrt(dimension), summed.shape).astype(np.float32)
    summed /= np.linalg.norm(summed, axis=1, keepdims=True)
    return summed


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
