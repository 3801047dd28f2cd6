"""The store: the only place that knows SQL.

SQLite (through sqlite-utils) is the embedded default. Everything outside ``kb/`` talks to
:class:`Store` verbs, so another backend can take its place.
"""

from __future__ import annotations

from pathlib import Path

from kb.redaction import Redactor
from kb.store.access import AccessMixin, Principal
from kb.store.base import StoreBase, utc_now
from kb.store.documents import DocumentsMixin, UpsertCounts
from kb.store.indexing import ChunkText, DocRef, IndexingMixin, LogEntry
from kb.store.metrics import MetricsMixin
from kb.store.privacy import PrivacyMixin
from kb.store.storms import StormsMixin
from kb.store.suggestions import FeedbackRecord, SuggestionsMixin


class Store(DocumentsMixin, IndexingMixin, SuggestionsMixin, AccessMixin, MetricsMixin, PrivacyMixin,
            StormsMixin, StoreBase):
    """One connection to the service's database. Open one per thread and per process."""


def open_store(home: str | Path, *, create: bool = True, redactor: Redactor | None = None) -> Store:
    """Open the store in a data home, creating the folder when asked.

    Raises FileNotFoundError when the home does not exist and create is False.
    """
    home = Path(home)
    if not home.exists():
        if not create:
            raise FileNotFoundError(home)
        home.mkdir(parents=True, exist_ok=True)
    return Store(home / "kb.sqlite3", redactor=redactor)


__all__ = [
    "ChunkText", "DocRef", "FeedbackRecord", "LogEntry", "Principal", "Store", "UpsertCounts",
    "open_store", "utc_now",
]
