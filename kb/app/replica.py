"""A node's index replica: on a shared database, every node keeps its own index versions,
built from the vectors stored in the database (nothing is embedded again).

``kb index`` on any node publishes a version in its own data home and records it in the
database (``index_versions``). Every other node notices the newer record within about
``FOLLOW_SECONDS``, builds a version of its own from the stored vectors in the background,
and publishes it in its home; its workers then switch to it as they switch to any newly
published version (loaded beside the old one, swapped whole), so no request fails. An
erasure that has finished since a node's version was built makes the node build again
and delete its older versions, which still hold the erased vectors.

Between versions, every worker follows the change log (search.state), so an incident
posted on one node is searchable on every node within a refresh or two.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from indexer.index_files import (
    current_version,
    drop_old_versions,
    indexing_lock,
    publish_index,
    read_config,
)
from indexer.vector_index import VectorIndex
from kb.errors import IndexMissingError, KBError
from kb.store import Store

log = logging.getLogger("kb.replica")

FOLLOW_SECONDS = 1.0


def _local_config(index_root) -> dict | None:
    if current_version(index_root) is None:
        return None
    try:
        return read_config(index_root)
    except KBError:
        return None


def is_current(config: dict | None, latest: dict, database_id: str, erasures: int) -> bool:
    """Whether a local version stands for the database's latest published one."""
    if config is None:
        return False
    same_version = latest["version"] in (config.get("version"), config.get("db_version"))
    built_here = config.get("database_id") in (None, database_id)
    return same_version and built_here and int(config.get("erasures", -1)) >= erasures


def build_replica(
    store: Store,
    index_root,
    latest: dict,
    dimension: int,
    progress: Callable[[str], None] | None = None,
    kind: str | None = None,
) -> str:
    """Build a local version of the database's latest index from its stored vectors, and
    publish it in this home. The caller holds the home's indexing lock. ``kind`` is this
    node's forced index kind (KB_INDEX_KIND); without it the kind follows the count."""
    model_id = latest["model_id"]
    erasures = store.finished_erasures()
    with store.read():
        head = store.log_head()
        count = store.count_chunks()
        if progress:
            progress(f"building this node's index from {count} stored vectors ({model_id})")
        index = VectorIndex.build(store.iter_chunk_vectors(model_id), dimension, count, kind)
    version = publish_index(
        index_root,
        index,
        {
            "model_id": model_id,
            "log_seq": head,
            "store_chunks": count,
            "model_path": latest["model_path"],
            "db_version": latest["version"],
            "database_id": store.database_id(),
            "erasures": erasures,
            "replica_of": latest.get("node", ""),
        },
    )
    dropped = drop_old_versions(index_root) if erasures else []
    log.info(
        "built index replica %s of %s (%d vectors%s)",
        version,
        latest["version"],
        len(index),
        f"; removed {len(dropped)} older version(s)" if dropped else "",
    )
    return version


class ReplicaFollower:
    """Watches the database's published versions for one process of a node."""

    def __init__(
        self,
        index_root,
        store_factory: Callable[[], Store],
        dimension: Callable[[], int],
        kind: str | None = None,
    ):
        self.index_root = index_root
        self.kind = kind
        self.store_factory = store_factory
        self.dimension = dimension
        self._checked = 0.0
        self._busy = threading.Lock()

    def needed(self, store: Store) -> dict | None:
        """The database's latest version when this node has nothing standing for it."""
        latest = store.latest_index_version()
        if latest is None:
            return None
        if is_current(
            _local_config(self.index_root), latest, store.database_id(), store.finished_erasures()
        ):
            return None
        return latest

    def check(self, store: Store) -> None:
        """At most every FOLLOW_SECONDS: start building a replica in the background when
        the database holds a newer version than this node serves."""
        now = time.monotonic()
        if now - self._checked < FOLLOW_SECONDS:
            return
        self._checked = now
        if self._busy.locked():
            return
        latest = self.needed(store)
        if latest is not None:
            threading.Thread(target=self._build, args=(False,), daemon=True).start()

    def ensure(self) -> bool:
        """Build a replica now when this node has none for the latest version (waits for
        another process of the node that is building one). False: nothing published yet."""
        store = self.store_factory()
        try:
            if store.latest_index_version() is None:
                return False
        finally:
            store.close()
        self._build(True)
        return True

    def _build(self, wait: bool, progress: Callable[[str], None] | None = None) -> None:
        if not self._busy.acquire(blocking=wait):
            return
        try:
            with indexing_lock(self.index_root, wait=wait):
                store = self.store_factory()
                try:
                    latest = self.needed(store)  # another process of this node may have built it
                    if latest is not None:
                        build_replica(
                            store, self.index_root, latest, self.dimension(), progress, self.kind
                        )
                finally:
                    store.close()
        except BlockingIOError:
            pass  # another process of this node is building it
        except Exception:  # a failed build must not take down a serving worker
            log.exception(
                "could not build this node's index replica; the current version keeps serving"
            )
        finally:
            self._busy.release()

    def prepare(self, progress: Callable[[str], None]) -> None:
        """Before a node starts serving: a replica of the latest version, when needed."""
        store = self.store_factory()
        try:
            if store.latest_index_version() is None:
                progress(
                    "no index has been published to the database yet: run `kb index` on one node"
                )
                return
        finally:
            store.close()
        self._build(True, progress)
        if current_version(self.index_root) is None:
            raise IndexMissingError(
                "could not build this node's index from the database (see the log)"
            )
