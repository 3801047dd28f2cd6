"""Bulk embedding on a Ray cluster (``kb index --cluster ADDRESS``; the optional ``cluster``
extra installs Ray, which nothing else needs).

The indexer stays where it is: it reads the store, checks the content-hash vector cache,
writes vectors and publishes the index. Only the embedding of the texts the cache lacks
is spread out: :class:`ClusterEmbedder` looks like any embedder to the indexer (the same
model id, so the same cache entries; the same progress callback, so the same bar), and
sends pieces of each batch of texts to embedding workers on the cluster, each a process
with its own copy of the model, keeping every worker busy and putting the vectors back in
order.

The model travels with the work: the model folder and, for the ONNX encoders, the
exported model are put in the cluster's object store once and written to a temporary
folder by each worker, so a node needs Ray and this package installed, not the model.
Each worker checks that it computes the model id the indexer uses before it embeds
anything; a node with another version of the package or of the model is refused.

``ADDRESS`` is what ``ray.init`` takes (``HOST:PORT`` of a running cluster's head,
``ray://HOST:PORT`` for Ray Client, ``auto``), or ``local[:N]``: start a cluster on this
machine with N worker processes (default: one per core), stopped when indexing ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from indexer.encoding import ProgressFn
from kb.errors import ConfigError

# Texts sent to a worker at once, in batches of the indexer's batch size.
PIECE_BATCHES = 4
# Pieces in flight per worker (one being embedded, one waiting), so no worker idles
# while its next piece travels.
IN_FLIGHT_PER_WORKER = 2


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "`kb index --cluster` needs Ray, an optional extra: pip install 'kb[cluster]'"
        ) from None
    return ray


def parse_address(address: str) -> tuple[str | None, int | None]:
    """(address for ray.init, or None to start a local cluster; local worker count)."""
    address = address.strip()
    if not address:
        raise ConfigError(
            "--cluster needs an address: HOST:PORT, ray://HOST:PORT, auto, or local[:N]"
        )
    if address == "local" or address.startswith("local:"):
        _, _, count = address.partition(":")
        if not count:
            return None, os.cpu_count() or 1
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"--cluster local:N needs a whole number of workers of at least 1, got {count!r}"
            )
        return None, int(count)
    return address, None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once on a head that does not answer (Ray itself retries for minutes)."""
    import socket

    host_port = address.removeprefix("ray://")
    if host_port == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--cluster {address}: the port must be a number")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"could not reach the Ray cluster at {address}: {exc.strerror or exc}"
        ) from None


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class _Worker:
    """One embedding process on the cluster (made a Ray actor by ``start_cluster``)."""

    def __init__(self, package: dict, backend: str, threads: int):
        from indexer.embedders import load_embedder
        from indexer.encoding import set_thread_counts

        self.root = Path(tempfile.mkdtemp(prefix="kb-cluster-"))
        model = self.root / package["model_label"] / package["model_name"]
        _write_files(model, package["model"])
        cache = self.root / "cache"
        _write_files(cache, package["cache"])
        set_thread_counts(threads)
        self.embedder = load_embedder(
            backend, None if backend == "hashing" else model, threads=threads, cache_dir=cache
        )

    def model_id(self) -> str:
        return self.embedder.model_id

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.embedder.embed(texts, batch_size=batch_size)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class ClusterEmbedder:
    """An embedder whose ``embed`` runs on a Ray cluster's workers; every other attribute
    (model id, dimension, query embedding) is the local embedder's."""

    def __init__(self, local, actors: list, ray_module):
        self.local = local
        self.actors = actors
        self._ray = ray_module
        self.model_id = local.model_id
        self.dimension = local.dimension

    def __getattr__(self, name: str):
        return getattr(self.local, name)

    def bulk_texts(self, batch_size: int) -> int:
        """Texts the indexer should hand over per call: enough to keep every worker busy."""
        return batch_size * PIECE_BATCHES * IN_FLIGHT_PER_WORKER * len(self.actors)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        ray = self._ray
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        piece = max(1, batch_size * PIECE_BATCHES)
        pending = [(start, texts[start : start + piece]) for start in range(0, len(texts), piece)]
        pending.reverse()
        running: dict = {}  # object ref -> (start, count, actor index)
        load = [0] * len(self.actors)
        while pending or running:
            while pending and min(load) < IN_FLIGHT_PER_WORKER:
                worker = load.index(min(load))
                start, chunk = pending.pop()
                ref = self.actors[worker].embed.remote(chunk, batch_size)
                running[ref] = (start, len(chunk), worker)
                load[worker] += 1
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                start, count, worker = running.pop(ref)
                load[worker] -= 1
                out[start : start + count] = ray.get(ref)
                if progress:
                    progress(count)
        return out

    def close(self) -> None:
        ray = self._ray
        with contextlib.suppress(Exception):
            ray.get([actor.close.remote() for actor in self.actors], timeout=30)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []
        with contextlib.suppress(Exception):  # a cluster started here stops; one joined is left
            ray.shutdown()


