"""`kb bench --plan`: what a store of N incidents needs, scaled from figures per incident."""

import pytest

from kb.errors import KBError
from scripts.bench import capacity
from scripts.bench.capacity import FIXED, GB, PER_INCIDENT, check, plan


def test_the_plan_scales_each_cost_and_counts_the_mapped_index_once(tmp_path):
    docs = 2_000_000
    one = plan(docs, tmp_path, 1, memory=100 * GB, disk=100 * GB)
    two = plan(docs, tmp_path, 2, memory=100 * GB, disk=100 * GB)
    serving_one, serving_two = one["needs"][2]["needed_bytes"], two["needs"][2]["needed_bytes"]
    # A second worker adds its own memory, not a second copy of the index file.
    assert serving_two - serving_one == one["per_worker_bytes"]
    assert (
        one["per_worker_bytes"]
        == FIXED["worker_bytes"] + docs * PER_INCIDENT["worker_unique_bytes"]
    )
    assert one["index_file_bytes"] == docs * PER_INCIDENT["index_file_bytes"]
    disk = one["needs"][0]["needed_bytes"]
    assert disk == docs * (PER_INCIDENT["store_bytes"] + 2 * PER_INCIDENT["index_file_bytes"])
    assert one["fits"] and two["fits"]
    assert one["estimated_hours"] == pytest.approx(
        (FIXED["bench_seconds"] + docs * PER_INCIDENT["bench_seconds"]) / 3600, abs=0.06
    )


def test_a_run_that_does_not_fit_is_refused_naming_each_part(tmp_path, monkeypatch):
    small = plan(10_000_000, tmp_path, 2, memory=4 * GB, disk=500 * GB)
    assert not small["fits"]
    assert [(need["part"].split(":")[0], need["fits"]) for need in small["needs"]] == [
        ("disk", True),
        ("memory", False),
        ("memory", False),
    ]
    monkeypatch.setattr(capacity, "available_memory", lambda: 4 * GB)
    monkeypatch.setattr(capacity, "free_disk", lambda path: 500 * GB)
    with pytest.raises(KBError) as refused:
        check(10_000_000, tmp_path, 2)
    message = str(refused.value)
    assert (
        "DOES NOT FIT" in message
        and "building the index" in message
        and "serving with 2 workers" in message
    )
    assert "disk" not in message.split("\n", 1)[1].split("(kb bench")[0]  # the disk fits: not named
    assert check(1_000, tmp_path, 2)["fits"]
