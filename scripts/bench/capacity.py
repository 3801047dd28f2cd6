"""What `kb bench --docs N` needs of this machine, from figures measured per incident.

The bench's own runs at 10,000, 100,000 and 1,000,000 incidents (composed vectors above
20,000, SQLite, two workers, the default encoder, on two cores) give each cost per incident;
a cost that does not grow with the store (the models, Python itself) is a fixed part.
``plan`` scales them to N, and ``check`` compares what must be held at once with the free
disk and memory, before the bench spends hours building a store that cannot be served. The
same figures are docs/decisions/large-stores.md's memory and latency model per million incidents.

Memory is counted as the kernel shares it: a worker's own (unique) memory once per worker,
and the memory-mapped index file once for all of them (its pages are in the page cache,
shared by every process that maps it).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kb.errors import KBError

MB = 2**20
GB = 2**30

# Measured (kb bench --docs 1000000 --json, --docs 100000 and --docs 10000; see the
# docs/decisions/large-stores.md). Bytes per incident unless named otherwise; the synthetic incidents hold
# one chunk each.
PER_INCIDENT = {
    # the SQLite file (incidents, chunks, FTS5, one float32 vector each, the change log)
    "store_bytes": 3_780,
    # a published hnsw-sq8 index file: 384 one-byte codes and the graph's links
    "index_file_bytes": 664,
    # one serving worker's own memory (unique set): the document tables, the chunk map,
    # the graph's level and offset arrays and ids; the mapped index file is not in it
    # (the busier worker: 486 MB at 10k, 643 MB at 100k, 724 MB at 1M)
    "worker_unique_bytes": 200,
    # the indexer's peak (kb index in the bench process): the index being built, the
    # search state the ranking is fitted on, the store's pages (the bench's peak: 1,252 MB
    # at 10k, 1,700 MB at 100k, 2,845 MB at 1M)
    "indexer_bytes": 1_340,
    # the bench process while the server runs, its own search state let go of (1,025 MB
    # at 10k, 1,088 MB at 100k, 1,151 MB at 1M)
    "bench_serving_bytes": 80,
    # seconds of the whole bench (compose, import, index, fit, measure) per incident
    # (312 s at 10k, 636 s at 100k, 2,494 s at 1M)
    "bench_seconds": 0.0021,
}
FIXED = {
    "worker_bytes": 600 * MB,  # Python, ONNX Runtime and the model, FAISS, Flask
    "indexer_bytes": 1_650 * MB,  # the bench process: three encoders for the speed figures
    "bench_serving_bytes": 1_100 * MB,  # the same, while the server runs
    "bench_seconds": 400.0,  # models, fragment pool, the fixed measurements
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
        have = (
            f", {self.available_bytes / GB:.1f} GB available"
            if self.available_bytes is not None
            else ""
        )
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


def per_worker_bytes(docs: int) -> int:
    """One serving worker's own memory for a store of ``docs`` incidents."""
    return FIXED["worker_bytes"] + docs * PER_INCIDENT["worker_unique_bytes"]


def plan(
    docs: int, home: Path, workers: int, *, memory: int | None = None, disk: int | None = None
) -> dict[str, Any]:
    """The estimate for a bench of ``docs`` incidents served by ``workers`` workers."""
    memory = available_memory() if memory is None else memory
    disk = free_disk(home) if disk is None else disk
    store = docs * PER_INCIDENT["store_bytes"]
    index_file = docs * PER_INCIDENT["index_file_bytes"]
    worker = per_worker_bytes(docs)
    indexer = FIXED["indexer_bytes"] + docs * PER_INCIDENT["indexer_bytes"]
    bench_serving = FIXED["bench_serving_bytes"] + docs * PER_INCIDENT["bench_serving_bytes"]
    serving = workers * worker + index_file + bench_serving
    needs = [
        Need(
            "disk: store and index",
            store + 2 * index_file,
            disk,
            f"{PER_INCIDENT['store_bytes']} B per incident in SQLite and {PER_INCIDENT['index_file_bytes']} B "
            "in the index file (two versions during a rebuild)",
        ),
        Need(
            "memory: building the index and fitting the ranking",
            indexer,
            memory,
            f"{FIXED['indexer_bytes'] // MB} MB (the bench's three encoders) + "
            f"{PER_INCIDENT['indexer_bytes']} B per incident (the index being built, the search state "
            "the ranking is fitted on)",
        ),
        Need(
            f"memory: serving with {workers} workers",
            serving,
            memory,
            f"{workers} x ({FIXED['worker_bytes'] // MB} MB + {PER_INCIDENT['worker_unique_bytes']} B per "
            "incident of document tables and ids each), the index file once in the page cache (shared "
            f"by the workers), and the bench process ({FIXED['bench_serving_bytes'] // MB} MB + "
            f"{PER_INCIDENT['bench_serving_bytes']} B per incident)",
        ),
    ]
    seconds = FIXED["bench_seconds"] + docs * PER_INCIDENT["bench_seconds"]
    return {
        "docs": docs,
        "workers": workers,
        "needs": [{**asdict(n), "fits": n.fits} for n in needs],
        "fits": all(n.fits for n in needs),
        "per_worker_bytes": worker,
        "index_file_bytes": index_file,
        "estimated_hours": round(seconds / 3600, 1),
        "lines": [n.line() for n in needs]
        + [
            f"each worker: about {worker / GB:.1f} GB of its own, and the {index_file / GB:.1f} GB index "
            "file mapped (shared)",
            f"time: about {seconds / 3600:.1f} hours on two cores "
            f"({PER_INCIDENT['bench_seconds'] * 1e6:.0f} s per million incidents, mostly building the store "
            "and the index)",
        ],
    }


def check(docs: int, home: Path, workers: int) -> dict[str, Any]:
    """The plan; raises KBError naming each part that does not fit, and why."""
    estimate = plan(docs, home, workers)
    if not estimate["fits"]:
        # "lines" holds one line per need, in order, then the worker and the time.
        short = [
            estimate["lines"][i] for i, need in enumerate(estimate["needs"]) if not need["fits"]
        ]
        raise KBError(
            f"kb bench --docs {docs} does not fit on this machine:\n  "
            + "\n  ".join(short)
            + "\n(kb bench --docs N --plan shows the whole estimate)"
        )
    return estimate
