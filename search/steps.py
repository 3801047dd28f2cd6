"""Suggested steps: what the notes of one resolution family agree on.

Extractive only: every step shown is a step some agent wrote, in that agent's words, with
how many of the family's incidents wrote it (in any wording) and which. Nothing is
generated or merged into new text.

- A note is cut into steps at line breaks, semicolons, arrows, step numbers ("1)", "2.")
  and sentence ends; pieces of fewer than two words are dropped.
- Within a family, steps are grouped greedily by character n-gram similarity (at least
  ``SAME_STEP``), most frequent wording first; a group is shown when at least
  ``MIN_AGREEMENT`` of the family's incidents (and two or more) wrote it.
- Boilerplate is left out: a wording found in the notes of at least ``GENERIC_SHARE`` of all
  families (a canned first step, "closing as resolved") says nothing about this fix.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from kb.models import numbered_steps

SAME_STEP = 0.6
MIN_AGREEMENT = 0.25
GENERIC_SHARE = 0.3
MIN_GENERIC_FAMILIES = 3
MAX_STEPS = 5
MAX_LINKED = 5
MAX_NOTES = 300
_SPLIT = re.compile(r"\n|;|->|→|=>|(?:^|\s)\(?\d{1,2}[).:]\s|(?<=[a-z0-9])\.\s+|\s+-\s+|\s+\+\s+")


def split_steps(note: str) -> list[str]:
    """The steps of one note, as written (trimmed of separators)."""
    out = []
    for piece in _SPLIT.split(note or ""):
        piece = piece.strip(" ,.-:").strip()
        if len(piece.split()) >= 2:
            out.append(piece)
    return out


def step_key(step: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", step.lower()).split())


def _groups(steps: list[tuple[str, str]]) -> list[list[int]]:
    """Greedy groups of similar steps (indices into ``steps``), most frequent wording first."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    keys = [step_key(s) for _, s in steps]
    counts = Counter(keys)
    order = sorted(range(len(steps)), key=lambda i: (-counts[keys[i]], keys[i]))
    try:
        matrix = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True
        ).fit_transform(keys)
    except ValueError:
        return [[i] for i in order]
    similarity = (matrix @ matrix.T).toarray()
    taken = np.zeros(len(steps), dtype=bool)
    groups = []
    for i in order:
        if taken[i]:
            continue
        members = [j for j in np.flatnonzero((similarity[i] >= SAME_STEP) & ~taken)]
        taken[members] = True
        groups.append([int(j) for j in members])
    return groups


def family_steps(
    notes: Mapping[str, list[tuple[str, str]]], generic: set[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per family (id -> [(incident id, note)]), the steps its notes agree on:
    ``[{"text", "incidents", "incident_ids"}]`` in the order agents write them."""
    generic = generic if generic is not None else generic_steps(notes)
    out: dict[str, list[dict[str, Any]]] = {}
    for family, members in notes.items():
        members = members[:MAX_NOTES]
        steps: list[tuple[str, str]] = []
        position: list[float] = []
        for incident, note in members:
            pieces = split_steps(note)
            for n, piece in enumerate(pieces):
                if step_key(piece) not in generic:
                    steps.append((incident, piece))
                    position.append(n / max(len(pieces), 1))
        if not steps:
            continue
        total = len({i for i, _ in members})
        shown = []
        for group in _groups(steps):
            incidents = sorted({steps[j][0] for j in group})
            if len(incidents) < 2 or len(incidents) < MIN_AGREEMENT * total:
                continue
            shown.append(
                {
                    "text": steps[group[0]][1],
                    "incidents": len(incidents),
                    "incident_ids": incidents[:MAX_LINKED],
                    "_at": float(np.mean([position[j] for j in group])),
                }
            )
        shown.sort(key=lambda s: -s["incidents"])
        shown = sorted(shown[:MAX_STEPS], key=lambda s: s["_at"])
        for s in shown:
            del s["_at"]
        if shown:
            out[family] = shown
    return out


def generic_steps(notes: Mapping[str, Iterable[tuple[str, str]]]) -> set[str]:
    """Step wordings found in the notes of many families: boilerplate."""
    families_of: dict[str, set[str]] = defaultdict(set)
    for family, members in notes.items():
        for _, note in members:
            for piece in split_steps(note):
                families_of[step_key(piece)].add(family)
    limit = max(MIN_GENERIC_FAMILIES, GENERIC_SHARE * len(notes))
    return {key for key, fams in families_of.items() if len(fams) >= limit}


def steps_note(steps: list[dict[str, Any]]) -> str:
    """Suggested steps as plain text for a resolution note, one numbered step a line."""
    return numbered_steps(steps)
