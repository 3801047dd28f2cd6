"""The query path: one incident in, ranked prior resolutions out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from indexer.chunking import WINDOW_WORDS
from indexer.embedders import Embedder
from indexer.index_files import current_version, read_config
from kb.errors import IndexMismatchError, IndexMissingError, ValidationError
from kb.language import ENGLISH_ONLY, request_language
from kb.lexical import identifier_phrases
from kb.models import Suggestion, SuggestionResult
from kb.store import Store
from kb.store.suggestions import new_suggestion_id
from kb.text import normalise_text
from search.classifier import ResolutionClassifier, content_stems
from search.confidence import Judgement, TrustProfile, gather_evidence, unfitted_judgement
from search.duplicates import OpenIncidents, possible_duplicates
from search.feedback import compute_priors
from search.ranking import (
    LEXICAL_DEPTH,
    Blend,
    Filters,
    GroupScore,
    Viewer,
    lexical_candidates,
    rank_groups,
    result_confidence,
    retrieve,
)
from search.state import SearchState
from search.text import compose_query, highlight_snippet, matched_terms, search_terms, typed_text
from search.triage import TriageModels, neighbours, triage

log = logging.getLogger(__name__)

MAX_WINDOWS = 1
# What the model reads of a query, in word pieces (KB_QUERY_MAX_TOKENS): documents are
# embedded up to 256. On the development split of long bug reports, 112 ranked nearly as
# well (recall@10 0.717 vs 0.728 at 256; embeddings alone 1.5 points lower) and keeps a long
# report's suggest over HTTP under 60 ms at p95 on two cores.
QUERY_MAX_TOKENS = 256
_LEXICAL_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-lexical")
PRIORS_REFRESH_SECONDS = 5.0
SIMILAR_SHOWN = 5
# The second result shows its family's steps too when its confidence is at least this
# share of the first one's.
CLOSE_SECOND = 0.5


@dataclass
class SuggestRequest:
    title: str = ""
    description: str = ""
    k: int = 5
    incident_ref: str = ""
    filters: Filters = field(default_factory=Filters)
    viewer: Viewer = field(default_factory=Viewer)
    ranking: str = "shipped"  # or a reference ranking: dense, bm25, rrf (for kb eval)
    use_feedback: bool = True
    customer_tier: str = ""  # a top tier raises the suggested priority one step
    preview: bool = False  # kept aside until the agent acts on it (Store.settle_suggestion)


def query_windows(text: str) -> list[str]:
    """What the model reads of an incident: its title and the start of its description,
    one window of at most WINDOW_WORDS words (documents are chunked in windows of the
    same size). A long report's other terms reach the lexical half, which reads the
    whole text: on long bug reports a second or fourth window spread over the report
    added nothing measurable to recall@10 and cost 25-40 ms each."""
    lines = text.split("\n", 1)
    title = lines[0] if len(lines) > 1 and len(lines[0].split()) <= 30 else ""
    body = lines[1] if title else text
    words = body.split()
    if len(words) + len(title.split()) <= WINDOW_WORDS:
        return [text]
    piece = " ".join(words[:WINDOW_WORDS])
    return [f"{title}\n{piece}" if title else piece]


def shown_confidences(
    groups: list[GroupScore], cands, count: int, mapping: list[float]
) -> list[float]:
    """Confidence of the first ``count`` results: the top result's from the fitted map; a
    lower result never shows more than the one above it, nor more than the top result
    leaves (1 - its confidence): both cannot be the one right fix with high probability."""
    out: list[float] = []
    for position in range(count):
        value = result_confidence(groups, cands, position, mapping)
        if out:
            value = min(value, out[-1], 1.0 - out[0])
        out.append(max(value, 0.0))
    return out


def one_verdict(triage_out: dict) -> None:
    """Under "no good match" triage says the same: no prediction is sure, and the
    first-line hint (drawn from incidents that are not like this one) does not apply."""
    for name in ("category", "product", "assignment_group"):
        field_out = triage_out.get(name)
        if isinstance(field_out, dict):
            field_out["value"] = None
            field_out["not_sure"] = True
    first_line = triage_out.get("first_line")
    if isinstance(first_line, dict):
        first_line["applies"] = False
        first_line["text"] = ""
        first_line["note"] = "no good match: the similar incidents are not like this one"


def _unit_mean(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


class ResolutionSuggester:
    """Holds the embedder and the in-memory search state of one process.

    ``store_factory`` opens a new store connection (used by the background loader; every
    thread has its own connection).
    """

    def __init__(
        self,
        embedder: Embedder,
        index_root: Path,
        *,
        store_factory: Callable[[], Store],
        max_query_chars: int = 20000,
        refresh_seconds: float = 0.2,
        query_max_tokens: int = QUERY_MAX_TOKENS,
        embedder_loader: Callable[[dict], Embedder] | None = None,
        top_tiers: Sequence[str] = (),
        duplicate_hours: float = 72.0,
        duplicate_similarity: float = 0.85,
        follow: Callable[[Store], None] | None = None,
        on_missing: Callable[[], bool] | None = None,
        languages: frozenset[str] | None = ENGLISH_ONLY,
    ):
        self.embedder = embedder
        # The languages the model reads well (kb.language.model_languages; None: any).
        self.languages = languages
        self.top_tiers = tuple(top_tiers)
        self.open_incidents = OpenIncidents(embedder, duplicate_hours)
        self.duplicate_similarity = duplicate_similarity
        self.index_root = Path(index_root)
        self.store_factory = store_factory
        self.max_query_chars = max_query_chars
        self.query_max_tokens = query_max_tokens
        self.refresh_seconds = refresh_seconds
        self.embedder_loader = embedder_loader
        # On a shared database: look for index versions other nodes published, and build
        # one when this node has none (kb.app.replica).
        self.follow = follow
        self.on_missing = on_missing
        # One query searches on one thread: FAISS's OpenMP pool would otherwise spin on the
        # core that the FTS5 half of the query is using.
        faiss.omp_set_num_threads(1)
        self.state: SearchState | None = None
        self.priors: dict[str, float] = {}
        self._priors_version: tuple | None = None
        self._priors_checked = 0.0
        self._checked = 0.0
        self._lock = threading.Lock()
        self._loading: str | None = None
        self._classifier: tuple[ResolutionClassifier, dict] | None = None  # with its lead documents
        self._classifier_for = None
        self._trust: TrustProfile | None = None
        self._trust_for = None
        self._triage_models: tuple[object, TriageModels] | None = (
            None  # (profile, its decoded models)
        )

    # --- keeping the state current ----------------------------------------------------

    def ensure_state(self, store: Store) -> SearchState:
        """Load on first use; afterwards catch up with the store (at most every
        ``refresh_seconds``) and pick up newly published index versions."""
        with self._lock:
            if self.state is None:
                try:
                    self.state = SearchState.load(store, self.index_root, self.embedder.model_id)
                except IndexMissingError:
                    if self.on_missing is None or not self.on_missing():
                        raise
                    self.state = SearchState.load(store, self.index_root, self.embedder.model_id)
                self._checked = self._priors_checked = time.monotonic()
                self.refresh_priors(store, force=True)
                return self.state
        now = time.monotonic()
        if now - self._checked >= self.refresh_seconds:
            self._checked = now
            if self.follow is not None:
                self.follow(store)
            version = current_version(self.index_root)
            if (
                version
                and version not in (self.state.version, self.state.damaged_version)
                and self._loading != version
            ):
                self._start_reload(version)
            self.state.catch_up(store)
        if now - self._priors_checked >= PRIORS_REFRESH_SECONDS:
            self._priors_checked = now
            self.refresh_priors(store)
        return self.state

    def refresh_priors(self, store: Store, *, force: bool = False) -> None:
        """Recompute the feedback prior when a choice was recorded since the last time."""
        version = store.feedback_version()
        if not force and version == self._priors_version:
            return
        weight = self.state.profile.feedback_weight if self.state else 0.0
        self.priors = compute_priors(store, weight)
        self._priors_version = version

    def catch_up(self, store: Store) -> None:
        if self.state is not None:
            self.state.catch_up(store)

    def _start_reload(self, version: str) -> None:
        self._loading = version
        thread = threading.Thread(target=self._reload, args=(version,), daemon=True)
        thread.start()

    def _reload(self, version: str) -> None:
        """Load a newly published version beside the old one, then swap."""
        try:
            config = read_config(self.index_root, version)
            embedder = self.embedder
            if config.get("model_id") != embedder.model_id and self.embedder_loader:
                embedder = self.embedder_loader(config)
            store = self.store_factory()
            try:
                state = SearchState.load(store, self.index_root, embedder.model_id)
            finally:
                store.close()
            if state.damaged_version == version and self.state is not None:
                # The new version is unreadable: the one in memory keeps serving (and is
                # newer than whatever older version loaded in its place).
                self.state.damaged_version, self.state.damage = version, state.damage
                return
            with self._lock:
                self.embedder, self.state = embedder, state
        except IndexMismatchError as exc:
            log.warning("kept the current index: %s", exc)
        except Exception:  # a broken new version must not take down a serving worker
            log.exception("could not load index version %s; the current one keeps serving", version)
        finally:
            self._loading = None

    # --- answering ---------------------------------------------------------------------

    def embed_query(self, text: str) -> np.ndarray:
        windows = query_windows(text)
        clip = getattr(self.embedder, "clip", None)
        if clip is not None:
            windows = [clip(w, self.query_max_tokens) for w in windows]
        # An encoder may read queries its own way (indexer.onnx_backend.Int8DocumentsEmbedder).
        encode = getattr(self.embedder, "embed_queries", self.embedder.embed)
        return encode(windows, batch_size=MAX_WINDOWS)

    def _typed_query(self, store: Store, request: SuggestRequest, searched: str) -> str:
        """What a recorded suggestion keeps as its text: the incident as typed (cut to the
        query limit, redacted), which a pasted log's searched text (reordered, its error
        lines first) is not; showing the suggestion again re-searches it the same way."""
        typed = typed_text(request.title, request.description)[: self.max_query_chars]
        return searched if typed == searched else store.redactor.redact(typed)

    def suggest(
        self,
        store: Store,
        request: SuggestRequest,
        *,
        record: bool = True,
        principal: str = "",
    ) -> Suggestion:
        """Rank prior resolutions for one incident. Raises ValidationError on empty text."""
        began = time.perf_counter()
        text, truncated = compose_query(request.title, request.description, self.max_query_chars)
        # Searched as it would be stored: a pasted password or address is a placeholder on
        # both sides, and never reaches the embedder, FTS5 or the recorded suggestion.
        text = store.redactor.redact(text)
        if not text.strip():
            raise ValidationError("describe the incident: a title or a description is required")
        state = self.ensure_state(store)
        profile = state.profile
        language = request_language(text, self.languages)
        terms = search_terms(text, language["code"])
        # BM25 runs in SQLite (which releases the GIL) while the model embeds the query on
        # one thread (see SentenceTransformerEmbedder.embed): on two cores both finish
        # sooner than one after the other.
        phrases = identifier_phrases(text)
        lexical = _LEXICAL_POOL.submit(
            lexical_candidates, state, store, terms, LEXICAL_DEPTH, phrases
        )
        vectors = self.embed_query(text)
        cands = retrieve(state, store, vectors, terms, lexical=lexical.result())

        def accept(doc) -> bool:
            return request.viewer.can_see(doc) and request.filters.accept(doc)

        depth = max(profile.vote_depth, 3 * request.k)
        words = len(text.split())
        collapse = set(profile.collapse)
        class_logp = None
        if request.ranking == "shipped":
            blend = Blend.from_dict(profile.blend_for(words))
            class_logp, leads = self._class_evidence(state, vectors, text)
            groups = rank_groups(
                cands,
                state,
                blend,
                depth=depth,
                collapse=collapse,
                viewer=request.viewer,
                accept=accept,
                priors=self.priors if request.use_feedback else None,
                class_logp=class_logp,
                class_leads=leads,
            )
        else:
            groups = rank_groups(
                cands,
                state,
                Blend(request.ranking),
                depth=depth,
                collapse=collapse,
                viewer=request.viewer,
                accept=accept,
            )
        best_similarity = max(cands.dense.values(), default=0.0)
        shown = shown_confidences(
            groups, cands, min(request.k, len(groups)), profile.confidence_for(words)
        )
        trust = self._trust_profile(state) if request.ranking == "shipped" else None
        if trust is not None:
            judgement = trust.judge(
                groups,
                cands,
                gather_evidence(cands, state, class_logp),
                state,
                min(request.k, len(groups)),
                language.get("code") if trust.languages else None,
            )
        else:
            flagged = not groups or (
                request.ranking == "shipped" and best_similarity < profile.match_threshold
            )
            judgement = unfitted_judgement(shown, flagged)
        results = self._results(store, state, groups, terms, cands, judgement, request.k)
        no_good_match = not results or judgement.no_good_match
        suggestion = Suggestion(
            id=new_suggestion_id(),
            query=text,
            no_good_match=no_good_match,
            results=results,
            confidence=results[0].score if results else 0.0,
            truncated=truncated,
            threshold=profile.match_threshold,
            triage=triage(
                neighbours(cands.dense, state),
                profile.triage,
                customer_tier=request.customer_tier,
                top_tiers=self.top_tiers,
                models=self._triage_models_of(profile),
                vector=_unit_mean(vectors),
                doc_stems=content_stems(text),
                no_good_match=no_good_match,
                viewer=request.viewer,
                docs=state.docs,
            ),
            language=language,
            p_answerable=judgement.p_answerable,
            calibrated_for=judgement.language,
        )
        # Open incidents are other customers' and internal: never shown to the public.
        suggestion.triage["duplicates"] = (
            []
            if request.viewer.audience == "public"
            else possible_duplicates(
                self.open_incidents.current(store),
                vectors[0],
                exclude=request.incident_ref,
                product=request.filters.product,
                threshold=self.duplicate_similarity,
            )
        )
        if no_good_match:
            one_verdict(suggestion.triage)
        elif isinstance(suggestion.triage.get("first_line"), dict):
            suggestion.triage["first_line"].setdefault("applies", True)
        if record:
            store.record_suggestion(
                suggestion_id=suggestion.id,
                query=self._typed_query(store, request, text),
                title=normalise_text(request.title.strip()),
                results=[
                    {
                        "rank": r.rank,
                        "kind": r.kind,
                        "id": r.id,
                        "group": r.group,
                        "score": r.score,
                        "raw_score": r.raw_score,
                    }
                    for r in results
                ],
                no_good_match=no_good_match,
                confidence=suggestion.confidence,
                k=request.k,
                filters={"product": request.filters.product, "category": request.filters.category},
                incident_ref=request.incident_ref,
                principal=principal,
                predicted_group=(suggestion.triage.get("assignment_group") or {}).get("best_guess")
                or "",
                predicted_sure=not (suggestion.triage.get("assignment_group") or {}).get(
                    "not_sure", True
                ),
                model_id=self.embedder.model_id,
                latency_ms=round((time.perf_counter() - began) * 1000, 2),
                preview=request.preview,
            )
        return suggestion

    def _trust_profile(self, state: SearchState) -> TrustProfile | None:
        if self._trust_for is not state.profile:
            self._trust = TrustProfile.from_dict(state.profile.trust)
            self._trust_for = state.profile
        return self._trust

    def _triage_models_of(self, profile) -> TriageModels:
        cached = self._triage_models
        if cached is None or cached[0] is not profile:
            cached = self._triage_models = (profile, TriageModels(profile.triage))
        return cached[1]

    def _class_evidence(self, state: SearchState, vectors: np.ndarray, text: str):
        """The classifier's log-probabilities for this query, when the store keeps one
        (the ranking mixes them in as its blend says; the confidence reads them too)."""
        if not state.profile.classifier:
            return None, None
        if self._classifier_for is not state.profile:
            model = ResolutionClassifier.from_dict(state.profile.classifier)
            self._classifier = (model, model.lead_keys()) if model else None
            self._classifier_for = state.profile
        if self._classifier is None:
            return None, None
        model, leads = self._classifier
        mean = vectors.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        logp = model.log_proba(mean / norm if norm > 0 else mean, content_stems(text))
        return dict(zip(model.classes, logp.tolist(), strict=True)), leads

    def _results(
        self,
        store: Store,
        state: SearchState,
        groups: list[GroupScore],
        terms: list[str],
        cands,
        judgement: Judgement,
        k: int,
    ) -> list[SuggestionResult]:
        groups = groups[:k]
        shown = judgement.scores
        steps_shown = 2 if len(shown) > 1 and shown[1] >= CLOSE_SECOND * shown[0] else 1
        best_chunks = [g.members[0][2] for g in groups]
        texts = {row["id"]: row["text"] for row in store.chunk_rows(best_chunks)}
        results = []
        for rank, group in enumerate(groups, start=1):
            lead_key = (
                ("article", group.group[2:])
                if group.group.startswith("a:")
                else group.members[0][0]
            )
            lead = state.docs.get(lead_key) or state.docs[group.members[0][0]]
            snippet_source = texts.get(group.members[0][2], "")
            similar = []
            for key, _, cid in group.members:
                if key[0] == "incident" and key != lead.key:
                    # Cosine similarity of the incident's best chunk to the query, in [0, 1];
                    # "score" repeats it for clients written before "similarity" existed.
                    similarity = round(min(max(cands.dense.get(cid, 0.0), 0.0), 1.0), 4)
                    similar.append(
                        {
                            "id": key[1],
                            "title": state.docs[key].title,
                            "similarity": similarity,
                            "score": similarity,
                        }
                    )
            # The most similar first (members are in ranking order, which is not similarity).
            similar = sorted(similar, key=lambda s: -s["similarity"])[:SIMILAR_SHOWN]
            family = state.family(group.group)
            results.append(
                SuggestionResult(
                    rank=rank,
                    kind=lead.kind,
                    id=lead.id,
                    title=lead.title,
                    resolution=family.get("representative") or lead.resolution,
                    own_resolution=lead.resolution if family else "",
                    family={
                        "id": group.group,
                        "size": family.get("size", 0),
                        "representative_id": family.get("representative_id", ""),
                    }
                    if family
                    else {},
                    steps=list(family.get("steps") or []) if rank <= steps_shown else [],
                    resolution_code=[{"text": text, "block": block} for text, block in lead.code],
                    snippet=highlight_snippet(snippet_source, terms),
                    score=round(judgement.scores[rank - 1], 4),
                    confidence=(
                        None
                        if judgement.confidences[rank - 1] is None
                        else round(judgement.confidences[rank - 1], 4)
                    ),
                    confidence_band=judgement.bands[rank - 1],
                    raw_score=round(group.score, 4),
                    product=lead.product,
                    category=lead.category,
                    status=lead.status,
                    validated_at=lead.updated if lead.status == "validated" else "",
                    matched_terms=matched_terms(terms, snippet_source),
                    similar_incidents=similar,
                    similar_count=state.group_size(group.group),
                    group=group.group,
                )
            )
        return results
