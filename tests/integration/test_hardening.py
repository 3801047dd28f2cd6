"""What a damaged, busy, full or tampered-with home does to the service, and what a
hostile caller can and cannot do: each test fails when its protection goes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.index_files import current_version, load_index
from kb.errors import IndexDamagedError
from web import create_app

# --- a damaged index version ----------------------------------------------------------------

DAMAGE = {
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: b"\x00garbage\xff" * 64,
}


def _damage_current(service, how: str) -> tuple[str, str]:
    """Publish a second version, then damage it; returns (older, damaged) version names."""
    older = current_version(service.index_root)
    service.index(rebuild=True)
    damaged = current_version(service.index_root)
    assert damaged != older
    path = Path(service.index_root) / damaged / "vectors.faiss"
    path.write_bytes(DAMAGE[how](path.read_bytes()))
    return older, damaged


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_current_index_falls_back_to_the_newest_sound_version(indexed, how):
    older, damaged = _damage_current(indexed, how)
    with pytest.raises(IndexDamagedError):
        load_index(indexed.index_root)
    index, config = load_index(indexed.index_root, fallback=True)
    assert config["version"] == older and config["damaged_version"] == damaged
    assert "vectors.faiss" in config["damage"] and len(index) > 0


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_the_app_keeps_answering_on_a_damaged_index_and_says_so(indexed, config, auth, how, caplog):
    older, damaged = _damage_current(indexed, how)
    indexed.drop_search_state()
    client = create_app({"TESTING": True}, config=config, service=indexed).test_client()
    # An incident stored after the older version was built is found too (change log).
    created = client.post("/api/v1/incidents", headers=auth("integration"),
                          json={"id": "AFTER-DAMAGE", "title": "Zebracorn printer spooler jams",
                                "resolution": "Restart the zebracorn spooler", "status": "resolved"})
    assert created.status_code == 201
    answer = client.post("/api/v1/suggest", headers=auth(), json={"title": "zebracorn spooler jams"})
    assert answer.status_code == 200
    assert answer.get_json()["results"][0]["id"] == "AFTER-DAMAGE"
    health = client.get("/api/v1/health", headers=auth())
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "degraded"
    assert body["index_version"] == older and body["index_damaged"]["version"] == damaged
    assert client.get("/api/v1/health").get_json()["status"] == "degraded"
    assert any("INDEX DAMAGED" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


# --- an erasure while an indexer holds the lock -------------------------------------------------


def test_erasing_while_an_indexer_runs_answers_202_and_finishes_when_the_lock_frees(indexed, client, auth):
    from indexer.index_files import indexing_lock
    from kb.app.privacy import scan_home

    store = indexed.store()
    needle = "Quixoticfinch overflow"
    created = client.post("/api/v1/incidents", headers=auth("integration"),
                          json={"id": "INC-1001", "title": needle, "resolution": "Drain the finch queue",
                                "status": "resolved"})
    assert created.status_code == 201
    with indexing_lock(indexed.index_root):
        response = client.delete("/api/v1/incidents/INC-1001", headers=auth("admin"))
        assert response.status_code == 202, response.get_json()
        body = response.get_json()
        assert body["state"] == "finishing" and body["erased"] == ["INC-1001"]
        time.sleep(1.0)
        assert store.pending_erasures()  # it cannot finish while the lock is held
    deadline = time.monotonic() + 30
    while store.pending_erasures() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not store.pending_erasures()
    assert not scan_home(indexed.home, needle=needle).needle_hits
    # Without a running indexer the answer is final at once.
    done = client.delete("/api/v1/incidents/T-2", headers=auth("admin"))
    assert done.status_code == 200 and done.get_json()["state"] == "done"


def test_kb_index_finishes_an_erasure_that_waited_for_its_lock(indexed):
    from click.testing import CliRunner

    from scripts.cli import cli

    indexed.store().erase_incidents(["T-1"], actor="test")
    assert indexed.store().pending_erasures()
    result = CliRunner().invoke(cli, ["--home", str(indexed.home), "index"],
                                env={"KB_EMBED_BACKEND": "hashing"})
    assert result.exit_code == 0, result.output
    assert "finished 1 erasure(s)" in result.output
    assert not indexed.store().pending_erasures()
