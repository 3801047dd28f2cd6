"""A killed `kb index` never breaks search, and the next run puts everything right.

A real server keeps answering /api/v1/suggest while `kb index` (a subprocess) is SIGKILLed
over many rounds: at random moments, right after its first chunks are written, and while
it publishes. Between rounds incidents are added, changed and taken out of search, and
some rounds rebuild. Not one query may fail; CURRENT must name a loadable version after
every kill; the last `kb index` must finish and agree with the store, `kb doctor` must
say so, and the server must move to that version.

Also: `kb doctor` finds and repairs each kind of damage it knows about.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer.embedders import HashingEmbedder
from indexer.index_files import current_version, load_index
from indexer.pipeline import check_index
from kb.app.doctor import diagnose, leftover_files
from kb.store import open_store
from tests.live_server import LiveServer, create_token, kb, prepare_home, request, server_env

MODEL_ID = HashingEmbedder().model_id
WORDS = (
    "vpn printer mailbox outlook password reset login sso token certificate expired disk full "
    "backup restore laptop screen flicker wifi drops driver update crash freeze slow network "
    "proxy dns timeout billing refund invoice duplicate charge account locked mfa phone app "
    "sync calendar share folder permission denied license activation error install fails"
).split()


def write_incidents(
    path: Path,
    count: int,
    rng: random.Random,
    *,
    prefix: str = "GEN",
    start: int = 0,
    open_share: float = 0.0,
) -> Path:
    """Synthetic incidents: enough text that indexing takes a moment."""
    with open(path, "w") as handle:
        for n in range(start, start + count):
            words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
            handle.write(
                json.dumps(
                    {
                        "id": f"{prefix}-{n:05d}",
                        "title": words(5),
                        "description": words(rng.randint(20, 120)),
                        "resolution": words(rng.randint(5, 25)),
                        "status": "open" if rng.random() < open_share else "resolved",
                        "product": rng.choice(["mail", "net", "auth"]),
                        "category": "it",
                    }
                )
                + "\n"
            )
    return path


def kb_process(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", *args],
        env=server_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_kb(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        env=server_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class QueryLoad:
    """Threads that ask the server for suggestions until stopped; every answer must be 200."""

    def __init__(self, url: str, token: str, threads: int = 1):
        self.url, self.token = url, token
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, number: int) -> None:
        rng = random.Random(number)
        while not self.stop.is_set():
            body = {
                "title": " ".join(rng.choice(WORDS) for _ in range(4)),
                "description": " ".join(rng.choice(WORDS) for _ in range(25)),
                "k": 5,
            }
            try:
                status, answer = request(
                    self.url, "POST", "/api/v1/suggest", body, token=self.token, timeout=30
                )
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"no answer: {exc!r}")
                continue
            if status == 200 and answer["results"]:
                self.ok += 1
            else:
                self.failures.append(f"{status}: {str(answer)[:300]}")

    def __enter__(self) -> QueryLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def kill_indexer(
    home: Path, how: str, rng: random.Random, *, rebuild: bool, typical_seconds: float
) -> str:
    """Start `kb index` and SIGKILL it; returns where it was when killed."""
    index_root = home / "index"
    earlier = set(index_root.glob(".tmp-*"))  # left by an earlier round's kill
    with open_store(home, create=False) as store:
        head = store.log_head()
        process = kb_process(home, "index", *(["--rebuild"] if rebuild else []))
        began = time.monotonic()
        deadline = began + (rng.uniform(0.1, 1.0) * typical_seconds if how == "random" else 120)
        phase = "timer"
        while process.poll() is None and time.monotonic() < deadline:
            if how == "first_chunks" and store.log_head() > head:
                phase = "after its first chunks"
                break
            if how == "publishing" and set(index_root.glob(".tmp-*")) - earlier:
                phase = "while publishing"
                break
            time.sleep(0.002)
    if process.poll() is not None:
        return "finished before the kill"
    process.kill()
    process.wait(timeout=30)
    return f"{phase} ({time.monotonic() - began:.1f} s)"


def change_incidents(home: Path, rng: random.Random, round_number: int, count: int) -> None:
    """New incidents, changed ones, and some taken out of search (status open)."""
    path = write_incidents(
        home.parent / f"round-{round_number}.jsonl",
        count,
        rng,
        start=rng.randrange(0, 1000),
        open_share=0.2,
    )
    kb(home, "import", "incidents", str(path))


def run_indexer_kills(tmp_path: Path, *, incidents: int, rounds: int, seed: int) -> dict:
    rng = random.Random(seed)
    home = tmp_path / "home"
    began = time.monotonic()
    prepare_home(home, incidents=write_incidents(tmp_path / "gen.jsonl", incidents, rng))
    typical = max(time.monotonic() - began, 3.0)
    timings = {"prepare": round(typical, 1)}
    token = create_token(home, "agent")
    phases: list[str] = []
    with LiveServer(home, workers=2) as server, QueryLoad(server.url, token) as load:
        for round_number in range(rounds):
            change_incidents(home, rng, round_number, count=rng.randint(50, 250))
            how = ("random", "first_chunks", "publishing")[round_number % 3]
            rebuild = round_number % 4 == 3
            phases.append(
                kill_indexer(home, how, rng, rebuild=rebuild, typical_seconds=typical)
                + (" [rebuild]" if rebuild else "")
            )
            # Whatever the moment, CURRENT names a complete version.
            index, _ = load_index(home / "index", MODEL_ID)
            assert len(index) > 0
        timings["rounds"] = round(time.monotonic() - began - typical, 1)
        finished = run_kb(home, "index")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        version = current_version(home / "index")
        with open_store(home, create=False) as store:
            head, chunks = store.log_head(), store.count_chunks()
        # The server catches up by itself: its vectors are the store's chunks.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, health = request(server.url, "GET", "/api/v1/health", token=token)
            if (health.get("log_seq"), health.get("vectors")) == (head, chunks):
                break
            time.sleep(0.2)
        assert (status, health.get("log_seq"), health.get("vectors")) == (200, head, chunks), health
    assert load.ok > 0
    assert not load.failures, (
        f"{len(load.failures)} failed queries (seed {seed}): {load.failures[:5]}"
    )
    doctor = run_kb(home, "doctor", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and report["ok"], doctor.stdout
    assert not report["warnings"], report["warnings"]
    with open_store(home, create=False) as store:
        assert check_index(store, home / "index", MODEL_ID) == []
        assert store.orphan_chunk_docs() == []
    timings["total"] = round(time.monotonic() - began, 1)
    return {
        "rounds": rounds,
        "timings": timings,
        "kill_points": phases,
        "queries_ok": load.ok,
        "queries_failed": len(load.failures),
        "chunks": chunks,
        "version": version,
    }


def test_killed_indexer_never_breaks_search(tmp_path):
    seed = int(os.environ.get("KB_TEST_SEED") or random.SystemRandom().randrange(1_000_000))
    summary = run_indexer_kills(tmp_path, incidents=600, rounds=6, seed=seed)
    print(f"\nindexer kills (seed {seed}): {summary}")


@pytest.mark.slow
def test_killed_indexer_never_breaks_search_many_rounds(tmp_path):
    seed = int(os.environ.get("KB_TEST_SEED") or random.SystemRandom().randrange(1_000_000))
    rounds = int(os.environ.get("KB_TEST_KILL_ROUNDS", "24"))
    summary = run_indexer_kills(tmp_path, incidents=4000, rounds=rounds, seed=seed)
    print(f"\nindexer kills, long (seed {seed}): {summary}")


# --- kb doctor ---------------------------------------------------------------------------


@pytest.fixture
def doctor_home(tmp_path):
    home = tmp_path / "home"
    prepare_home(home)
    return home


def doctor(home: Path, *args: str) -> tuple[int, dict]:
    from click.testing import CliRunner

    from scripts.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--home", str(home), "doctor", "--json", *args],
        env=server_env(home),
        catch_exceptions=False,
    )
    return result.exit_code, json.loads(result.output)


def codes(report: dict) -> set[str]:
    return {p["code"] for p in report["problems"]}


def test_doctor_passes_a_healthy_home(doctor_home):
    status, report = doctor(doctor_home)
    assert (status, report["ok"], report["problems"]) == (0, True, [])
    assert report["facts"]["index_vectors"] == report["facts"]["store_chunks"] > 0


def damage_current_missing(home: Path) -> None:
    (home / "index" / "CURRENT").write_text("v-gone")


def damage_leftovers(home: Path) -> None:
    (home / "index" / ".tmp-v1-abc").mkdir()
    (home / "index" / ".tmp-v1-abc" / "vectors.faiss").write_bytes(b"half")
    (home / "index" / ".CURRENT.v1-abc").write_text("v1-abc")


def damage_pending(home: Path) -> None:
    kb(
        home,
        "import",
        "incidents",
        str(write_incidents(home.parent / "more.jsonl", 5, random.Random(1))),
    )


def damage_broken_vectors(home: Path) -> None:
    version = current_version(home / "index")
    (home / "index" / version / "vectors.faiss").write_bytes(b"not a faiss index")


def damage_orphans(home: Path) -> None:
    # What an interrupted rebuild left behind in earlier versions: chunks nobody tracks.
    with open_store(home, create=False) as store, store.write():
        store.db.execute("DELETE FROM indexed_docs WHERE doc_kind = 'incident'")


def damage_foreign_index(home: Path) -> None:
    # An index folder copied from another data home: its ids do not match this store.
    config_path = home / "index" / current_version(home / "index") / "config.json"
    config = json.loads(config_path.read_text())
    config["log_seq"] = 10**9
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (damage_current_missing, {"current_missing"}),
        (damage_leftovers, {"temp_leftovers"}),
        (damage_pending, {"pending_documents"}),
        (damage_broken_vectors, {"index_unreadable"}),
        (damage_orphans, {"orphan_chunks"}),
        (damage_foreign_index, {"index_ahead"}),
    ],
)
def test_doctor_finds_and_repairs(doctor_home, damage, expected):
    damage(doctor_home)
    status, report = doctor(doctor_home)
    assert status == 1 and not report["ok"]
    assert expected <= codes(report), report["problems"]
    status, repaired = doctor(doctor_home, "--repair")
    assert (status, repaired["ok"], repaired["problems"]) == (0, True, []), repaired
    assert repaired["repairs"], "a repair must say what it did"
    assert leftover_files(doctor_home / "index") == []
    with open_store(doctor_home, create=False) as store:
        assert check_index(store, doctor_home / "index", MODEL_ID) == []


def test_doctor_refuses_to_repair_while_an_indexer_runs(doctor_home):
    from indexer.index_files import indexing_lock

    damage_leftovers(doctor_home)
    with indexing_lock(doctor_home / "index"):
        with open_store(doctor_home, create=False) as store:
            report = diagnose(store, doctor_home / "index", MODEL_ID)
        # A running indexer's staging folder is not a leftover.
        assert "temp_leftovers" not in codes(report.to_dict()) and report.notes
        from click.testing import CliRunner

        from scripts.cli import cli

        result = CliRunner().invoke(
            cli, ["--home", str(doctor_home), "doctor", "--repair"], env=server_env(doctor_home)
        )
        assert result.exit_code == 1 and "another `kb index`" in result.output
    assert (doctor_home / "index" / ".tmp-v1-abc").exists()
