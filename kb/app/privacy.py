"""Privacy workflows: check an export before import, redact a home that was filled before
redaction, erase incidents everywhere, and scan the home's files for what should not be
there. Every step that removes text ends by rewriting the index files and compacting the
database, so the bytes are gone from disk, not only from the tables."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.index_files import drop_old_versions
from kb.app.service import Service
from kb.articles import parse_article_text
from kb.authoring import write_file_atomically
from kb.importers import read_incident_file
from kb.models import INCIDENT_TEXT_FIELDS
from kb.redaction import DEFAULT_KINDS, DEFAULT_PHONE_REGIONS, Redactor, normalise_raw

REDACTED_FIELDS = INCIDENT_TEXT_FIELDS
# Files a scan reads: the database and its journals, the index versions, drafts. The
# exported model under models/ holds no incident text and is large.
SCAN_SKIP = ("models",)
SCAN_CHUNK = 1 << 20
# How often an erasure waiting for the index lock tries again.
ERASURE_POLL_SECONDS = 0.5

log = logging.getLogger(__name__)


def mask(text: str) -> str:
    """Enough of a finding to recognise it, never the whole of it."""
    return text[:2] + "…" if len(text) > 4 else "…"


# --- before importing --------------------------------------------------------------------


def check_export(
    path: str | Path, *, fmt: str, overrides: dict[str, str] | None, redactor: Redactor
) -> dict[str, Any]:
    """What redaction would replace in an export, record by record: kinds and places (an
    offset into the field's normalised text, as it would be stored), with the findings
    masked. Raises RecordError for a file that cannot be read."""
    records = read_incident_file(path, fmt=fmt, overrides=overrides)
    findings, kinds = [], Counter()
    for incident in records:
        for name in REDACTED_FIELDS:
            for finding in redactor.normalised_findings(getattr(incident, name)):
                kinds[finding.kind] += 1
                findings.append(
                    {
                        "id": incident.id,
                        "field": name,
                        "kind": finding.kind,
                        "at": finding.start,
                        "looks_like": mask(finding.text),
                    }
                )
    return {
        "file": str(path),
        "records": len(records),
        "records_with_findings": len({f["id"] for f in findings}),
        "by_kind": dict(sorted(kinds.items())),
        "findings": findings,
        "kinds_redacted": list(redactor.kinds),
    }


# --- a home filled before redaction ----------------------------------------------------


def redact_home(
    service: Service, progress: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """Rewrite every stored incident and recorded query through the redactor, re-embed what
    changed, publish a new index, drop older index versions, profiles and unused vectors,
    and compact the database."""
    store = service.store()
    changed = 0
    for batch in store.iter_incident_batches():
        changed += len(store.upsert_incidents(batch, source="kb redact").changed_ids)
    progress(f"{changed} incident(s) rewritten")
    suggestions = store.redact_stored_suggestions()
    progress(f"{suggestions} recorded quer{'y' if suggestions == 1 else 'ies'} rewritten")
    drafts = _redact_drafts(service)
    progress(f"{len(drafts)} draft(s) started from typed text rewritten")
    report = service.index()
    # Vectors of the texts as they were before (the texts themselves are gone). Vectors of
    # texts that are no chunk (the background requests the ranking fit uses) go too and
    # are embedded again on the next `kb index`.
    vectors = store.prune_unused_vectors()
    cleanup = _remove_old_traces(service)
    store.audit("kb redact", "redact", "", f"{changed} incident(s), {suggestions} suggestion(s)")
    return {
        "incidents_changed": changed,
        "suggestions_changed": suggestions,
        "drafts_changed": drafts,
        "index": report.to_dict(),
        "vectors_removed": vectors,
        **cleanup,
    }


def _redact_drafts(service: Service) -> list[str]:
    """Drafts the agent page wrote from typed incident text (files in the drafts folder):
    the file and the stored article, redacted. Other articles are curated, not redacted."""
    store, folder = service.store(), service.config.drafts_path.resolve()
    changed = []
    for article in list(store.iter_articles()):
        path = Path(article.path) if article.path else None
        if (
            article.status != "draft"
            or path is None
            or not path.is_file()
            or folder not in path.resolve().parents
        ):
            continue
        text = path.read_text(encoding="utf-8")
        clean = service.redactor.redact(text)
        if clean == text:
            continue
        write_file_atomically(path, clean)
        redacted = parse_article_text(clean, source=str(path)).article
        redacted.path = article.path
        store.upsert_articles([redacted], changed_by="kb redact")
        store.keep_latest_article_version(article.id)
        changed.append(article.id)
    return changed


def _remove_old_traces(service: Service) -> dict[str, Any]:
    store = service.store()
    removed_versions = drop_old_versions(service.index_root)
    profiles = store.keep_latest_profiles()
    store.compact()
    return {"index_versions_removed": removed_versions, "profiles_removed": profiles}


# --- erasure -----------------------------------------------------------------------------


def erase_incidents(
    service: Service, ids: list[str], *, actor: str, wait: bool = False
) -> dict[str, Any]:
    """Remove incidents everywhere: their rows and every row holding their text (one
    transaction), then the index (a new version without them, older versions deleted), the
    ranking profile (refitted: it holds words of the incidents it was fitted on), the draft
    files started from them, and the database's free pages and WAL. Logged in the audit
    log with who, when and which ids. A killed erasure is left "pending" and finished by
    running it again (or `kb doctor --privacy`). Raises NotFoundError.

    While another indexer holds the index lock, the rows are gone at once and the rest
    waits for the lock: with ``wait`` here, else in a background thread of this process
    (``state`` is then "finishing" instead of "done"; `kb index` also finishes it)."""
    result = service.store().erase_incidents(ids, actor=actor)
    service.catch_up()  # this process stops offering them at once; other workers follow the log
    for path in result.pop("draft_paths"):
        if Path(path).is_file():
            Path(path).unlink()
    try:
        result.update(finish_erasures_waiting(service) if wait else finish_erasures(service))
    except BlockingIOError:
        finish_erasures_in_background(service)
        result.update(finished=[], state="finishing")
    else:
        result["state"] = "done"
    return result


def finish_erasures_waiting(
    service: Service, *, poll: float = ERASURE_POLL_SECONDS
) -> dict[str, Any]:
    """finish_erasures, waiting while another indexer holds the lock."""
    while True:
        try:
            return finish_erasures(service)
        except BlockingIOError:
            time.sleep(poll)


def finish_erasures_in_background(service: Service) -> threading.Thread:
    """Finish pending erasures in a thread of this process, as soon as the index lock is
    free (a serving worker: after an erasure met a running indexer, or at start when one
    was left pending)."""
    thread = threading.Thread(target=_finish_later, args=(service,), name="kb-erasure", daemon=True)
    thread.start()
    return thread


def _finish_later(service: Service) -> None:
    try:
        finish_erasures_waiting(service)
    except Exception:  # noqa: BLE001 - a thread's failure must reach the log
        log.exception("a pending erasure could not be finished; `kb doctor --privacy` finishes it")


def finish_erasures(service: Service) -> dict[str, Any]:
    """Finish every pending erasure: publish an index (and profile) without the erased
    documents, delete older index versions and profiles, compact. Returns what was done."""
    store = service.store()
    pending = store.pending_erasures()
    if not pending:
        return {"finished": []}
    service.index()
    cleanup = _remove_old_traces(service)
    for erasure in pending:
        store.finish_erasure(erasure["id"])
    return {"finished": [e["id"] for e in pending], **cleanup}


def erase_person(service: Service, needle: str, *, actor: str, wait: bool = True) -> dict[str, Any]:
    """Erase everything that holds ``needle`` (an e-mail address): the incidents that
    mention it in any free-text field (as erase_incidents does), the typed text of
    recorded suggestions, the agent's name on feedback, and draft articles. Compared
    normalised and in any letter case. While another indexer holds the index lock, the
    rows go at once and the rest waits for it (``wait``) or finishes in the background.
    Returns what was found and erased."""
    store = service.store()
    found = store.records_mentioning(needle)
    report: dict[str, Any] = {
        "found": found,
        "erased": [],
        "drafts": [],
        "suggestions_blanked": 0,
        "feedback_agents_erased": 0,
        "missing": [],
    }
    if found["incidents"]:
        incidents = erase_incidents(service, found["incidents"], actor=actor, wait=wait)
        report.update(
            erased=incidents["erased"],
            drafts=list(incidents["drafts"]),
            suggestions_blanked=incidents["suggestions_blanked"],
            incident_erasure=incidents,
        )
        found = store.records_mentioning(needle)  # what the incidents' erasure did not take
    if found["suggestions"] or found["feedback"] or found["drafts"]:
        rest = store.erase_records(
            suggestions=found["suggestions"],
            feedback=found["feedback"],
            drafts=found["drafts"],
            actor=actor,
        )
        for path in rest.pop("draft_paths"):
            if Path(path).is_file():
                Path(path).unlink()
        report["drafts"] += rest["drafts"]
        report["suggestions_blanked"] += rest["suggestions_blanked"]
        report["feedback_agents_erased"] = rest["feedback_agents_erased"]
        try:
            report.update(finish_erasures_waiting(service) if wait else finish_erasures(service))
        except BlockingIOError:
            finish_erasures_in_background(service)
            report.update(finished=[], state="finishing")
    return report


# --- proof ---------------------------------------------------------------------------------


@dataclass
class ScanReport:
    files: int = 0
    bytes: int = 0
    needle_hits: dict[str, int] = field(default_factory=dict)  # file -> occurrences
    findings: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> kind -> count
    pending_erasures: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.needle_hits and not self.findings and not self.pending_erasures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


def scan_home(
    home: Path,
    *,
    needle: str = "",
    redactor: Redactor | None = None,
    pending_erasures: list[dict] | None = None,
) -> ScanReport:
    """Read the raw bytes of every file under the data home (the database, its WAL and
    shared-memory files, index versions, drafts; not the exported model) and report where
    ``needle`` occurs (as UTF-8, in any letter case, also in full-width or other forms NFKC
    folds) or, without a needle, where the redactor still finds something in the bytes
    read as normalised text (its structural detectors: raw database bytes have no field
    boundaries for the high-entropy rule to read)."""
    report = ScanReport(pending_erasures=list(pending_erasures or []))
    wanted = needle.encode("utf-8").lower() if needle else b""
    folded_needle = normalise_raw(needle).casefold()
    redactor = Redactor(
        redactor.kinds if redactor else DEFAULT_KINDS,
        context=False,
        phone_regions=redactor.phone_regions if redactor else DEFAULT_PHONE_REGIONS,
    )
    for path in sorted(Path(home).rglob("*")):
        relative = path.relative_to(home)
        if not path.is_file() or relative.parts[0] in SCAN_SKIP:
            continue
        report.files += 1
        data = path.read_bytes()
        report.bytes += len(data)
        if wanted:
            hits = data.lower().count(wanted) or _folded_hits(data, folded_needle)
            if hits:
                report.needle_hits[str(relative)] = hits
            continue
        kinds: Counter = Counter()
        for start in range(0, len(data), SCAN_CHUNK):
            text = normalise_raw(
                data[start : start + SCAN_CHUNK + 256].decode("utf-8", errors="replace")
            )
            kinds.update(f.kind for f in redactor.findings(text))
        if kinds:
            report.findings[str(relative)] = dict(sorted(kinds.items()))
    return report


def _folded_hits(data: bytes, folded_needle: str) -> int:
    """Occurrences of the needle in the bytes read as text, normalised and case-folded
    (a full-width or differently cased spelling the byte comparison misses)."""
    if not folded_needle or not data:
        return 0
    overlap = 4 * len(folded_needle.encode("utf-8")) * 4
    hits = 0
    for start in range(0, len(data), SCAN_CHUNK):
        window = normalise_raw(
            data[start : start + SCAN_CHUNK + overlap].decode("utf-8", errors="replace")
        ).casefold()
        tail = normalise_raw(
            data[start + SCAN_CHUNK : start + SCAN_CHUNK + overlap].decode(
                "utf-8", errors="replace"
            )
        ).casefold()
        hits += window.count(folded_needle) - tail.count(
            folded_needle
        )  # the tail is the next window's
    return max(hits, 0)
