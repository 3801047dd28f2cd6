"""A near-domain off-topic set from a development set: hold whole resolutions out.

    python -m scripts.holdout --incidents DIR/incidents.jsonl --queries DIR/dev.jsonl \
        --out OUT [--share 0.15] [--seed 7] [--far FILE]

Picks a seeded share of the resolutions that the queries name, writes ``OUT/held.txt``
(the resolution names held out), ``OUT/remove.txt`` (the incident ids a store loaded with
the full set must delete to match), ``OUT/reopen.jsonl`` (those incidents with status
"open": importing it over the full set takes them out of the prior resolutions) and
``OUT/queries.jsonl``: every query, those whose
resolution was held out now with ``"relevant": []`` (off-topic, but from the same domain),
plus the out-of-scope queries of ``--far`` (a file of far off-topic requests). Evaluate a
store without the held incidents on it with ``kb eval OUT/queries.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def held_incidents(incidents: list[dict], held: set[str]) -> list[str]:
    """Incidents that give a held resolution: by id, resolution text or article."""
    return [
        i["id"]
        for i in incidents
        if i["id"] in held
        or (i.get("resolution") or "") in held
        or (i.get("article_id") or "") in held
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", required=True, help="The development set's incidents.jsonl.")
    parser.add_argument("--queries", required=True, help="Its labelled queries (dev.jsonl).")
    parser.add_argument(
        "--out", required=True, help="Folder to write held.txt, remove.txt, queries.jsonl."
    )
    parser.add_argument(
        "--share", type=float, default=0.15, help="Share of the named resolutions to hold out."
    )
    parser.add_argument("--seed", type=int, default=7, help="Seed of the choice.")
    parser.add_argument(
        "--far", help="A JSONL file whose queries with an empty relevant list are added."
    )
    args = parser.parse_args(argv)
    incidents = [
        json.loads(line)
        for line in Path(args.incidents).read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    queries = [
        json.loads(line)
        for line in Path(args.queries).read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    names = sorted({q["relevant"][0] for q in queries if q.get("relevant")})
    rng = random.Random(args.seed)
    held = set(rng.sample(names, max(1, round(len(names) * args.share))))
    remove = held_incidents(incidents, held)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "held.txt").write_text("\n".join(sorted(held)) + "\n", encoding="utf-8")
    (out / "remove.txt").write_text("\n".join(remove) + "\n", encoding="utf-8")
    removed = set(remove)
    with (out / "reopen.jsonl").open("w", encoding="utf-8") as handle:
        for incident in incidents:
            if incident["id"] in removed:
                handle.write(json.dumps({**incident, "status": "open"}) + "\n")
    lines = []
    for q in queries:
        relevant = [r for r in q.get("relevant", []) if r not in held]
        lines.append({"text": q["text"], "relevant": relevant})
    if args.far:
        for line in Path(args.far).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                record = json.loads(line)
                if not record.get("relevant"):
                    lines.append({"text": record["text"], "relevant": []})
    with (out / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for record in lines:
            handle.write(json.dumps(record) + "\n")
    near = sum(
        1 for q in queries if q.get("relevant") and not [r for r in q["relevant"] if r not in held]
    )
    print(
        f"held {len(held)} of {len(names)} resolutions ({len(remove)} incidents to remove); "
        f"{near} near-domain off-topic queries, {len(lines) - len(queries)} far ones"
    )


if __name__ == "__main__":
    main()
