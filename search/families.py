"""Resolution families: the same fix written in different words.

On a desk whose tickets close with a note written anew each time ("Reset AD password, user
confirmed" / "pw reset in AD + unlocked acct, cust can log in"), almost no two resolution
texts are equal, so grouping by identical text finds nothing to group. At ``kb index`` the
notes are grouped into families instead:

- a *note* is one distinct resolution text (after normalising case and punctuation) with
  the incidents closed with it; incidents resolved with a visible article are grouped by
  their article already and take no part;
- two notes are linked when their texts are near each other (cosine of character n-gram
  TF-IDF, which shrugs off abbreviations and typos; at least ``NOTE_SIMILARITY``) *and*
  their incidents agree (cosine of the incidents' mean embeddings at least the store's own
  "related" level: the background similarity of random incidents raised by
  ``INCIDENT_SHARE`` of the gap to a typical nearest neighbour). A canned first step pasted
  for unrelated problems links only incidents that are alike;
- a note repeated word for word by ``ESTABLISHED`` incidents or more is already a label the
  desk uses on purpose: it keeps its own group and joins no family;
- families are the connected groups of linked notes with at least two incidents. A family's
  id is stable (``f:`` and a hash of its lowest incident id), its representative note is the
  member note nearest all the others, and its size counts its incidents.

Families are labels: the search state gives each member incident its family as resolution
key, so grouping results, the replay that fits the ranking, the resolution classifier and
the confidence all see them (search.calibration).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.steps import split_steps, step_key

NOTE_SIMILARITY = 0.8
INCIDENT_SHARE = 0.75
ESTABLISHED = 5
NEIGHBOURS = 10
# Notes beyond this many are not grouped (the pairwise search grows with its square).
MAX_NOTES = 60_000
BLOCK = 1_000
EXAMPLES_SHOWN = 5
# A step wording in this many notes or more is boilerplate when its incidents are less alike
# than background + GENERIC_SHARE x (related level - background).
MIN_GENERIC_NOTES = 8
GENERIC_SHARE = 0.5


@dataclass
class Families:
    """Which resolution keys belong to which family, and what each family is."""

    key_of: dict[str, str] = field(default_factory=dict)  # resolution key -> family id
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # family id -> facts
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"key_of": self.key_of, "info": self.info, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Families:
        if not data:
            return cls()
        return cls(
            dict(data.get("key_of") or {}),
            dict(data.get("info") or {}),
            dict(data.get("summary") or {}),
        )


def family_id(incident_ids: list[str]) -> str:
    return "f:" + hashlib.sha1(min(incident_ids).encode("utf-8")).hexdigest()[:16]


class _Union:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def note_matrix(texts: list[str]):
    """Rows of L2-normalised character n-gram TF-IDF weights, one per note."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, dtype=np.float32
    )
    try:
        return vectoriser.fit_transform(texts)
    except ValueError:  # no n-gram in two notes: nothing to compare
        return None


def related_level(
    vectors: np.ndarray, rng: random.Random, share: float = INCIDENT_SHARE
) -> tuple[float, dict]:
    """The similarity from which two incidents count as about the same problem: random
    pairs' mean similarity raised by INCIDENT_SHARE of the gap to the typical nearest
    neighbour (both measured on a sample of the incidents)."""
    n = len(vectors)
    rows = rng.sample(range(n), min(n, 1500))
    sample = vectors[rows]
    sims = sample @ sample.T
    np.fill_diagonal(sims, -1.0)
    nearest = float(np.median(sims.max(axis=1)))
    np.fill_diagonal(sims, 0.0)
    background = float(sims.sum() / max(len(rows) * (len(rows) - 1), 1))
    level = background + share * max(nearest - background, 0.0)
    return level, {
        "background": round(background, 4),
        "nearest_neighbour": round(nearest, 4),
        "related_from": round(level, 4),
    }


