"""One object that wires configuration, store, embedder, indexer and suggester together.

The CLI and the web app both use it; neither knows how the pieces fit.
Store connections are per thread; the embedder and the search state are loaded lazily,
so a forking server can create the service in each worker after the fork.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.chunking import text_hash
from indexer.embedders import Embedder, load_embedder, resolve_model_folder, set_thread_counts
from indexer.index_files import current_version, indexing_lock, read_config
from indexer.pipeline import IndexReport, Progress, embed_missing, sync_documents, update_index
from indexer.vector_index import VectorIndex
from kb.app.replica import ReplicaFollower
from kb.config import DEFAULT_EMBED_BACKEND, Config, backend_of_model
from kb.errors import KBError
from kb.home import legacy_key
from kb.language import ENGLISH_ONLY, model_languages
from kb.models import Incident
from kb.redaction import Redactor
from kb.store import Store, UpsertCounts, open_store
from search.calibration import fit_profile
from search.profile import RankingProfile
from search.state import SearchState
from search.suggester import ResolutionSuggester, Suggestion, SuggestRequest


class ProfileRejected(KBError):
    """The profile fitted on a new index did not pass the caller's check; nothing was published."""


class Service:
    def __init__(self, config: Config, *, embedder: Embedder | None = None):
        self.config = config
        self._embedder = embedder
        self._local = threading.local()
        self._suggester: ResolutionSuggester | None = None
        self._lock = threading.Lock()
        self._stores: list[Store] = []
        self.redactor = Redactor(config.redact_kinds, phone_regions=config.phone_regions)
        # On a shared database this node builds its own index versions from the stored vectors.
        self.follower = (
            ReplicaFollower(
                self.index_root,
                self.new_store,
                lambda: self.embedder().dimension,
                config.forced_index_kind,
            )
            if config.database_url
            else None
        )

    # --- resources ---------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.config.home_path

    @property
    def index_root(self) -> Path:
        return self.config.index_root

    @property
    def database_url(self) -> str:
        return self.config.database_url

    def store(self) -> Store:
        """This thread's store connection (opened on first use)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self.new_store()
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def new_store(self) -> Store:
        return open_store(self.home, database_url=self.database_url, redactor=self.redactor)

    def session_key(self) -> str:
        """The key that signs session cookies: KB_SECRET_KEY, else the one kept in the
        database (made once; a home's older key file is adopted). Reads through a
        connection of its own, closed at once: a server calls this before it forks."""
        if self.config.secret_key:
            return self.config.secret_key
        with self.new_store() as store:
            return store.setting_or_create(
                "session_key", lambda: legacy_key(self.config) or secrets.token_hex(32)
            )

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            return self._embedder

    def use_embedder(self, embedder: Embedder) -> None:
        """Serve with another embedder from now on (after `kb tune` switched models)."""
        with self._lock:
            self._embedder = embedder
            self._suggester = None

    def drop_search_state(self) -> None:
        """Let go of the in-memory search state (built again on the next search)."""
        with self._lock:
            self._suggester = None

    def model_folder(self, index_config: dict | None = None) -> Path:
        """The model in use: KB_MODEL if set, else the one the current index was built
        with (so a tuned model keeps serving), else the packaged all-MiniLM-L6-v2."""
        if index_config is None:
            try:
                index_config = read_config(self.index_root)
            except KBError:
                index_config = {}
        return resolve_model_folder(
            self.config.model, index_config.get("model_path", ""), self.home
        )

    def embed_backend(self, index_config: dict | None = None) -> str:
        """KB_EMBED_BACKEND if set, else the encoder the current index was built with (an
        index made before the default changed keeps serving), else the default."""
        if self.config.embed_backend:
            return self.config.embed_backend
        if index_config is None:
            try:
                index_config = read_config(self.index_root)
            except KBError:
                index_config = {}
        return backend_of_model(index_config.get("model_id", "")) or DEFAULT_EMBED_BACKEND

    def _load_embedder(self, index_config: dict | None = None) -> Embedder:
        threads = self.config.cpu_threads()
        set_thread_counts(threads)
        backend = self.embed_backend(index_config)
        folder = None if backend == "hashing" else self.model_folder(index_config)
        return load_embedder(
            backend, folder, threads=threads, cache_dir=self.home / "models" / "onnx"
        )

    def embedder_for_folder(self, folder: Path, *, threads: int | None = None) -> Embedder:
        """Another model folder (a tuned model, or the one before it) through this home's
        encoder, so that its vectors are made, cached and served as the current model's are."""
        backend = self.embed_backend()
        if backend == "hashing":
            raise KBError("the hashing encoder has no model folder to load")
        return load_embedder(
            backend,
            Path(folder),
            threads=threads or self.config.cpu_threads(),
            cache_dir=self.home / "models" / "onnx",
        )

    def model_path_for_index(self, embedder: Embedder) -> str:
        """How the index config names its model: relative to the data home when the model
        lives there (tuned versions), absolute otherwise."""
        folder = getattr(embedder, "folder", None)
        if folder is None:
            return ""
        folder = Path(folder).resolve()
        try:
            return str(folder.relative_to(self.home))
        except ValueError:
            return str(folder)

    # --- use cases: what web/ and the CLI ask of the service ----------------------------

    def suggest(
        self, request: SuggestRequest, *, caller: str = "", record: bool = True
    ) -> Suggestion:
        """Rank prior resolutions for one incident; unless ``record`` is false, record the
        suggestion for ``caller`` (who may then record the choice). Raises ValidationError
        on an empty text, IndexMissingError before the first index."""
        return self.suggester().suggest(self.store(), request, record=record, principal=caller)

    def stored_incident(self, incident_id: str) -> Incident:
        """An incident the store holds (ask only once: search it by its id). Raises NotFoundError."""
        return self.store().get_incident(incident_id)

    def search_state(self) -> SearchState:
        """The search state this worker serves (loading the index when needed)."""
        return self.suggester().ensure_state(self.store())

    def published_version(self) -> str | None:
        """The newest index version on disk (a worker switches to it in the background)."""
        return current_version(self.index_root)

    def suggester(self) -> ResolutionSuggester:
        embedder = self.embedder()
        with self._lock:
            if self._suggester is None:
                self._suggester = ResolutionSuggester(
                    embedder,
                    self.index_root,
                    store_factory=self.new_store,
                    max_query_chars=self.config.max_query_chars,
                    query_max_tokens=self.config.query_max_tokens,
                    refresh_seconds=self.config.index_refresh_seconds,
                    embedder_loader=self._embedder_for_index,
                    top_tiers=self.config.top_tier_names,
                    duplicate_hours=self.config.duplicate_hours,
                    duplicate_similarity=self.config.duplicate_similarity,
                    follow=self.follower.check if self.follower else None,
                    on_missing=self.follower.ensure if self.follower else None,
                    languages=self.model_languages(),
                )
            return self._suggester

    def model_languages(self) -> frozenset[str] | None:
        """The languages the model in use reads well (None: any): KB_MODEL_LANGUAGES, else
        the model folder's card (kb.language.model_languages)."""
        if self.config.model_languages:
            return model_languages(None, self.config.model_languages)
        if self.embed_backend() == "hashing":
            return ENGLISH_ONLY
        try:
            return model_languages(self.model_folder())
        except KBError:
            return ENGLISH_ONLY

    def _embedder_for_index(self, index_config: dict) -> Embedder:
        """The embedder a newly published index needs (after `kb tune` switched models)."""
        embedder = self._load_embedder(index_config)
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

    def index(
        self,
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        fit: bool = True,
        embedder: Embedder | None = None,
        cluster: str | None = None,
        cluster_workers: int | None = None,
        say: Callable[[str], None] | None = None,
        accept: Callable[[RankingProfile], str] | None = None,
    ) -> IndexReport:
        """Bring the index in step with the store, fit the ranking profile, publish.

        ``embedder`` switches models (kb tune): every chunk is embedded with it and the
        index is rebuilt; until it is published the current one keeps serving.
        ``cluster`` embeds the texts the vector cache lacks on a Ray cluster (indexer.cluster).
        ``accept(profile)`` sees the ranking profile fitted on the new index before anything
        is saved or published; a non-empty answer (the reason) stops here with ProfileRejected.
        Raises BlockingIOError when another indexer holds the lock.
        """
        embedder = embedder or self.embedder()
        if cluster:
            from indexer.cluster import cluster_embedder

            backend = self.embed_backend()
            folder = (
                None
                if backend == "hashing"
                else Path(getattr(embedder, "folder", None) or self.model_folder())
            )
            with cluster_embedder(
                cluster,
                embedder,
                backend=backend,
                folder=folder,
                cache_dir=self.home / "models" / "onnx",
                workers=cluster_workers,
                threads=1,
                say=say or (lambda message: None),
            ) as bulk:
                return self._index(
                    rebuild=rebuild,
                    progress=progress,
                    fit=fit,
                    embedder=embedder,
                    bulk=bulk,
                    accept=accept,
                )
        return self._index(
            rebuild=rebuild,
            progress=progress,
            fit=fit,
            embedder=embedder,
            bulk=embedder,
            accept=accept,
        )

    def _index(
        self,
        *,
        rebuild: bool,
        progress: Progress | None,
        fit: bool,
        embedder: Embedder,
        bulk: Embedder,
        accept: Callable[[RankingProfile], str] | None = None,
    ) -> IndexReport:
        store = self.store()
        summary: dict = {}

        def fit_and_save(index: VectorIndex, seq: int) -> None:
            if not fit:
                return
            state = SearchState.from_index(store, index, embedder.model_id, seq)
            profile = fit_profile(
                store, state, embed=lambda texts: self._embed_cached(store, embedder, texts)
            )
            reason = accept(profile) if accept is not None else ""
            if reason:
                raise ProfileRejected(reason)
            store.save_ranking_profile(embedder.model_id, profile.to_dict())
            summary.update(profile.summary())

        model_path = self.model_path_for_index(embedder)
        with indexing_lock(self.index_root), store.indexer_lock():
            if not rebuild:
                current = self._current_index_if_up_to_date(store, embedder, model_path, fit=fit)
                if current is not None:
                    return IndexReport(
                        version=current["version"],
                        unchanged=True,
                        vectors=int(current.get("count", 0)) - len(current.get("tombstones", [])),
                    )
            report = update_index(
                store,
                bulk,
                self.index_root,
                rebuild=rebuild,
                batch_size=self.config.batch_size,
                progress=progress,
                before_publish=fit_and_save,
                meta={
                    "model_path": model_path,
                    "database_id": store.database_id(),
                    "erasures": store.finished_erasures(),
                },
                kind=self.config.forced_index_kind,
            )
            # Every node sharing the database builds a replica of this version.
            config = read_config(self.index_root, report.version)
            store.record_index_version(
                report.version,
                embedder.model_id,
                model_path,
                int(config["log_seq"]),
                config["built_at"],
            )
        report.ranking = summary
        return report

    def _current_index_if_up_to_date(
        self, store: Store, embedder: Embedder, model_path: str, *, fit: bool
    ) -> dict | None:
        """The published version's config when it already holds exactly what the store
        holds, for this model and settings, with a fitted profile: publishing again would
        change nothing. None otherwise (anything to embed, remove or replay; another model,
        index kind or database; an erasure since; no profile; unreadable files)."""
        try:
            config = read_config(self.index_root)
        except KBError:
            return None
        vectors = self.index_root / str(config.get("version", "")) / "vectors.faiss"
        forced = self.config.forced_index_kind
        same = (
            config.get("model_id") == embedder.model_id
            and config.get("model_path", "") == model_path
            and int(config.get("log_seq", -1)) == store.log_head()
            and int(config.get("store_chunks", -1)) == store.count_chunks()
            and config.get("erasures") == store.finished_erasures()
            and config.get("database_id") == store.database_id()
            and (not forced or config.get("index_kind") == forced)
            and vectors.is_file()
            and vectors.stat().st_size > 0
        )
        if not same or store.docs_to_index() or store.docs_to_unindex():
            return None
        if store.chunks_without_vectors(embedder.model_id):
            return None
        if fit and store.latest_ranking_profile(embedder.model_id) is None:
            return None
        return config

    def prepare_node(self, progress) -> None:
        """Before a node on a shared database serves: its lexical index and an index
        version of its own, built from the database (reports each step)."""
        if self.follower is None:
            return
        store = self.store()
        progress(
            f"database {store.where}: {store.count_incidents()} incidents, {store.count_chunks()} chunks"
        )
        began = time.monotonic()
        store.lexical()
        progress(f"lexical index of this node up to date ({time.monotonic() - began:.1f} s)")
        self.follower.prepare(progress)

    def _embed_cached(self, store: Store, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts through the store's content-hash cache (embedded once per model)."""
        hashes = [text_hash(t) for t in texts]
        embed_missing(
            store,
            embedder,
            dict(zip(hashes, texts, strict=True)),
            batch_size=self.config.batch_size,
        )
        cached = store.cached_vectors(embedder.model_id, hashes)
        return np.vstack([np.frombuffer(cached[h], dtype=np.float32) for h in hashes])

    def upsert_incidents(self, incidents: Sequence[Incident], source: str = "api") -> UpsertCounts:
        """Store incidents and make them searchable right away (embedded in this call). Product
        and category names take the spelling already in use ("laptops" -> "Laptops")."""
        from kb.importers import normalise_names

        store = self.store()
        incidents = list(incidents)
        if any(i.product or i.category for i in incidents):
            normalise_names(incidents, self._names_in_use(store))
        counts = store.upsert_incidents(incidents, source=source)
        if counts.changed_ids:
            self.index_documents([("incident", i) for i in counts.changed_ids])
        return counts

    def _names_in_use(self, store: Store) -> dict[str, list[str]]:
        """Product and category names in use: from the search state when it is loaded (no
        query), else from the store."""
        state = self._suggester.state if self._suggester is not None else None
        if state is not None:
            return {name: sorted(state.docs.distinct(name)) for name in ("product", "category")}
        return {name: store.names_in_use(name) for name in ("product", "category")}

    def catch_up(self) -> None:
        """Bring this process's search state in step with the store now (not at the next
        refresh): after an erasure, it must not offer the erased documents again."""
        if self._suggester is not None:
            self._suggester.catch_up(self.store())

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
