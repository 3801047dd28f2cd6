"""What one process keeps in memory to answer queries, kept in step with the store.

A state is the published FAISS index plus the change log replayed after it, the map from
chunk to document, the fields of each searchable document, and the ranking profile.
``catch_up`` replays new log entries (an incident posted a moment ago on another worker);
a newly published index version is loaded beside the old state and swapped in whole.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.index_files import load_index
from indexer.vector_index import VectorIndex
from kb.articles import article_sections, text_segments
from kb.store import Store
from search.doc_table import ChunkDocs, DocTable
from search.profile import RankingProfile

log = logging.getLogger(__name__)

DocKey = tuple[str, str]


@dataclass(slots=True)
class DocInfo:
    kind: str
    id: str
    title: str
    resolution: str
    product: str
    category: str
    status: str
    audience: str
    article_id: str
    updated: str
    review_by: str
    res_key: str
    code: tuple[tuple[str, bool], ...] = ()  # code in the resolution: (text, is_block)
    # Routing facts of an incident (search.triage): where it went, how urgent, escalated.
    assignment_group: str = ""
    priority: str = ""
    escalated: str = ""

    @property
    def key(self) -> DocKey:
        return (self.kind, self.id)


def normalise_resolution(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@functools.lru_cache(maxsize=100_000)
def resolution_key(text: str) -> str:
    normal = normalise_resolution(text)
    return "r:" + hashlib.sha1(normal.encode("utf-8")).hexdigest()[:16] if normal else ""


def article_resolution(body: str, limit: int = 600) -> tuple[str, tuple[tuple[str, bool], ...]]:
    """The Resolution section of an article (else the start of the body) as the "Fix"
    shown to agents: plain text of at most about ``limit`` characters, and the code in it
    as ``(code, is_block)`` in order, so a page can show it as code. Code is never cut: a
    command that does not fit is left out whole, and the text ends with "…"."""
    sections = article_sections(body)
    source = body
    for heading, text in sections:
        if heading.lower().startswith(("resolution", "fix", "solution", "workaround")):
            source = text
            break
    out: list[str] = []
    codes: list[tuple[str, bool]] = []
    size = 0
    for kind, text in text_segments(source):
        if kind == "break":
            if out and not out[-1].endswith((" ", "\n")):
                out.append(" ")
                size += 1
            continue
        if kind == "text":
            core = " ".join(text.split())
            lead = " " if text[:1].isspace() and not (out and out[-1].endswith((" ", "\n"))) else ""
            trail = " " if text[-1:].isspace() and core else ""
            text = lead + core + trail
            if not text:
                continue
            if size + len(text) > limit:
                cut = text.rfind(" ", 0, max(0, limit - size))
                out.append(text[:cut].rstrip() + "…" if cut > 0 else "…")
                break
        else:
            if size + len(text) > limit:
                out.append("…")
                break
            if kind == "block":
                if out and out[-1].endswith(" "):
                    out[-1] = out[-1].rstrip(" ")
                text = ("\n" if out and not out[-1].endswith("\n") else "") + text + "\n"
            codes.append((text.strip("\n") if kind == "block" else text, kind == "block"))
        out.append(text)
        size += len(text)
    return "".join(out).strip(), tuple(codes)


def _shared(value: str | None) -> str:
    """One copy of values that repeat across many documents (product, status, a resolution
    note used for hundreds of incidents): a large store keeps a million of them in memory."""
    return sys.intern(value) if value else ""


def doc_from_row(kind: str, row: dict, families: Mapping[str, str] | None = None) -> DocInfo:
    """A document's fields; ``families`` maps an incident's resolution key to its family
    (search.families), which then stands for the resolution."""
    if kind == "incident":
        resolution = _shared(row["resolution"])
        key = resolution_key(resolution)
        if families:
            key = families.get(key, key)
        return DocInfo(
            kind="incident",
            id=row["id"],
            title=row["title"] or "",
            resolution=resolution,
            product=_shared(row["product"]),
            category=_shared(row["category"]),
            status=_shared(row["status"]),
            audience="internal",
            article_id=_shared(row["article_id"]),
            updated=row["resolved_at"] or "",
            review_by="",
            res_key=key,
            assignment_group=_shared(row.get("assignment_group")),
            priority=_shared(row.get("priority")),
            escalated=_shared(row.get("escalated")),
        )
    resolution, code = article_resolution(row["body"] or "")
    return DocInfo(
        kind="article",
        id=row["id"],
        title=row["title"] or "",
        resolution=resolution,
        code=code,
        product=row["product"] or "",
        category=row["category"] or "",
        status=row["status"] or "",
        audience=row["audience"] or "internal",
        article_id=row["id"],
        updated=row["updated"] or "",
        review_by=row["review_by"] or "",
        res_key="",
    )


# Term counts a search state remembers (a few MB) before it starts afresh.
TERM_COUNTS_KEPT = 200_000
# From this many chunks a search state reads the counts of frequent terms when it loads
# (a scan of FTS5's vocabulary: about 2 s at a million chunks); a term is frequent from
# FREQUENT_TERM_CHUNKS chunks or a thousandth of the store.
FREQUENT_TERMS_FROM_CHUNKS = 50_000
FREQUENT_TERM_CHUNKS = 500


class SearchState:
    def __init__(
        self,
        index: VectorIndex,
        *,
        model_id: str,
        version: str,
        seq: int,
        profile: RankingProfile,
    ):
        self.index = index
        self.model_id = model_id
        self.version = version
        self.seq = seq
        self.profile = profile
        self.docs = DocTable()
        self.chunk_doc = ChunkDocs((), self.docs)
        self.article_incidents: Counter[str] = Counter()
        self.resolution_incidents: Counter[str] = Counter()
        self.lock = threading.RLock()
        # Set when the published version could not be read and an older one serves.
        self.damaged_version = ""
        self.damage = ""
        self._term_counts: dict[str, int] = {}
        self._frequent_terms: dict[str, int] = {}

    @property
    def family_keys(self) -> dict[str, str]:
        """Resolution key -> family id, from the profile (search.families)."""
        return (self.profile.families or {}).get("key_of") or {}

    def family(self, group: str) -> dict:
        """What a family group is (size, representative note), or {} for other groups."""
        if not group.startswith("f:"):
            return {}
        return ((self.profile.families or {}).get("info") or {}).get(group, {})

    def use_families(self, store: Store, families: dict) -> None:
        """Take these families (search.families.Families.to_dict()) as the resolution keys
        of their incidents, reading the documents again."""
        self.profile.families = families
        self._load_documents(store)

    @property
    def chunk_total(self) -> int:
        return len(self.chunk_doc)

    def term_counts(self, store: Store, stems: list[str]) -> dict[str, int]:
        """How many chunks hold each stemmed term (absent terms left out), remembered.

        FTS5's vocabulary table counts a term's chunks by reading its whole posting list,
        about as costly as searching for it: on a store of a million chunks the lookups for
        one long query took longer than the search. Counts only choose which terms are worth
        searching (BM25 itself reads FTS5's live statistics), so a count that lags a few new
        incidents behind does no harm; the memory starts afresh with each index version and
        when it holds TERM_COUNTS_KEPT terms. Terms not found are asked again each time, so a
        word that first arrives with a new incident is searchable at once.
        """
        known = self._term_counts
        missing = [s for s in dict.fromkeys(stems) if s and s not in known]
        if missing:
            found = store.term_document_counts(missing)
            if len(known) + len(found) > TERM_COUNTS_KEPT:
                known.clear()
                known.update(self._frequent_terms)
            known.update(found)
        return {s: known[s] for s in stems if s in known}

    def _learn_frequent_terms(self, store: Store) -> None:
        """On a large store, read once the counts of the terms that are costly to count
        (the frequent ones), so that no query has to; rare terms are cheap to look up."""
        if self.chunk_total < FREQUENT_TERMS_FROM_CHUNKS:
            return
        self._frequent_terms = store.frequent_terms(
            max(FREQUENT_TERM_CHUNKS, self.chunk_total // 1000)
        )
        self._term_counts.update(self._frequent_terms)

    # --- building ----------------------------------------------------------------------

    @classmethod
    def load(cls, store: Store, index_root: Path, model_id: str) -> SearchState:
        """Load the published index and bring it up to the store's latest change.

        Raises IndexMissingError / IndexMismatchError (see indexer.index_files.load_index).
        A damaged current version gives way to the newest older one that loads (the change
        log brings it up to date): ``damaged_version`` and ``damage`` say so.
        """
        index, config = load_index(index_root, model_id, fallback=True)
        profile = RankingProfile.from_dict(store.latest_ranking_profile(model_id))
        state = cls(
            index,
            model_id=model_id,
            version=config["version"],
            seq=int(config.get("log_seq", 0)),
            profile=profile,
        )
        if config.get("damaged_version"):
            state.damaged_version, state.damage = config["damaged_version"], config["damage"]
            log.error(
                "INDEX DAMAGED: %s; serving the older version %s until `kb index` or "
                "`kb doctor --repair` publishes a sound one",
                state.damage,
                state.version,
            )
        state._load_documents(store)
        state.catch_up(store)
        state._learn_frequent_terms(store)
        return state

    @classmethod
    def from_index(
        cls,
        store: Store,
        index: VectorIndex,
        model_id: str,
        seq: int,
        profile: RankingProfile | None = None,
    ) -> SearchState:
        """A state over an in-memory index (used while fitting, before it is published)."""
        state = cls(
            index,
            model_id=model_id,
            version="unpublished",
            seq=seq,
            profile=profile or RankingProfile(),
        )
        state._load_documents(store)
        return state

    def _load_documents(self, store: Store) -> None:
        """Read every searchable document and the document of every chunk into compact
        tables (search.doc_table), in one snapshot of the store."""
        with store.read():
            families = self.family_keys
            self.docs = DocTable(
                doc_from_row(kind, row, families)
                for kind in ("article", "incident")
                for row in store.searchable_documents(kind)
            )
            self.chunk_doc = ChunkDocs(
                ((cid, (kind, doc_id)) for cid, kind, doc_id in store.chunk_doc_map()), self.docs
            )
        self.article_incidents = Counter(self.docs.code_counts("article_id"))
        self.resolution_incidents = Counter(self.docs.code_counts("res_key"))

    def _count_doc(self, doc: DocInfo, step: int) -> None:
        if doc.kind == "incident":
            if doc.article_id:
                self.article_incidents[doc.article_id] += step
            if doc.res_key:
                self.resolution_incidents[doc.res_key] += step

    def _put_doc(self, doc: DocInfo) -> None:
        self._drop_doc(doc.key)
        self.docs.put(doc)
        if doc.kind == "incident":
            if doc.article_id:
                self.article_incidents[doc.article_id] += 1
            if doc.res_key:
                self.resolution_incidents[doc.res_key] += 1

    def _drop_doc(self, key: DocKey) -> None:
        old = self.docs.pop(key, None)
        if old is not None:
            self._count_doc(old, -1)

    # --- keeping up --------------------------------------------------------------------

    def catch_up(self, store: Store) -> int:
        """Replay change-log entries newer than this state; returns how many were applied."""
        entries = store.log_since(self.seq)
        if not entries:
            return 0
        final: dict[int, tuple[str, DocKey]] = {}
        for entry in entries:
            final[entry.chunk_id] = (entry.op, (entry.doc_kind, entry.doc_id))
        added = [cid for cid, (op, _) in final.items() if op == "add"]
        removed = [cid for cid, (op, _) in final.items() if op == "remove"]
        vectors = store.chunk_vectors(self.model_id, added)
        present = [cid for cid in added if cid in vectors]
        touched = {key for _, key in final.values()}
        fresh: dict[DocKey, DocInfo] = {}
        for kind in ("article", "incident"):
            ids = [doc_id for k, doc_id in touched if k == kind]
            if ids:
                for row in store.searchable_documents(kind, ids):
                    fresh[(kind, row["id"])] = doc_from_row(kind, row, self.family_keys)
        with self.lock:
            self.index.remove(np.array(removed, dtype=np.int64))
            for cid in removed:
                self.chunk_doc.pop(cid, None)
            if present:
                self.index.add(
                    np.array(present, dtype=np.int64), np.vstack([vectors[c] for c in present])
                )
                for cid in present:
                    self.chunk_doc.set(cid, final[cid][1])
            for key in touched:
                if key in fresh:
                    self._put_doc(fresh[key])
                else:
                    self._drop_doc(key)
            self.seq = entries[-1].seq
        return len(entries)

    # --- reading -----------------------------------------------------------------------

    def doc_chunk(self, key: DocKey) -> int | None:
        """One chunk of a document (its lowest id), for showing a result no chunk of which
        was retrieved."""
        with self.lock:
            return self.chunk_doc.first_chunk(key)

    def group_size(self, group: str) -> int:
        """How many resolved incidents stand behind a group."""
        if group.startswith("a:"):
            return self.article_incidents.get(group[2:], 0)
        if group.startswith(("r:", "f:")):
            return self.resolution_incidents.get(group, 0)
        return 1

    def stats(self) -> dict:
        kinds = self.docs.kind_counts()
        return {
            "version": self.version,
            "log_seq": self.seq,
            "vectors": len(self.index),
            "index_kind": self.index.kind,
            "articles": kinds.get("article", 0),
            "incidents": kinds.get("incident", 0),
            "model_id": self.model_id,
            "ranking_profile": self.profile.source,
        }