def generic_step_keys(texts: list[str], rows_of: list[np.ndarray], level: float) -> set[str]:
    """Step wordings pasted for unrelated problems: a wording in MIN_GENERIC_NOTES notes or
    more whose incidents are, on average, less alike than ``level`` (a canned first step,
    a closing formula). ``rows_of[i]`` holds the unit vectors of note i's incidents."""
    holders: dict[str, list[int]] = defaultdict(list)
    for n, text in enumerate(texts):
        for step in {_shape(s) for s in split_steps(text)}:
            holders[step].append(n)
    out = set()
    rng = random.Random(len(texts))
    for step, notes in holders.items():
        if len(notes) < MIN_GENERIC_NOTES:
            continue
        sample = notes if len(notes) <= 2000 else rng.sample(notes, 2000)
        matrix = np.vstack([rows_of[n][0] for n in sample])
        total = matrix.sum(axis=0)
        cohesion = float((total @ total - len(sample)) / (len(sample) * (len(sample) - 1)))
        if cohesion < level:
            out.add(step)
    return out


def _shape(step: str) -> str:
    """A step's wording without numbers and identifiers ("resolved as reported in" for
    "Resolved as reported in AMQ-46"): a template filled with ids is one wording."""
    return " ".join(w for w in step_key(step).split() if not any(c.isdigit() for c in w))


def _specific_text(text: str, generic: set[str]) -> str:
    kept = [_shape(s) for s in split_steps(text) if _shape(s) not in generic]
    return " ; ".join(k for k in kept if k)


def find_families(
    notes: dict[str, tuple[str, list[str]]],
    vectors: Mapping[str, np.ndarray],
    *,
    seed: int = 13,
    note_similarity: float = NOTE_SIMILARITY,
    incident_share: float = INCIDENT_SHARE,
) -> Families:
    """Group ``notes`` (resolution key -> (note text, incident ids)) into families, using
    ``vectors`` (incident id -> unit vector) for the incidents' agreement."""
    keys = sorted(k for k, (_, ids) in notes.items() if any(i in vectors for i in ids))
    if len(keys) < 2:
        return Families(summary={"notes": len(keys), "families": 0})
    if len(keys) > MAX_NOTES:
        return Families(
            summary={
                "notes": len(keys),
                "families": 0,
                "note": f"{len(keys)} distinct notes (more than {MAX_NOTES}); not grouped",
            }
        )
    rng = random.Random(seed)
    members = {k: sorted(i for i in notes[k][1] if i in vectors) for k in keys}
    rows_of = [np.vstack([vectors[i] for i in members[k][:50]]).astype(np.float32) for k in keys]
    centres = np.vstack([_unit(r.mean(axis=0)) for r in rows_of])
    singles = np.vstack([r[0] for r in rows_of])
    level, info = related_level(singles, rng, incident_share)
    raw = [notes[k][0] for k in keys]
    generic = generic_step_keys(
        raw,
        rows_of,
        info["background"] + GENERIC_SHARE * (level - info["background"])
        if incident_share
        else level,
    )
    texts = [_specific_text(t, generic) for t in raw]
    matrix = note_matrix([t or "-" for t in texts])
    established = np.array([len(members[k]) >= ESTABLISHED for k in keys])
    empty = np.array([not t for t in texts])
    neighbours: list[np.ndarray] = []
    if matrix is not None:
        for start in range(0, len(keys), BLOCK):
            block = (matrix[start : start + BLOCK] @ matrix.T).toarray()
            agree = centres[start : start + BLOCK] @ centres.T
            ok = (block >= note_similarity) & (agree >= level)
            ok[:, empty] = False
            for offset in range(block.shape[0]):
                row = start + offset
                found = np.flatnonzero(ok[offset])
                found = found[(found != row) & ~established[found]]
                neighbours.append(found if not (empty[row] or established[row]) else found[:0])
    else:
        neighbours = [np.zeros(0, dtype=np.int64) for _ in keys]
    # Star groups: the note with the most links leads, and takes the notes linked to it
    # directly; no chain of links joins two notes that are not both near one leader.
    weight = np.array([len(members[k]) for k in keys], dtype=np.int64)
    degree = np.array([weight[n].sum() + weight[row] for row, n in enumerate(neighbours)])
    taken = np.zeros(len(keys), dtype=bool)
    out = Families()
    sizes = []
    links = int(sum(len(n) for n in neighbours))
    for lead in np.argsort(-degree, kind="stable"):
        if taken[lead]:
            continue
        rows = [int(lead)] + [int(r) for r in neighbours[lead] if not taken[r]]
        taken[rows] = True
        ids = [i for r in rows for i in members[keys[r]]]
        if len(rows) < 2 or len(ids) < 2:
            continue
        fid = family_id(ids)
        rep = _representative(rows, matrix, members, keys)
        for r in rows:
            out.key_of[keys[r]] = fid
        out.info[fid] = {
            "size": len(ids),
            "notes": len(rows),
            "representative": notes[keys[rep]][0],
            "representative_id": members[keys[rep]][0],
        }
        sizes.append(len(ids))
    out.summary = {
        "notes": len(keys),
        "families": len(out.info),
        "links": links,
        "incidents_grouped": sum(sizes),
        "incidents": sum(len(m) for m in members.values()),
        "largest": max(sizes, default=0),
        "generic_steps": len(generic),
        "note_similarity": note_similarity,
        **info,
    }
    return out


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _representative(rows: list[int], matrix, members: dict[str, list[str]], keys: list[str]) -> int:
    """The member note nearest all the others (weighted by how many incidents each has)."""
    if matrix is None or len(rows) == 1:
        return rows[0]
    sample = rows if len(rows) <= 400 else random.Random(len(rows)).sample(rows, 400)
    sub = matrix[sample]
    weights = np.array([len(members[keys[r]]) for r in sample], dtype=np.float32)
    centre = np.asarray(sub.T @ weights).ravel()
    scores = np.asarray(sub @ centre).ravel()
    return sample[int(np.argmax(scores))]


