"""Index folders on disk, published atomically.

Layout of the index root (``<home>/index``)::

    CURRENT                 name of the version in use (replaced by an atomic rename)
    v<time>-<rand>/         one published version
        vectors.faiss       the FAISS index
        config.json         model, dimension, count, kind, change-log position, versions, time

A version folder is written under a temporary name, fsynced, then renamed; only then does
CURRENT move. A crash at any point leaves the previous version in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.vector_index import VectorIndex
from kb.errors import IndexDamagedError, IndexMismatchError, IndexMissingError, KBError

FORMAT_VERSION = 1
KEEP_OLD_VERSIONS = 2


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def software_versions() -> dict[str, str]:
    # Read from package metadata: importing sentence-transformers only for its version
    # string would add seconds to every `kb index`.
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "sentence_transformers": installed("sentence-transformers"),
        "torch": installed("torch"),
        "onnxruntime": installed("onnxruntime"),
        "format": str(FORMAT_VERSION),
    }


def current_version(index_root: Path) -> str | None:
    pointer = Path(index_root) / "CURRENT"
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def publish_index(index_root: Path, index: VectorIndex, meta: dict[str, Any]) -> str:
    """Write a new version and switch CURRENT to it. Returns the version name."""
    index_root = Path(index_root)
    index_root.mkdir(parents=True, exist_ok=True)
    version = "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(3)
    staging = index_root / f".tmp-{version}"
    staging.mkdir()
    config = dict(meta)
    config.update(
        format=FORMAT_VERSION,
        version=version,
        dimension=index.dimension,
        count=len(index),
        index_kind=index.kind,
        tombstones=sorted(index.tombstones),
        metric="inner_product",
        normalized=True,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        software=software_versions(),
    )
    index.write(staging / "vectors.faiss")
    _write_file(staging / "config.json", json.dumps(config, indent=2).encode())
    _fsync_dir(staging)
    final = index_root / version
    os.rename(staging, final)
    _fsync_dir(index_root)
    pointer_tmp = index_root / f".CURRENT.{version}"
    _write_file(pointer_tmp, version.encode())
    os.replace(pointer_tmp, index_root / "CURRENT")
    _fsync_dir(index_root)
    _prune(index_root, keep={version})
    return version


def _prune(index_root: Path, keep: set[str]) -> None:
    versions = sorted(
        (p for p in index_root.iterdir() if p.is_dir() and p.name.startswith("v")),
        key=lambda p: p.name,
    )
    old = [p for p in versions if p.name not in keep][: -KEEP_OLD_VERSIONS or None]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    for path in index_root.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in index_root.glob(".CURRENT.*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def drop_old_versions(index_root: Path) -> list[str]:
    """Remove every version folder but the one CURRENT names (after an erasure, the older
    ones still hold the erased documents' vectors). Returns the names removed."""
    keep = current_version(index_root)
    removed = []
    for path in sorted(Path(index_root).iterdir()) if Path(index_root).exists() else []:
        if path.is_dir() and path.name.startswith("v") and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def read_config(index_root: Path, version: str | None = None) -> dict[str, Any]:
    version = version or current_version(index_root)
    if version is None:
        raise IndexMissingError("no index has been built yet: run `kb index`")
    path = Path(index_root) / version / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise IndexMissingError(f"index version {version} is missing its config.json") from None
    except json.JSONDecodeError:
        raise IndexMismatchError(f"index version {version} has a broken config.json") from None


def load_index(
    index_root: Path,
    expected_model_id: str | None = None,
    *,
    writable: bool = False,
    fallback: bool = False,
) -> tuple[VectorIndex, dict[str, Any]]:
    """Load the current version. Refuses an index built with another model.

    A compressed (hnsw-sq8) index is memory-mapped, shared with every process that maps
    the same version, unless ``writable`` (the indexer, which updates it and publishes a
    new version). Raises IndexMissingError when there is none and IndexMismatchError on a
    mismatch; IndexDamagedError when the current version's files cannot be read.

    With ``fallback`` (a serving process), a damaged current version gives way to the
    newest older version that loads: its config then carries ``damaged_version`` and
    ``damage`` (the reason), for the log and the health answer. The caller replays the
    change log from that version's position, so nothing stored since is missing.
    """
    version = current_version(index_root)
    if version is None:
        raise IndexMissingError("no index has been built yet: run `kb index`")
    try:
        return _load_version(index_root, version, expected_model_id, writable)
    except IndexDamagedError as damage:
        if not fallback:
            raise
        for older in reversed(_versions_before(index_root, version)):
            try:
                index, config = _load_version(index_root, older, expected_model_id, writable)
            except KBError:
                continue
            return index, dict(config, damaged_version=version, damage=str(damage))
        raise


def _versions_before(index_root: Path, version: str) -> list[str]:
    return sorted(
        p.name
        for p in Path(index_root).iterdir()
        if p.is_dir() and p.name.startswith("v") and p.name < version
    )


def _load_version(
    index_root: Path, version: str, expected_model_id: str | None, writable: bool
) -> tuple[VectorIndex, dict[str, Any]]:
    try:
        config = read_config(index_root, version)
    except KBError as exc:
        raise IndexDamagedError(str(exc)) from None
    if config.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index format {config.get('format')} is not supported; run `kb index --rebuild`"
        )
    if expected_model_id and config.get("model_id") != expected_model_id:
        raise IndexMismatchError(
            f"the index was built with model {config.get('model_id')}, but the service is "
            f"configured with {expected_model_id}; run `kb index --rebuild`"
        )
    path = Path(index_root) / version / "vectors.faiss"
    if not path.is_file():
        raise IndexDamagedError(f"index version {version} is missing its vectors.faiss")
    try:
        index = VectorIndex.read(
            path, config["index_kind"], set(config.get("tombstones", [])), mmap=not writable
        )
    except (RuntimeError, KeyError, ValueError) as exc:
        # FAISS raises RuntimeError on an empty, truncated or garbled file.
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise IndexDamagedError(
            f"index version {version} has an unreadable vectors.faiss ({reason})"
        ) from None
    if index.dimension != config.get("dimension"):
        raise IndexDamagedError(
            f"index version {version}: vectors.faiss does not match its config.json"
        )
    return index, config


@contextlib.contextmanager
def indexing_lock(index_root: Path, *, wait: bool = False) -> Iterator[None]:
    """Only one indexer at a time per data home. Raises BlockingIOError when busy."""
    index_root = Path(index_root)
    index_root.mkdir(parents=True, exist_ok=True)
    with open(index_root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
