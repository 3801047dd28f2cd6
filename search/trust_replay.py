"""The mixed stream of a replay, run at ``kb index``: answerable replays, the same incidents
with their whole resolution held out (near-domain off-topic), and the packaged background
(far off-topic); the confidence and no-good-match maps of search.confidence fitted on it."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from indexer.chunking import incident_text
from kb.language import detect_code
from kb.lexical import identifier_phrases
from kb.store import Store
from kb.text import normalise_text
from search.classifier import ResolutionClassifier, content_stems
from search.confidence import collect_stream, fit_trust
from search.profile import length_bucket
from search.ranking import Candidates, GroupScore, Viewer, rank_groups, retrieve
from search.state import DocKey, SearchState
from search.text import search_terms

# Replayed incidents whose language is identified first: when none of them is in another
# language than English, the store fits no maps per language and the rest are not read.
LANGUAGE_PROBE = 100


def replay_languages(store: Store, keys: Sequence[DocKey]) -> dict[DocKey, str | None]:
    """The language of each replayed incident's text (None where none is clearly ahead)."""
    ids = [key[1] for key in keys if key[0] == "incident"]
    out: dict[DocKey, str | None] = {}
    for start, stop in ((0, LANGUAGE_PROBE), (LANGUAGE_PROBE, len(ids))):
        for incident in store.iter_incidents(ids[start:stop]):
            text = normalise_text(incident_text(incident.title, incident.description))
            out[("incident", incident.id)] = detect_code(text)
        if all(code in (None, "en") for code in out.values()):
            return {key: "en" for key in out}
    return out


def fit_trust_maps(
    store: Store,
    state: SearchState,
    queries: Sequence[Any],
    chosen: Mapping[str, Any],
    collapse: set[str],
    depth: int,
    leads: dict | None,
    classifier: ResolutionClassifier | None,
    background: Sequence[str],
    background_vectors: np.ndarray | None,
    rng: random.Random,
) -> tuple[dict | None, dict]:
    """Fit the trust profile (as a dict for the ranking profile) and say what it saw.

    ``chosen`` maps each length bucket to the configuration the profile serves it with."""
    from search.calibration import matches

    viewer = Viewer()

    def rank(cands: Candidates, words: int, class_logp: dict | None) -> list[GroupScore]:
        blend = chosen[length_bucket(words)].blend
        return rank_groups(
            cands,
            state,
            blend,
            depth=depth,
            collapse=collapse,
            viewer=viewer,
            accept=viewer.can_see,
            class_logp=class_logp,
            class_leads=leads,
        )

    far = []
    if background_vectors is not None:
        for text, row in zip(background, background_vectors, strict=True):
            text = normalise_text(text)
            cands = retrieve(
                state,
                store,
                row[None, :].astype(np.float32),
                search_terms(text, "en"),
                phrases=identifier_phrases(text),
            )
            logp = None
            if classifier is not None:
                logp = dict(
                    zip(
                        classifier.classes,
                        classifier.log_proba(row, content_stems(text)).tolist(),
                        strict=True,
                    )
                )
            far.append((len(text.split()), cands, logp))
    languages = replay_languages(store, [q.key for q in queries])
    stream, scale = collect_stream(
        state,
        queries,
        rank=rank,
        matches=matches,
        languages=languages,
        background=far,
        use_class=classifier is not None,
        rng=rng,
    )
    trust, info = fit_trust(stream, scale)
    return (trust.to_dict() if trust else None), info
