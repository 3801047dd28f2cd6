"""Documents to the pieces of text that are embedded and searched.

Incidents: the title and the user's description, in windows of words when long (the model
reads at most 256 word pieces). Articles: one chunk per section, each led by the title.
"""

from __future__ import annotations

import hashlib

from kb.articles import article_sections, plain_text
from kb.models import Article, Incident
from kb.store import ChunkText
from kb.text import normalise_text

WINDOW_WORDS = 180
WINDOW_STEP = 140
MAX_CHUNKS_PER_DOC = 24


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _windows(words: list[str]) -> list[str]:
    if len(words) <= WINDOW_WORDS:
        return [" ".join(words)]
    pieces = []
    for start in range(0, len(words), WINDOW_STEP):
        pieces.append(" ".join(words[start : start + WINDOW_WORDS]))
        if start + WINDOW_WORDS >= len(words) or len(pieces) >= MAX_CHUNKS_PER_DOC:
            break
    return pieces


def incident_text(title: str, description: str) -> str:
    """The text of an incident as it is embedded, and as a new incident is queried."""
    title, description = (title or "").strip(), (description or "").strip()
    if title and description and not description.lower().startswith(title.lower()):
        return f"{title}\n{description}"
    return description or title


def incident_chunks(incident: Incident) -> list[ChunkText]:
    title = " ".join(normalise_text(incident.title or "").split())
    body_words = normalise_text(incident.description or "").split()
    if len(body_words) + len(title.split()) <= WINDOW_WORDS:
        texts = [
            incident_text(
                normalise_text(incident.title or ""), normalise_text(incident.description or "")
            )
        ]
    else:
        texts = [incident_text(title, piece) for piece in _windows(body_words)]
    return [ChunkText(i, "", t, text_hash(t)) for i, t in enumerate(texts) if t.strip()]


def article_chunks(article: Article) -> list[ChunkText]:
    chunks: list[ChunkText] = []
    title = " ".join(normalise_text(article.title).split())
    for heading, markdown in article_sections(article.body):
        heading = normalise_text(heading)
        words = normalise_text(plain_text(markdown)).split()
        if not words:
            continue
        lead = f"{title}. {heading}:" if heading else f"{title}."
        for piece in _windows(words):
            text = f"{lead} {piece}"
            chunks.append(ChunkText(len(chunks), heading, text, text_hash(text)))
            if len(chunks) >= MAX_CHUNKS_PER_DOC:
                return chunks
    if not chunks:
        chunks.append(ChunkText(0, "", title, text_hash(title)))
    return chunks