def examples(families: Families, limit: int | None = EXAMPLES_SHOWN) -> list[dict[str, Any]]:
    """The largest families (all of them when ``limit`` is None), for kb index to show."""
    ranked = sorted(families.info.items(), key=lambda item: (-item[1]["size"], item[0]))
    return [
        {"family": fid, **facts} for fid, facts in (ranked if limit is None else ranked[:limit])
    ]


def purity(
    key_of: Mapping[str, str], label_of: Mapping[str, str], family_of_incident: Mapping[str, str]
) -> dict:
    """How well families agree with known labels (for development measurements): the share
    of grouped incidents whose family's majority label is their own."""
    by_family: dict[str, Counter] = defaultdict(Counter)
    for incident, fid in family_of_incident.items():
        if incident in label_of:
            by_family[fid][label_of[incident]] += 1
    total = sum(sum(c.values()) for c in by_family.values())
    agree = sum(c.most_common(1)[0][1] for c in by_family.values())
    return {
        "families": len(by_family),
        "incidents": total,
        "purity": round(agree / total, 4) if total else None,
    }


def store_notes(state, viewer_can_see) -> dict[str, tuple[str, list[str]]]:
    """Resolution key -> (note, incident ids) for incidents not resolved with a visible
    article (those are grouped by their article)."""
    notes: dict[str, tuple[str, list[str]]] = {}
    for (kind, doc_id), doc in state.docs.items():
        if kind != "incident" or not doc.res_key:
            continue
        article = state.docs.get(("article", doc.article_id)) if doc.article_id else None
        if article is not None and viewer_can_see(article):
            continue
        if doc.res_key in notes:
            notes[doc.res_key][1].append(doc_id)
        else:
            notes[doc.res_key] = (doc.resolution, [doc_id])
    return notes