def _package(folder: Path | None, cache_dir: Path | None, model_id: str) -> dict:
    """The model folder and its exported ONNX files, as bytes for the object store."""
    if folder is None:
        return {"model_label": "none", "model_name": "none", "model": {}, "cache": {}}
    folder = Path(folder)
    cache: dict[str, bytes] = {}
    if cache_dir is not None:
        exported = Path(cache_dir) / model_id.split("+")[0].replace("@", "-")
        if exported.is_dir():
            cache = {
                f"{exported.name}/{name}": data for name, data in _folder_files(exported).items()
            }
    # The model id names the folder (its parent when it is called "model"): keep both.
    return {
        "model_label": folder.parent.name,
        "model_name": folder.name,
        "model": _folder_files(folder),
        "cache": cache,
    }


class LazyClusterEmbedder:
    """The cluster's embedder, started on the first texts to embed: an index run that
    finds every text in the cache never starts or reaches a cluster."""

    def __init__(self, local, start):
        self.local = local
        self.model_id = local.model_id
        self.dimension = local.dimension
        self._start = start
        self._cluster: ClusterEmbedder | None = None
        self.started = False

    def __getattr__(self, name: str):
        return getattr(self.local, name)

    def _ready(self) -> ClusterEmbedder:
        if self._cluster is None:
            self.started = True
            self._cluster = self._start()
        return self._cluster

    def bulk_texts(self, batch_size: int) -> int:
        return (
            self._cluster.bulk_texts(batch_size)
            if self._cluster
            else batch_size * PIECE_BATCHES * 4
        )

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: ProgressFn | None = None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._ready().embed(texts, batch_size=batch_size, progress=progress)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


@contextlib.contextmanager
def cluster_embedder(
    address: str,
    local,
    *,
    backend: str,
    folder: Path | None,
    cache_dir: Path | None,
    threads: int = 1,
    workers: int | None = None,
    say=lambda message: None,
) -> Iterator[LazyClusterEmbedder]:
    """An embedder for the indexer that runs on a Ray cluster, connected to (or started)
    when it first has texts to embed; stops its workers (and a cluster it started) after.
    The address is checked at once; ConfigError (see ``start_cluster``) comes when the
    cluster is first needed."""
    parse_address(address)
    embedder = LazyClusterEmbedder(
        local,
        functools.partial(
            start_cluster,
            address,
            local,
            backend=backend,
            folder=folder,
            cache_dir=cache_dir,
            threads=threads,
            workers=workers,
            say=say,
        ),
    )
    try:
        yield embedder
    finally:
        embedder.close()


def start_cluster(
    address: str,
    local,
    *,
    backend: str,
    folder: Path | None,
    cache_dir: Path | None,
    threads: int = 1,
    workers: int | None = None,
    say=lambda message: None,
) -> ClusterEmbedder:
    """Connect to (or start) a Ray cluster and start its embedding workers.

    Raises ConfigError when Ray is missing, the cluster cannot be reached, or a worker
    computes another model id than ``local``.
    """
    ray = _import_ray()
    target, local_workers = parse_address(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if target is None:
            say(f"starting a local Ray cluster with {local_workers} worker processes")
            ray.init(
                num_cpus=local_workers * threads,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            say(f"connecting to the Ray cluster at {target}")
            _check_reachable(target)
            ray.init(address=target, log_to_driver=False, configure_logging=False)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "no cluster"
        raise ConfigError(f"could not reach the Ray cluster at {address}: {exc}") from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = workers or local_workers or max(1, cpus // max(1, threads))
        package = ray.put(_package(folder, cache_dir, local.model_id))
        actor = ray.remote(num_cpus=threads)(_Worker)
        actors = [actor.remote(package, backend, threads) for _ in range(count)]
        try:
            ids = ray.get([a.model_id.remote() for a in actors], timeout=600)
        except Exception as exc:  # noqa: BLE001 - a worker failed to load the model
            raise ConfigError(f"a cluster worker could not load the model: {exc}") from None
        wrong = {i for i in ids if i != local.model_id}
        if wrong:
            raise ConfigError(
                f"cluster workers compute model id {', '.join(sorted(wrong))}, this indexer "
                f"{local.model_id}: install the same version of kb and the model on every node"
            )
        say(
            f"{count} embedding workers ready on {len(ray.nodes())} node(s), {threads} thread(s) each"
        )
        return ClusterEmbedder(local, actors, ray)
    except BaseException:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise
