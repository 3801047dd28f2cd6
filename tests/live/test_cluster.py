"""`kb index --cluster`: the embedding of an import spread over a local Ray cluster of two
worker processes gives the index a local `kb index` gives, through the same cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.index_files import load_index

pytest.importorskip("ray")
pytestmark = pytest.mark.real_model

DATA = Path(__file__).resolve().parents[1] / "data"


def kb(home: Path, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    env = dict(os.environ, KB_HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    env.pop("KB_EMBED_BACKEND", None)  # the default encoder: int8 documents, text by text
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def incidents_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "incidents.jsonl"
    products = ["vpn", "mail", "printer", "laptop"]
    with path.open("w") as out:
        for i in range(count):
            product = products[i % 4]
            out.write(
                json.dumps(
                    {
                        "id": f"INC-{i}",
                        "title": f"{product} problem number {i}",
                        "description": f"User reports the {product} fails with error E{i % 17} after the update "
                        f"on floor {i % 9}; restarting did not help. " * (1 + i % 3),
                        "resolution": f"Reinstalled the {product} agent and cleared cache {i % 5}.",
                        "status": "resolved",
                        "product": product,
                    }
                )
                + "\n"
            )
    return path


def built(home: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    index, config = load_index(home / "index")
    ids = np.sort(index.all_ids())
    return ids, np.vstack([index.vector(int(i)) for i in ids]), config


def test_a_cluster_index_equals_the_local_one(tmp_path):
    data = incidents_file(tmp_path, 240)
    homes = {}
    for name in ("local", "cluster"):
        home = homes[name] = tmp_path / name
        for args in (("init",), ("import", "incidents", str(data))):
            done = kb(home, *args)
            assert done.returncode == 0, done.stderr
    local = kb(homes["local"], "index", "--json")
    assert local.returncode == 0, local.stderr
    clustered = kb(homes["cluster"], "index", "--json", "--cluster", "local:2")
    assert clustered.returncode == 0, clustered.stderr
    assert "starting a local Ray cluster with 2 worker processes" in clustered.stderr
    assert "2 embedding workers ready" in clustered.stderr
    local_report, cluster_report = json.loads(local.stdout), json.loads(clustered.stdout)
    assert cluster_report["texts_embedded"] == local_report["texts_embedded"] >= 240
    ids_a, vectors_a, config_a = built(homes["local"])
    ids_b, vectors_b, config_b = built(homes["cluster"])
    assert config_a["model_id"] == config_b["model_id"] and config_a["model_id"].endswith(
        "+int8-docs"
    )
    assert (ids_a == ids_b).all() and len(ids_a) == local_report["vectors"]
    assert np.allclose(vectors_a, vectors_b, atol=1e-5)
    # The same content-hash cache: a second run embeds nothing, on the cluster or not.
    again = kb(homes["cluster"], "index", "--json", "--rebuild", "--cluster", "local:2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["texts_embedded"] == 0
    assert "Ray cluster" not in again.stderr  # nothing to embed: no cluster started


def test_cluster_errors_are_one_clear_line(tmp_path):
    home = tmp_path / "home"
    assert kb(home, "init").returncode == 0
    assert kb(home, "import", "incidents", str(incidents_file(tmp_path, 3))).returncode == 0
    bad = kb(home, "index", "--cluster", "local:zero")
    assert bad.returncode != 0 and "local:N needs a whole number" in bad.stderr
    lonely = kb(home, "index", "--cluster-workers", "2")
    assert lonely.returncode != 0 and "--cluster-workers needs --cluster" in lonely.stderr
    unreachable = kb(home, "index", "--cluster", "127.0.0.1:9", timeout=180)
    assert (
        unreachable.returncode != 0
        and "could not reach the Ray cluster at 127.0.0.1:9" in unreachable.stderr
    )
