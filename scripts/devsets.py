"""Development sets for measuring the ranking on several kinds of desk.

    python -m scripts.devsets --out data/dev

writes one folder per set, each with ``incidents.jsonl`` (the store) and seeded query
files: ``dev.jsonl`` (for design choices) and ``report.jsonl`` (only measured):

- ``b77``: Banking77, short requests, 77 fine resolutions (one per intent).
- ``b77-coarse``: the same requests with the intents merged into seven resolver groups,
  a desk with few resolutions and over a thousand incidents each.
- ``b77-noisy``: b77-coarse where a fifth of the stored incidents were routed to a random
  group (as mis-routed tickets are); queries keep their true group.
- ``b77-route``: b77 with each incident's and query's coarse group as its assignment group,
  for measuring triage's routing with `kb eval`.
- ``asf``: Apache JIRA bug reports (long, with logs and stack traces); each known
  duplicate is asked against the store of the other reports; its resolution is its own,
  so there is no shared-resolution evidence. Reports' own ``resolution`` field is masked.
- ``b77-free`` and ``b77-coarse-free``: b77 and b77-coarse where each stored incident
  closes with its own note in an agent's voice (scripts.freenotes), as real tickets do,
  so almost no two resolution texts are equal. The resolution each note stands for is the
  incident's ``resolution_code``, which the queries name in ``relevant`` (``kb eval``
  matches a result through the codes of the incidents behind it); the category is the
  coarse group in ``b77-free`` and empty in ``b77-coarse-free`` (where it would be the
  answer). Queries are those of the labelled twin.
- ``oos``: out-of-scope requests across everyday domains, mixed into the b77 query files
  as ``dev-mixed.jsonl`` / ``report-mixed.jsonl``.

Splits are seeded; the report split is never used to choose anything.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import click

from scripts.banking77 import split_rows, write_jsonl
from scripts.freenotes import close_note

# Banking77 intents merged into resolver groups by what the intent is about.
COARSE_GROUPS = (
    ("Card delivery and activation", ("card_arrival", "card_delivery", "activate", "order_physical",
                                      "get_physical", "card_linking", "getting_spare", "virtual_card",
                                      "getting_virtual", "card_acceptance", "supported_cards")),
    ("Lost, stolen and blocked cards", ("lost_or_stolen", "compromised", "pin_blocked", "change_pin",
                                        "card_swallowed", "card_not_working", "contactless",
                                        "card_about_to_expire", "virtual_card_not_working",
                                        "passcode", "lost_or_stolen_phone")),
    ("Top-ups", ("top_up", "topping_up")),
    ("Transfers and payments", ("transfer", "beneficiary", "direct_debit", "receiving_money",
                                "declined_card_payment", "reverted_card_payment", "pending_card_payment",
                                "card_payment_not_recognised", "balance_not_updated")),
    ("Cash and ATMs", ("cash", "atm")),
    ("Fees, exchange and statements", ("fee", "charge", "exchange", "currency", "refund", "statement")),
    ("Account and identity", ("verify", "identity", "account", "age_limit", "edit_personal",
                              "country_support", "apple_pay", "disposable", "unable_to_verify",
                              "why_verify", "personal_details", "terminate")),
)


NOISE_SHARE = 0.2


def coarse_group(intent: str) -> str:
    for name, keys in COARSE_GROUPS:
        if any(key in intent.lower() for key in keys):
            return name
    return "Account and identity"


def banking_sets(source: Path, out: Path, seed: int) -> None:
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train, dev, held = split_rows(rows, 0.1, 0.1, seed)
    groups = [name for name, _ in COARSE_GROUPS]
    noise = random.Random(seed + 1)
    # Mis-routed tickets: a share of the stored incidents carry another group's name.
    misrouted = {n: noise.choice(groups) for n in train if noise.random() < NOISE_SHARE}
    sets = (("b77", lambda n: rows[n]["category"]), ("b77-coarse", lambda n: coarse_group(rows[n]["category"])),
            ("b77-noisy", lambda n: misrouted.get(n) or coarse_group(rows[n]["category"])))
    for name, label in sets:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "incidents.jsonl", (
            {"id": f"b77-{n:05d}", "title": "", "description": rows[n]["text"], "resolution": label(n),
             "category": label(n), "product": "banking", "status": "resolved"} for n in train))
        truth = sets[1][1] if name == "b77-noisy" else label
        write_jsonl(folder / "dev.jsonl", ({"text": rows[n]["text"], "relevant": [truth(n)]} for n in dev))
        write_jsonl(folder / "report.jsonl", ({"text": rows[n]["text"], "relevant": [truth(n)]} for n in held))
        sizes = defaultdict(int)
        for n in train:
            sizes[label(n)] += 1
        click.echo(f"{name}: {len(train)} incidents in {len(sizes)} resolutions, {len(dev)} dev, {len(held)} report")


def free_text_sets(out: Path, seed: int) -> None:
    """``b77-free`` / ``b77-coarse-free``: the labelled twins' incidents, each closed with
    its own free-text note; the label moves to ``resolution_code``."""
    for twin, coarse in (("b77", False), ("b77-coarse", True)):
        folder = out / f"{twin}-free"
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed + (3 if coarse else 2))
        source = [json.loads(line) for line in (out / "b77" / "incidents.jsonl").read_text(encoding="utf-8").split("\n")
                  if line.strip()]
        records = []
        for incident in source:
            intent = incident["resolution"]
            group = coarse_group(intent)
            label = group if coarse else intent
            records.append(dict(incident, resolution=close_note(group, intent, rng), resolution_code=label,
                                category="" if coarse else group))
        write_jsonl(folder / "incidents.jsonl", records)
        for split in ("dev", "report"):
            text = (out / twin / f"{split}.jsonl").read_text(encoding="utf-8")
            (folder / f"{split}.jsonl").write_text(text, encoding="utf-8")
        distinct = len({r["resolution"] for r in records})
        click.echo(f"{twin}-free: {len(records)} incidents, {distinct} distinct resolution texts")


def routing_set(out: Path) -> None:
    """``b77-route``: b77 with each incident's coarse group as its assignment group, and
    each query labelled with its group too, so `kb eval` measures triage's routing."""
    folder = out / "b77-route"
    folder.mkdir(parents=True, exist_ok=True)
    lines = (out / "b77" / "incidents.jsonl").read_text(encoding="utf-8").split("\n")
    incidents = [json.loads(line) for line in lines if line.strip()]
    write_jsonl(folder / "incidents.jsonl", (dict(i, assignment_group=coarse_group(i["category"])) for i in incidents))
    for split in ("dev", "report"):
        queries = [json.loads(line) for line in (out / "b77" / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
                   if line.strip()]
        write_jsonl(folder / f"{split}.jsonl", (dict(q, assignment_group=coarse_group(q["relevant"][0]))
                                                for q in queries if q["relevant"]))
    click.echo(f"b77-route: {len(incidents)} incidents with one of {len(COARSE_GROUPS)} assignment groups")


def mixed_files(out: Path, oos_file: Path, seed: int) -> None:
    oos = [json.loads(line) for line in oos_file.read_text(encoding="utf-8").split("\n") if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(oos)
    half = len(oos) // 2
    for split, extra in (("dev", oos[:half]), ("report", oos[half:])):
        lines = [x for x in (out / "b77" / f"{split}.jsonl").read_text(encoding="utf-8").split("\n") if x.strip()]
        records = [json.loads(line) for line in lines] + [{"text": o["text"], "relevant": []} for o in extra]
        write_jsonl(out / "b77" / f"{split}-mixed.jsonl", records)
        click.echo(f"b77/{split}-mixed.jsonl: {len(lines)} in scope, {len(extra)} out of scope")


def asf_set(source: Path, out: Path, seed: int, max_chars: int) -> None:
    reports = [json.loads(line) for line in (source / "reports.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    pairs = [json.loads(line) for line in (source / "duplicates.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    pairs = [p for p in pairs if not p.get("mentions_target_id")]
    query_ids = {p["id"] for p in pairs}
    by_id = {r["id"]: r for r in reports}
    folder = out / "asf"
    folder.mkdir(parents=True, exist_ok=True)
    stored = [r for r in reports if r["id"] not in query_ids]
    stored_ids = {r["id"] for r in stored}
    write_jsonl(folder / "incidents.jsonl", (
        {"id": r["id"], "title": r["title"], "description": (r.get("description") or "")[:max_chars],
         # Each report's resolution is its own: the store has no shared-resolution evidence.
         "resolution": f"Resolved as reported in {r['id']}", "category": r.get("component") or "",
         "product": r["product"], "status": "resolved", "opened_at": r["created"]} for r in stored))
    queries = []
    for p in pairs:
        targets = [t for t in p["duplicate_of"] if t in stored_ids]
        if targets:
            r = by_id[p["id"]]
            queries.append({"text": f"{r['title']}\n{r.get('description') or ''}".strip(), "relevant": targets})
    rng = random.Random(seed)
    rng.shuffle(queries)
    half = len(queries) // 2
    write_jsonl(folder / "dev.jsonl", queries[:half])
    write_jsonl(folder / "report.jsonl", queries[half:])
    click.echo(f"asf: {len(stored)} incidents, {half} dev, {len(queries) - half} report queries")


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--data", "data_dir", default="../shared/data", show_default=True,
              type=click.Path(file_okay=False), help="Folder holding banking77/ and asf-jira-dup-bugs/.")
@click.option("--seed", default=77, show_default=True, help="Seed of the splits.")
@click.option("--max-chars", default=20000, show_default=True, help="Cap on a bug report's description.")
def main(out_dir: str, data_dir: str, seed: int, max_chars: int) -> None:
    """Write the development sets (stores and seeded dev/report query files)."""
    out, data = Path(out_dir), Path(data_dir)
    banking_sets(data / "banking77" / "train.csv", out, seed)
    routing_set(out)
    free_text_sets(out, seed)
    mixed_files(out, Path(__file__).parent / "data" / "out-of-scope-mixed.jsonl", seed)
    asf_set(data / "asf-jira-dup-bugs", out, seed, max_chars)


if __name__ == "__main__":
    main()
