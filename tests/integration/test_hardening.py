"""What a damaged, busy, full or tampered-with home does to the service, and what a
hostile caller can and cannot do: each test fails when its protection goes."""

from __future__ import annotations

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
