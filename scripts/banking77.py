"""Turn the Banking77 training CSV into an incidents file and labelled query files.

Every row becomes a resolved incident whose description is the customer's text and whose
resolution is its intent. A seeded share of each intent is held out as labelled queries
for ``kb eval``; a second, disjoint share can be set aside as a development split, so that
design choices are made on the development split and the held-out split is only measured.

    python -m scripts.banking77 ../shared/data/banking77/train.csv --out data/b77

writes ``incidents.jsonl`` (everything not held out), ``heldout.jsonl``, and with
``--dev-fraction`` also ``incidents-dev.jsonl`` (everything not held out and not in dev)
and ``dev.jsonl``.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import click


def split_rows(rows: list[dict], holdout: float, dev: float, seed: int) -> tuple[list, list, list]:
    """(train, dev, heldout) row-number lists, stratified by intent, reproducible by seed."""
    by_intent: dict[str, list[int]] = defaultdict(list)
    for number, row in enumerate(rows):
        by_intent[row["category"]].append(number)
    rng = random.Random(seed)
    train, dev_rows, held = [], [], []
    for intent in sorted(by_intent):
        numbers = by_intent[intent][:]
        rng.shuffle(numbers)
        n_held = max(1, round(len(numbers) * holdout))
        n_dev = round(len(numbers) * dev)
        held += numbers[:n_held]
        dev_rows += numbers[n_held : n_held + n_dev]
        train += numbers[n_held + n_dev :]
    return sorted(train), sorted(dev_rows), sorted(held)


def incident(number: int, row: dict) -> dict:
    return {
        "id": f"b77-{number:05d}",
        "title": "",
        "description": row["text"],
        "resolution": row["category"],
        "resolution_code": row["category"],
        "category": row["category"],
        "product": "banking",
        "status": "resolved",
    }


def write_jsonl(path: Path, records) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write into.",
)
@click.option(
    "--holdout", default=0.1, show_default=True, help="Share of each intent held out for measuring."
)
@click.option(
    "--dev-fraction",
    default=0.0,
    show_default=True,
    help="Share of each intent set aside for design choices.",
)
@click.option("--seed", default=77, show_default=True, help="Seed of the split.")
def main(source: str, out_dir: str, holdout: float, dev_fraction: float, seed: int) -> None:
    """Banking77 train.csv -> incidents and labelled queries with a seeded split."""
    if not 0 < holdout < 1 or not 0 <= dev_fraction < 1 or holdout + dev_fraction >= 1:
        raise click.BadParameter(
            "holdout and dev fractions must be between 0 and 1 and leave rows to train on"
        )
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"text", "category"} <= set(rows[0]):
        raise click.ClickException(f"{source}: expected columns text,category")
    train, dev, held = split_rows(rows, holdout, dev_fraction, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    query = lambda n: {"text": rows[n]["text"], "relevant": [rows[n]["category"]]}  # noqa: E731
    n_inc = write_jsonl(
        out / "incidents.jsonl", (incident(n, rows[n]) for n in sorted(train + dev))
    )
    n_held = write_jsonl(out / "heldout.jsonl", (query(n) for n in held))
    click.echo(
        f"{out / 'incidents.jsonl'}: {n_inc} incidents; {out / 'heldout.jsonl'}: {n_held} queries"
    )
    if dev:
        n_dev_inc = write_jsonl(out / "incidents-dev.jsonl", (incident(n, rows[n]) for n in train))
        n_dev = write_jsonl(out / "dev.jsonl", (query(n) for n in dev))
        click.echo(
            f"{out / 'incidents-dev.jsonl'}: {n_dev_inc} incidents; {out / 'dev.jsonl'}: {n_dev} queries"
        )


if __name__ == "__main__":
    main()
