"""Open incidents of the last days: possible duplicates of a new one, and storms (many alike
open incidents in a short window).

Each process keeps the recent open incidents' vectors (embedded once, through the store's
vector cache, so other workers reuse them). The set is reloaded as soon as an open incident
arrives, changes or closes (a cheap indexed count tells), and every few seconds as the window
moves on.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from indexer.embedders import Embedder
from kb.names import name_key
from kb.store import Store

OPEN_MODEL_PREFIX = "open:"  # vector-cache namespace of open-incident texts
REFRESH_SECONDS = 2.0


@dataclass
class OpenIncident:
    id: str
    title: str
    product: str
    opened: datetime


def parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def text_of(row: dict) -> str:
    return f"{row['title']}\n{row['description']}"[:2000].strip()


class OpenIncidents:
    """The open incidents opened within ``hours``, with their unit vectors."""

    def __init__(self, embedder: Embedder, hours: float):
        self.embedder, self.hours = embedder, hours
        self.items: list[OpenIncident] = []
        self.matrix = np.zeros((0, embedder.dimension), dtype=np.float32)
        self._checked = 0.0
        self._signature: tuple | None = None
        self._lock = threading.Lock()

    def current(
        self, store: Store, *, now: datetime | None = None, force: bool = False
    ) -> OpenIncidents:
        """The set, reloaded when an open incident arrived or changed since (one indexed
        count per call), and at least every REFRESH_SECONDS as the window moves on."""
        signature = store.open_incidents_signature()
        if (
            not force
            and signature == self._signature
            and time.monotonic() - self._checked < REFRESH_SECONDS
        ):
            return self
        with self._lock:
            self._load(store, now or datetime.now(UTC))
            self._checked, self._signature = time.monotonic(), signature
        return self

    def _load(self, store: Store, now: datetime) -> None:
        since = (now - timedelta(hours=self.hours)).strftime("%Y-%m-%dT%H:%M:%S")
        rows = store.recent_open_incidents(since)
        texts = [text_of(r) for r in rows]
        hashes = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        model = OPEN_MODEL_PREFIX + self.embedder.model_id
        cached = store.cached_vectors(model, hashes)
        missing = [i for i, h in enumerate(hashes) if h not in cached]
        if missing:
            vectors = self.embedder.embed([texts[i] for i in missing])
            fresh = {hashes[i]: vectors[row] for row, i in enumerate(missing)}
            store.put_vectors(model, fresh)
            cached.update({h: np.asarray(v, dtype=np.float32).tobytes() for h, v in fresh.items()})
        items, vectors = [], []
        for row, digest in zip(rows, hashes, strict=True):
            opened = parse_time(row["opened"]) or now
            items.append(OpenIncident(row["id"], row["title"], row["product"], opened))
            vectors.append(np.frombuffer(cached[digest], dtype=np.float32))
        self.items = items
        self.matrix = (
            np.vstack(vectors)
            if vectors
            else np.zeros((0, self.embedder.dimension), dtype=np.float32)
        )


def possible_duplicates(
    open_set: OpenIncidents,
    query: np.ndarray,
    *,
    exclude: str = "",
    product: str = "",
    threshold: float,
    limit: int = 3,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Open incidents as alike as ``threshold`` (cosine), same product when both say one."""
    if not len(open_set.items):
        return []
    now = now or datetime.now(UTC)
    scores = open_set.matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
    out = []
    for row in np.argsort(-scores):
        item, score = open_set.items[int(row)], float(scores[int(row)])
        if score < threshold or len(out) >= limit:
            break
        if item.id == exclude or (
            product and item.product and name_key(item.product) != name_key(product)
        ):
            continue
        out.append(
            {
                "id": item.id,
                "title": item.title,
                "status": "open",
                "product": item.product,
                "opened_at": item.opened.isoformat().replace("+00:00", "Z"),
                "age": age_words(now - item.opened),
                "similarity": round(min(score, 1.0), 4),
            }
        )
    return out


def age_words(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    return f"{hours // 24} days ago"


def find_storms(
    open_set: OpenIncidents,
    *,
    window_minutes: float,
    min_size: int,
    similarity: float,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Clusters of alike open incidents opened within the last ``window_minutes``: leader
    clustering in time order (each joins the first cluster whose leader it is as alike as
    ``similarity``), kept when at least ``min_size`` large. A storm's id is its leader's."""
    now = now or datetime.now(UTC)
    since = now - timedelta(minutes=window_minutes)
    order = sorted(
        (i for i, item in enumerate(open_set.items) if item.opened >= since),
        key=lambda i: open_set.items[i].opened,
    )
    leaders: list[int] = []
    members: dict[int, list[int]] = {}
    for index in order:
        vector = open_set.matrix[index]
        for leader in leaders:
            if float(open_set.matrix[leader] @ vector) >= similarity:
                members[leader].append(index)
                break
        else:
            leaders.append(index)
            members[index] = [index]
    storms = []
    for leader in leaders:
        group = members[leader]
        if len(group) < min_size:
            continue
        items = [open_set.items[i] for i in group]
        centre = open_set.matrix[group].mean(axis=0)
        central = items[int(np.argmax(open_set.matrix[group] @ centre))]
        lead = open_set.items[leader]
        storms.append(
            {
                "id": "storm-" + hashlib.sha1(lead.id.encode("utf-8")).hexdigest()[:12],
                "title": central.title,
                "size": len(items),
                "product": central.product,
                "first": {"id": items[0].id, "opened_at": _iso(items[0].opened)},
                "latest": {"id": items[-1].id, "opened_at": _iso(items[-1].opened)},
                "incidents": [i.id for i in items],
            }
        )
    return storms


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
