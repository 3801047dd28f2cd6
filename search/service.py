"""One object that wires configuration, store, embedder, indexer and suggester together.

The CLI and the web app both use it; neither knows how the pieces fit.
Store connections are per thread; the embedder and the search state are loaded lazily,
so a forking server can create the service in each worker after the fork.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from indexer.embedders import Embedder, load_embedder, set_thread_counts
from indexer.index_files import indexing_lock
from indexer.pipeline import IndexReport, Progress, sync_documents, update_index
from indexer.vector_index import VectorIndex
from kb.config import Config
from kb.models import Incident
from kb.store import Store, UpsertCounts, open_store
from search.calibration import fit_profile
from search.state import SearchState
from search.suggester import ResolutionSuggester


class Service:
    def __init__(self, config: Config, *, embedder: Embedder | None = None):
        self.config = config
        self._embedder = embedder
        self._local = threading.local()
        self._suggester: ResolutionSuggester | None = None
        self._lock = threading.Lock()
        self._stores: list[Store] = []

    # --- resources ---------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.config.home_path

    @property
    def index_root(self) -> Path:
        return self.config.index_root

    def store(self) -> Store:
        """This thread's store connection (opened on first use)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.home)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def new_store(self) -> Store:
        return open_store(self.home)

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            return self._embedder

    def _load_embedder(self) -> Embedder:
        threads = self.config.cpu_threads()
        set_thread_counts(threads)
        return load_embedder(
            self.config.embed_backend, self.config.model,
            models_root=self.config.models_root, threads=threads,
        )

    def suggester(self) -> ResolutionSuggester:
        embedder = self.embedder()
        with self._lock:
            if self._suggester is None:
                self._suggester = ResolutionSuggester(
                    embedder, self.index_root, store_factory=self.new_store,
                    max_query_chars=self.config.max_query_chars,
                    refresh_seconds=self.config.index_refresh_seconds,
                    embedder_loader=self._reload_embedder,
                )
            return self._suggester

    def _reload_embedder(self) -> Embedder:
        from indexer.embedders import clear_embedder_cache

        clear_embedder_cache()
        embedder = self._load_embedder()
        with self._lock:
            self._embedder = embedder
        return embedder

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
        self._local = threading.local()

    # --- work --------------------------------------------------------------------------

    def index(self, *, rebuild: bool = False, progress: Progress | None = None,
              fit: bool = True) -> IndexReport:
        """Bring the index in step with the store, fit the ranking profile, publish.

        Raises BlockingIOError when another indexer holds the lock.
        """
        store = self.store()
        embedder = self.embedder()

        def fit_and_save(index: VectorIndex, seq: int) -> None:
            if not fit:
                return
            state = SearchState.from_index(store, index, embedder.model_id, seq)
            profile = fit_profile(store, state)
            store.save_ranking_profile(embedder.model_id, profile.to_dict())

        with indexing_lock(self.index_root):
            return update_index(
                store, embedder, self.index_root, rebuild=rebuild,
                batch_size=self.config.batch_size, progress=progress,
                before_publish=fit_and_save,
            )

    def upsert_incidents(self, incidents: Sequence[Incident], source: str = "api") -> UpsertCounts:
        """Store incidents and make them searchable right away (embedded in this call)."""
        store = self.store()
        counts = store.upsert_incidents(incidents, source=source)
        if counts.changed_ids:
            self.index_documents([("incident", i) for i in counts.changed_ids])
        return counts

    def index_documents(self, keys: Sequence[tuple[str, str]]) -> None:
        """Chunk and embed a few documents now, without publishing a new index version;
        every worker replays the change log on its next request."""
        store = self.store()
        to_index, to_unindex = store.index_changes_for(keys)
        if to_index:
            sync_documents(store, self.embedder(), to_index, batch_size=self.config.batch_size)
        for doc in to_unindex:
            store.unindex_doc(doc.kind, doc.id)
        if self._suggester is not None:
            self._suggester.catch_up(store)
