"""Under load: 16 clients mixing suggest, feedback and incident upserts against a real
`kb serve --workers 2` for a bounded time. No 5xx, no timeouts, no hung clients, and every
acknowledged write is in the store.

The default run lasts 8 s with the hashing embedder; `pytest -m slow` runs 60 s. Timings are
reported, never asserted (they belong to benchmarks, not tests).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kb.store import open_store
from scripts.loadtest import main, parse_mix, percentile, run_load
from tests.live_server import LiveServer, create_token, prepare_home


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("load") / "home"
    prepare_home(home)
    token = create_token(home, "integration")
    with LiveServer(home, workers=2) as server:
        yield server, token


def written(home) -> tuple[int, int]:
    """Feedback rows and incidents the load test has written so far."""
    with open_store(home, create=False) as store:
        feedback = store.db.execute(
            "SELECT count(*) FROM feedback WHERE agent LIKE 'loadtest-%'"
        ).fetchone()[0]
        incidents = store.db.execute(
            "SELECT count(*) FROM incidents WHERE id LIKE 'loadtest-%'"
        ).fetchone()[0]
    return feedback, incidents


def run_and_check(live, seconds: float) -> dict:
    server, token = live
    before = written(server.home)
    report = run_load(
        server.url, token, seconds=seconds, clients=16, timeout=30, server_pid=server.process.pid
    )
    print(
        f"\nload test ({seconds} s): "
        + json.dumps(
            {
                k: report[k]
                for k in ("requests", "throughput_rps", "statuses", "failed", "latency", "workers")
            }
        )
    )
    assert report["failed"] == 0, report["messages"]
    assert (report["server_errors"], report["timeouts"], report["hung_clients"]) == (0, 0, 0)
    assert set(report["operations"]) == {"suggest", "feedback", "incidents"}
    assert all(stats["requests"] > 0 for stats in report["operations"].values())
    assert len(report["workers"]) == 2
    assert all(w["rss_mb_start"] and w["rss_mb_end"] for w in report["workers"])
    # Every acknowledged write is in the store: each suggestion gets one feedback, and
    # each upsert a new incident id.
    ops = report["operations"]
    after = written(server.home)
    assert after[0] - before[0] == ops["feedback"]["requests"] - ops["feedback"]["failed"]
    assert after[1] - before[1] == ops["incidents"]["requests"] - ops["incidents"]["failed"]
    return report


def test_mixed_load_has_no_errors(live):
    run_and_check(live, seconds=8)


@pytest.mark.slow
def test_mixed_load_for_a_minute(live):
    run_and_check(live, seconds=60)


def test_loadtest_command_line(live):
    server, token = live
    result = CliRunner().invoke(
        main, ["--url", server.url, "--token", token, "--seconds", "1", "--clients", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["requests"] > 0 and report["failed"] == 0
    # Workers are found by the listening port when no PID is given.
    assert len(report["workers"]) == 2


def test_loadtest_reports_failures(live):
    server, _ = live
    result = CliRunner().invoke(
        main,
        [
            "--url",
            server.url,
            "--token",
            "kbt_wrong",
            "--seconds",
            "0.5",
            "--clients",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["client_errors"] == report["failed"] > 0
    assert "401" in report["statuses"]


def test_loadtest_helpers():
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert parse_mix("suggest=1,incidents=0") == {"suggest": 1.0, "incidents": 0.0}
    for bad in ("search=1", "suggest=x", "suggest=0", "suggest=-1"):
        with pytest.raises(Exception, match="."):
            parse_mix(bad)


def test_stemming_is_safe_from_many_threads():
    """Request threads stem query words at once; a shared stemmer mixed their words up."""
    import random
    import threading

    from kb.lexical import stem as cached_stem

    stem = cached_stem.__wrapped__  # past the cache, to the stemmer itself
    words = [
        "disconnecting",
        "generalizations",
        "oscillators",
        "happily",
        "relational",
        "conditional",
        "digitizer",
        "vietnamization",
        "predication",
        "decisiveness",
        "hopefulness",
        "callousness",
        "sensitivities",
        "printers",
        "mailboxes",
    ]
    expected = {word: stem(word) for word in words}
    wrong: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(5000):
            word = rng.choice(words)
            try:
                if stem(word) != expected[word]:
                    wrong.append(word)
            except IndexError:
                wrong.append(f"{word} (IndexError)")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong[:5]
