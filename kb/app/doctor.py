"""`kb doctor`: does the published index agree with the store, and what can be put right.

:func:`diagnose` only reads. :func:`repair` cleans what a killed indexer left behind, drops
chunks no run would ever touch again, and runs the indexer (incremental, or a rebuild when
the index and the store disagree beyond what the change log explains), then diagnoses again.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.index_files import current_version, indexing_lock, load_index, read_config
from indexer.pipeline import IndexReport, apply_log
from kb.errors import IndexDamagedError, IndexMismatchError, IndexMissingError
from kb.store import Store

# What a repair does for a finding, in the order repair applies them.
CLEAN = "clean"  # remove leftover temporary files
UNINDEX = "unindex"  # drop chunks of documents no run would touch
INDEX = "index"  # an incremental `kb index`
REBUILD = "rebuild"  # `kb index --rebuild`
NONE = ""  # nothing automatic: a person must look


@dataclass
class Finding:
    code: str
    message: str
    repair: str = NONE
    severity: str = "problem"  # "problem" | "warning"

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "message": self.message,
            "repair": self.repair,
            "severity": self.severity,
        }


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, code: str, message: str, repair: str = NONE, severity: str = "problem") -> None:
        self.findings.append(Finding(code, message, repair, severity))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [f.to_dict() for f in self.problems],
            "warnings": [f.to_dict() for f in self.warnings],
            "repairs": list(self.repairs),
            "notes": list(self.notes),
            "facts": dict(self.facts),
        }


def indexer_running(index_root: Path) -> bool:
    """True while another process holds the indexing lock of this data home."""
    lock = Path(index_root) / ".lock"
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def leftover_files(index_root: Path) -> list[Path]:
    """Staging folders and pointer files a killed indexer left in the index root."""
    index_root = Path(index_root)
    if not index_root.is_dir():
        return []
    return sorted([*index_root.glob(".tmp-*"), *index_root.glob(".CURRENT.*")])


def diagnose(store: Store, index_root: Path, model_id: str) -> DoctorReport:
    """Compare the published index with the store. Reads only."""
    index_root = Path(index_root)
    report = DoctorReport()
    running = indexer_running(index_root)
    if running:
        report.notes.append(
            "an indexer is running on this data home: differences may be "
            "work in progress, and temporary files are left alone"
        )
    for problem in store.integrity_problems():
        report.add("database_damaged", f"SQLite integrity check: {problem}")
    _check_documents(store, model_id, report)
    _check_published(store, index_root, model_id, report)
    if not running:
        leftovers = leftover_files(index_root)
        if leftovers:
            report.add(
                "temp_leftovers",
                f"{len(leftovers)} temporary files or folders were left by an interrupted "
                f"indexer ({', '.join(p.name for p in leftovers[:3])}"
                f"{', ...' if len(leftovers) > 3 else ''})",
                CLEAN,
            )
    if store.latest_ranking_profile(model_id) is None:
        report.add(
            "no_ranking_profile",
            f"no ranking profile fitted for model {model_id}: "
            "documented defaults are used until `kb index` fits one",
            INDEX,
            "warning",
        )
    report.facts.update(model_id=model_id, indexer_running=running)
    return report


def _check_documents(store: Store, model_id: str, report: DoctorReport) -> None:
    pending = store.docs_to_index()
    if pending:
        report.add(
            "pending_documents",
            f"{len(pending)} documents are new or changed and not yet indexed",
            INDEX,
        )
    stale = store.docs_to_unindex()
    if stale:
        report.add(
            "stale_documents", f"{len(stale)} documents are indexed but no longer searchable", INDEX
        )
    orphans = store.orphan_chunk_docs()
    if orphans:
        report.add(
            "orphan_chunks",
            f"{len(orphans)} documents have chunks that no index run tracks",
            UNINDEX,
        )
    missing = store.chunks_without_vectors(model_id)
    if missing:
        report.add(
            "missing_vectors",
            f"{len(missing)} chunk texts have no vector for model {model_id}",
            INDEX,
        )
    report.facts.update(
        store_chunks=store.count_chunks(),
        pending_documents=len(pending),
        stale_documents=len(stale),
        log_head=store.log_head(),
    )


def _check_published(store: Store, index_root: Path, model_id: str, report: DoctorReport) -> None:
    version = current_version(index_root)
    report.facts["index_version"] = version
    if version is None:
        report.add("no_index", "no index has been published yet", INDEX)
        return
    if not (index_root / version).is_dir():
        report.add(
            "current_missing",
            f"CURRENT names version {version}, which is not in {index_root}",
            REBUILD,
        )
        return
    try:
        config = read_config(index_root, version)
        report.facts["index_model_id"] = config.get("model_id")
        index, config = load_index(index_root, model_id)
    except IndexDamagedError as exc:
        report.add("index_unreadable", f"index version {version} cannot be read: {exc}", REBUILD)
        return
    except IndexMismatchError as exc:
        report.add("index_mismatch", str(exc), REBUILD)
        return
    except (IndexMissingError, OSError, RuntimeError, KeyError, ValueError) as exc:
        report.add("index_unreadable", f"index version {version} cannot be read: {exc}", REBUILD)
        return
    if int(config.get("count", len(index))) != len(index):
        report.add(
            "index_count",
            f"index version {version} holds {len(index)} vectors but its "
            f"config.json says {config.get('count')}",
            REBUILD,
        )
    seq = int(config.get("log_seq", 0))
    if seq > store.log_head():
        report.add(
            "index_ahead",
            f"the index has replayed the change log to {seq}, past the "
            f"store's last entry {store.log_head()}: it was built from another database",
            REBUILD,
        )
        return
    apply_log(store, index, model_id, seq)
    store_ids = {cid for cid, _, _ in store.chunk_doc_map()}
    index_ids = set(index.all_ids().tolist())
    if store_ids - index_ids:
        report.add(
            "chunks_not_in_index",
            f"{len(store_ids - index_ids)} chunks in the store have no vector in the index",
            REBUILD,
        )
    if index_ids - store_ids:
        report.add(
            "vectors_without_chunk",
            f"{len(index_ids - store_ids)} vectors in the index have no chunk in the store",
            REBUILD,
        )
    report.facts.update(index_vectors=len(index_ids), index_log_seq=seq)


RunIndex = Callable[..., IndexReport]


def repair(store: Store, index_root: Path, model_id: str, run_index: RunIndex) -> DoctorReport:
    """Fix what can be fixed and diagnose again; the returned report lists what was done.

    ``run_index(rebuild=...)`` runs the indexer (``Service.index``); it takes the indexing
    lock itself. Raises BlockingIOError while another indexer holds the lock.
    """
    index_root = Path(index_root)
    before = diagnose(store, index_root, model_id)
    repairs: list[str] = []
    wanted = {f.repair for f in before.findings}
    with indexing_lock(index_root):
        if CLEAN in wanted:
            removed = 0
            for path in leftover_files(index_root):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
            repairs.append(f"removed {removed} temporary files or folders")
        if UNINDEX in wanted:
            orphans = store.orphan_chunk_docs()
            for kind, doc_id in orphans:
                store.unindex_doc(kind, doc_id)
            repairs.append(f"dropped the untracked chunks of {len(orphans)} documents")
    if REBUILD in wanted:
        result = run_index(rebuild=True)
        repairs.append(f"rebuilt the index: {_summary(result)}")
    elif wanted & {INDEX, UNINDEX}:
        result = run_index(rebuild=False)
        repairs.append(f"ran the indexer: {_summary(result)}")
    after = diagnose(store, index_root, model_id)
    after.repairs = repairs
    after.facts["problems_before"] = len(before.problems)
    return after


def _summary(result: IndexReport) -> str:
    return (
        f"{result.docs_indexed} documents indexed, {result.docs_removed} removed; "
        f"version {result.version} holds {result.vectors} vectors"
    )


def describe(report: DoctorReport) -> list[str]:
    """Lines for a terminal."""
    facts = report.facts
    lines = [
        f"index {facts.get('index_version') or '(none)'} for model {facts.get('model_id')}: "
        f"{facts.get('index_vectors', '-')} vectors; store: {facts.get('store_chunks', '-')} chunks"
    ]
    lines += [f"note: {note}" for note in report.notes]
    lines += [f"repaired: {action}" for action in report.repairs]
    for finding in report.findings:
        hint = f"  [--repair: {finding.repair}]" if finding.repair and not report.repairs else ""
        lines.append(f"{finding.severity}: {finding.message}{hint}")
    if report.ok:
        lines.append("ok: the index and the store agree")
    else:
        fixable = any(f.repair for f in report.problems)
        lines.append(
            f"{len(report.problems)} problem(s)"
            + (
                "; run `kb doctor --repair` to fix what can be fixed"
                if fixable and not report.repairs
                else ""
            )
        )
    return lines
