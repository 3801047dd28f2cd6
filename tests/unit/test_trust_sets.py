"""The development-set generators for confidence: held-out resolutions, and a new desk."""

import json

from scripts import holdout, newdesk


def read(path):
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()
    ]


def test_holding_resolutions_out_turns_their_queries_off_topic(tmp_path):
    incidents = [
        {
            "id": f"i{n}",
            "description": f"text {n}",
            "resolution": f"fix-{n % 4}",
            "status": "resolved",
        }
        for n in range(20)
    ]
    queries = [{"text": f"query {n}", "relevant": [f"fix-{n % 4}"]} for n in range(8)]
    far = [{"text": "banana bread", "relevant": []}, {"text": "in scope", "relevant": ["fix-0"]}]
    for name, rows in (("incidents.jsonl", incidents), ("dev.jsonl", queries), ("far.jsonl", far)):
        (tmp_path / name).write_text(
            "\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8"
        )
    out = tmp_path / "out"
    holdout.main(
        [
            "--incidents",
            str(tmp_path / "incidents.jsonl"),
            "--queries",
            str(tmp_path / "dev.jsonl"),
            "--out",
            str(out),
            "--share",
            "0.5",
            "--far",
            str(tmp_path / "far.jsonl"),
        ]
    )
    held = set((out / "held.txt").read_text().split())
    assert len(held) == 2
    reopened = read(out / "reopen.jsonl")
    assert {r["id"] for r in reopened} == {i["id"] for i in incidents if i["resolution"] in held}
    assert all(r["status"] == "open" for r in reopened)
    asked = read(out / "queries.jsonl")
    for query, original in zip(asked, queries, strict=False):
        assert (query["relevant"] == []) == (original["relevant"][0] in held)
    assert asked[-1] == {
        "text": "banana bread",
        "relevant": [],
    }  # far ones appended, in-scope ones not
    assert len(asked) == len(queries) + 1


def test_the_new_desk_holds_answerable_and_unanswerable_requests(tmp_path):
    counts = newdesk.build(tmp_path, seed=11)
    assert 200 <= counts["incidents"] <= 400 and counts["articles"] >= 5
    dev, report = read(tmp_path / "dev.jsonl"), read(tmp_path / "report.jsonl")
    for rows in (dev, report):
        assert sum(1 for q in rows if not q["relevant"]) >= 15
        assert sum(1 for q in rows if q["relevant"]) >= 50
    articles = {p.stem for p in (tmp_path / "articles").glob("*.md")}
    incidents = read(tmp_path / "incidents.jsonl")
    fixes = {i["resolution"] for i in incidents}
    for q in dev + report:
        for name in q["relevant"]:
            assert name in articles or name in fixes
    # The same seed gives the same set.
    again = tmp_path / "again"
    newdesk.build(again, seed=11)
    assert (again / "dev.jsonl").read_text() == (tmp_path / "dev.jsonl").read_text()
