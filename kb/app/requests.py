"""The typed input and output of the service's use cases, as web/ and the CLI see them.

They are defined beside the code that reads them (the query path, the store, the
indexer); web/ and the CLI take them from here, so that neither imports those packages.
"""

from __future__ import annotations

from indexer.pipeline import Progress
from kb.store import Principal
from kb.store.flags import FLAG_KINDS
from search.ranking import Filters, Viewer
from search.suggester import Suggestion, SuggestRequest

__all__ = [
    "FLAG_KINDS",
    "Filters",
    "Principal",
    "Progress",
    "SuggestRequest",
    "Suggestion",
    "Viewer",
]
