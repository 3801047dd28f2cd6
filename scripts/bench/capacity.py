"""What `kb bench --docs N` needs of this machine, from figures measured per incident.

The bench's own runs at 100,000 and 1,000,000 incidents (composed vectors, SQLite, two
workers, the default encoder, on two cores) give each cost per incident; a cost that
does not grow with the store (the models, Python itself) is a fixed part. ``plan`` scales
them to N, and ``check`` compares what must be held at once with the free disk and
memory, before the bench spends hours building a store that cannot be served. The same
figures are the README's memory and latency model per million incidents.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kb.errors import KBError

MB = 2**20
GB = 2**30

# Measured (kb bench --docs 1000000 --json, and --docs 100000; see the README's model).
# Bytes per incident unless named otherwise; the synthetic incidents hold one chunk each.
PER_INCIDENT = {
    # the SQLite file (incidents, chunks, FTS5, one float32 vector each, the change log)
    "store_bytes": 3_810,
    # a published hnsw-sq8 index file: 384 one-byte codes and the graph's links
    "index_file_bytes": 664,
    # one serving worker's own memory: the graph, ids, the document tables
    "worker_unique_bytes": 1_040,
    # the indexer while it builds and fits: the index in memory and a float32 vector per
    # incident for the ranking fit, with Python's overhead
    "indexer_bytes": 2_630,
    # seconds of the whole bench (compose, import, index, fit, measure) per incident
    "bench_seconds": 0.0061,
}
FIXED = {
    "worker_bytes": 420 * MB,      # Python, ONNX Runtime and the model, FAISS, Flask
    "indexer_bytes": 2_200 * MB,   # the bench process: three encoders for the speed figures
    "bench_seconds": 240.0,        # models, fragment pool, the fixed measurements
}
# Headroom kept free of the estimate (the page cache, the rest of the machine).
MEMORY_HEADROOM = 0.9


@dataclass
class Need:
    part: str
    needed_bytes: int
    available_bytes: int | None
    why: str

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.needed_bytes <= self.available_bytes

    def line(self) -> str:
        have = f", {self.available_bytes / GB:.1f} GB available" if self.available_bytes is not None else ""
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return f"{self.part}: about {self.needed_bytes / GB:.1f} GB{have} ({verdict}): {self.why}"


def available_memory() -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the test extra
        return None
    return int(psutil.virtual_memory().available * MEMORY_HEADROOM)


def free_disk(path: Path) -> int:
    path = Path(path)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def plan(docs: int, home: Path, workers: int, *, memory: int | None = None,
         disk: int | None = None) -> dict[str, Any]:
    """The estimate for a bench of ``docs`` incidents served by ``workers`` workers."""
    memory = available_memory() if memory is None else memory
    disk = free_disk(home) if disk is None else disk
    store = docs * PER_INCIDENT["store_bytes"]
    index_file = docs * PER_INCIDENT["index_file_bytes"]
    worker = FIXED["worker_bytes"] + docs * PER_INCIDENT["worker_unique_bytes"]
    indexer = FIXED["indexer_bytes"] + docs * PER_INCIDENT["indexer_bytes"]
    serving = workers * worker + index_file + FIXED["indexer_bytes"] + docs * PER_INCIDENT["worker_unique_bytes"]
    needs = [
        Need("disk: store and index", store + 2 * index_file, disk,
             f"{PER_INCIDENT['store_bytes']} B per incident in SQLite and {PER_INCIDENT['index_file_bytes']} B "
             "in the index file (two versions during a rebuild)"),
        Need("memory: building the index and fitting the ranking", indexer, memory,
             f"the index being built and one float32 vector per incident for the fit "
             f"({PER_INCIDENT['indexer_bytes']} B per incident) beside the bench's encoders"),
        Need(f"memory: serving with {workers} workers", serving, memory,
             f"{workers} x ({FIXED['worker_bytes'] // MB} MB + {PER_INCIDENT['worker_unique_bytes']} B per incident "
             "of graph, ids and document tables each), the index file once in the page cache (shared), "
             "and the bench process's own search state"),
    ]
    seconds = FIXED["bench_seconds"] + docs * PER_INCIDENT["bench_seconds"]
    return {
        "docs": docs, "workers": workers,
        "needs": [{**asdict(n), "fits": n.fits} for n in needs],
        "fits": all(n.fits for n in needs),
        "per_worker_bytes": worker,
        "estimated_hours": round(seconds / 3600, 1),
        "lines": [n.line() for n in needs] + [
            f"time: about {seconds / 3600:.1f} hours on two cores "
            f"({PER_INCIDENT['bench_seconds'] * 1e6:.0f} s per million incidents, mostly building the store "
            "and the index)"],
    }


def check(docs: int, home: Path, workers: int) -> dict[str, Any]:
    """The plan; raises KBError naming each part that does not fit, and why."""
    estimate = plan(docs, home, workers)
    if not estimate["fits"]:
        # "lines" holds one line per need, in order, then the time.
        short = [estimate["lines"][i] for i, need in enumerate(estimate["needs"]) if not need["fits"]]
        raise KBError(f"kb bench --docs {docs} does not fit on this machine:\n  " + "\n  ".join(short)
                      + "\n(kb bench --docs N --plan shows the whole estimate)")
    return estimate
