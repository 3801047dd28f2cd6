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
- ``b77-desk``: a help desk of 19 resolver groups of uneven size (Banking77 intents merged
  by hand, some groups thinned), with category, product, priority and customer tier on every
  incident and query; a share of stored incidents was reassigned (``escalated``), some of them
  closed under a wrong group; top-tier customers' disputes and card-security incidents go to
  a premium desk. See ``desk_set``.
- ``oos``: out-of-scope requests across everyday domains, mixed into the b77 query files
  as ``dev-mixed.jsonl`` / ``report-mixed.jsonl``.

Splits are seeded; the report split is never used to choose anything.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import click

from scripts.banking77 import split_rows, write_jsonl
from scripts.freenotes import close_note

# Banking77 intents merged into resolver groups by what the intent is about.
COARSE_GROUPS = (
    (
        "Card delivery and activation",
        (
            "card_arrival",
            "card_delivery",
            "activate",
            "order_physical",
            "get_physical",
            "card_linking",
            "getting_spare",
            "virtual_card",
            "getting_virtual",
            "card_acceptance",
            "supported_cards",
        ),
    ),
    (
        "Lost, stolen and blocked cards",
        (
            "lost_or_stolen",
            "compromised",
            "pin_blocked",
            "change_pin",
            "card_swallowed",
            "card_not_working",
            "contactless",
            "card_about_to_expire",
            "virtual_card_not_working",
            "passcode",
            "lost_or_stolen_phone",
        ),
    ),
    ("Top-ups", ("top_up", "topping_up")),
    (
        "Transfers and payments",
        (
            "transfer",
            "beneficiary",
            "direct_debit",
            "receiving_money",
            "declined_card_payment",
            "reverted_card_payment",
            "pending_card_payment",
            "card_payment_not_recognised",
            "balance_not_updated",
        ),
    ),
    ("Cash and ATMs", ("cash", "atm")),
    (
        "Fees, exchange and statements",
        ("fee", "charge", "exchange", "currency", "refund", "statement"),
    ),
    (
        "Account and identity",
        (
            "verify",
            "identity",
            "account",
            "age_limit",
            "edit_personal",
            "country_support",
            "apple_pay",
            "disposable",
            "unable_to_verify",
            "why_verify",
            "personal_details",
            "terminate",
        ),
    ),
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
    sets = (
        ("b77", lambda n: rows[n]["category"]),
        ("b77-coarse", lambda n: coarse_group(rows[n]["category"])),
        ("b77-noisy", lambda n: misrouted.get(n) or coarse_group(rows[n]["category"])),
    )
    for name, label in sets:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(
            folder / "incidents.jsonl",
            (
                {
                    "id": f"b77-{n:05d}",
                    "title": "",
                    "description": rows[n]["text"],
                    "resolution": label(n),
                    "category": label(n),
                    "product": "banking",
                    "status": "resolved",
                }
                for n in train
            ),
        )
        truth = sets[1][1] if name == "b77-noisy" else label
        write_jsonl(
            folder / "dev.jsonl", ({"text": rows[n]["text"], "relevant": [truth(n)]} for n in dev)
        )
        write_jsonl(
            folder / "report.jsonl",
            ({"text": rows[n]["text"], "relevant": [truth(n)]} for n in held),
        )
        sizes = defaultdict(int)
        for n in train:
            sizes[label(n)] += 1
        click.echo(
            f"{name}: {len(train)} incidents in {len(sizes)} resolutions, {len(dev)} dev, {len(held)} report"
        )


def free_text_sets(out: Path, seed: int) -> None:
    """``b77-free`` / ``b77-coarse-free``: the labelled twins' incidents, each closed with
    its own free-text note; the label moves to ``resolution_code``."""
    for twin, coarse in (("b77", False), ("b77-coarse", True)):
        folder = out / f"{twin}-free"
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed + (3 if coarse else 2))
        source = [
            json.loads(line)
            for line in (out / "b77" / "incidents.jsonl").read_text(encoding="utf-8").split("\n")
            if line.strip()
        ]
        records = []
        for incident in source:
            intent = incident["resolution"]
            group = coarse_group(intent)
            label = group if coarse else intent
            records.append(
                dict(
                    incident,
                    resolution=close_note(group, intent, rng),
                    resolution_code=label,
                    category="" if coarse else group,
                )
            )
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
    write_jsonl(
        folder / "incidents.jsonl",
        (dict(i, assignment_group=coarse_group(i["category"])) for i in incidents),
    )
    for split in ("dev", "report"):
        queries = [
            json.loads(line)
            for line in (out / "b77" / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
            if line.strip()
        ]
        write_jsonl(
            folder / f"{split}.jsonl",
            (
                dict(q, assignment_group=coarse_group(q["relevant"][0]))
                for q in queries
                if q["relevant"]
            ),
        )
    click.echo(
        f"b77-route: {len(incidents)} incidents with one of {len(COARSE_GROUPS)} assignment groups"
    )


def mixed_files(out: Path, oos_file: Path, seed: int) -> None:
    oos = [
        json.loads(line)
        for line in oos_file.read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    rng = random.Random(seed)
    rng.shuffle(oos)
    half = len(oos) // 2
    for split, extra in (("dev", oos[:half]), ("report", oos[half:])):
        lines = [
            x
            for x in (out / "b77" / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
            if x.strip()
        ]
        records = [json.loads(line) for line in lines] + [
            {"text": o["text"], "relevant": []} for o in extra
        ]
        write_jsonl(out / "b77" / f"{split}-mixed.jsonl", records)
        click.echo(f"b77/{split}-mixed.jsonl: {len(lines)} in scope, {len(extra)} out of scope")


def asf_set(source: Path, out: Path, seed: int, max_chars: int) -> None:
    reports = [
        json.loads(line)
        for line in (source / "reports.jsonl").read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    pairs = [
        json.loads(line)
        for line in (source / "duplicates.jsonl").read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    pairs = [p for p in pairs if not p.get("mentions_target_id")]
    query_ids = {p["id"] for p in pairs}
    by_id = {r["id"]: r for r in reports}
    folder = out / "asf"
    folder.mkdir(parents=True, exist_ok=True)
    stored = [r for r in reports if r["id"] not in query_ids]
    stored_ids = {r["id"] for r in stored}
    write_jsonl(
        folder / "incidents.jsonl",
        (
            {
                "id": r["id"],
                "title": r["title"],
                "description": (r.get("description") or "")[:max_chars],
                # Each report's resolution is its own: the store has no shared-resolution evidence.
                "resolution": f"Resolved as reported in {r['id']}",
                "category": r.get("component") or "",
                "product": r["product"],
                "status": "resolved",
                "opened_at": r["created"],
            }
            for r in stored
        ),
    )
    queries = []
    for p in pairs:
        targets = [t for t in p["duplicate_of"] if t in stored_ids]
        if targets:
            r = by_id[p["id"]]
            queries.append(
                {"text": f"{r['title']}\n{r.get('description') or ''}".strip(), "relevant": targets}
            )
    rng = random.Random(seed)
    rng.shuffle(queries)
    half = len(queries) // 2
    write_jsonl(folder / "dev.jsonl", queries[:half])
    write_jsonl(folder / "report.jsonl", queries[half:])
    click.echo(f"asf: {len(stored)} incidents, {half} dev, {len(queries) - half} report queries")


# Resolver groups of the help-desk set: Banking77 intents merged by hand, unevenly.
DESK_GROUPS = (
    (
        "Card logistics",
        (
            "card_arrival",
            "card_delivery_estimate",
            "order_physical_card",
            "get_physical_card",
            "getting_spare_card",
            "activate_my_card",
            "card_about_to_expire",
        ),
    ),
    (
        "Virtual cards",
        (
            "getting_virtual_card",
            "get_disposable_virtual_card",
            "disposable_card_limits",
            "virtual_card_not_working",
        ),
    ),
    ("Card security", ("lost_or_stolen_card", "compromised_card", "lost_or_stolen_phone")),
    ("PIN and access", ("pin_blocked", "change_pin", "passcode_forgotten")),
    ("Card faults", ("card_not_working", "contactless_not_working", "card_swallowed")),
    (
        "Card acceptance",
        (
            "card_acceptance",
            "supported_cards_and_currencies",
            "visa_or_mastercard",
            "card_linking",
            "apple_pay_or_google_pay",
        ),
    ),
    ("Card payments", ("pending_card_payment", "declined_card_payment", "reverted_card_payment?")),
    (
        "Disputes",
        (
            "card_payment_not_recognised",
            "direct_debit_payment_not_recognised",
            "cash_withdrawal_not_recognised",
            "transaction_charged_twice",
        ),
    ),
    ("Refunds", ("request_refund", "Refund_not_showing_up")),
    (
        "Top-up",
        (
            "top_up_failed",
            "pending_top_up",
            "top_up_reverted",
            "verify_top_up",
            "top_up_limits",
            "automatic_top_up",
            "topping_up_by_card",
            "top_up_by_cash_or_cheque",
        ),
    ),
    (
        "Outgoing transfers",
        (
            "transfer_not_received_by_recipient",
            "cancel_transfer",
            "declined_transfer",
            "pending_transfer",
            "failed_transfer",
            "transfer_timing",
            "beneficiary_not_allowed",
        ),
    ),
    (
        "Incoming funds",
        (
            "receiving_money",
            "transfer_into_account",
            "balance_not_updated_after_bank_transfer",
            "balance_not_updated_after_cheque_or_cash_deposit",
        ),
    ),
    (
        "ATM",
        (
            "atm_support",
            "declined_cash_withdrawal",
            "pending_cash_withdrawal",
            "wrong_amount_of_cash_received",
        ),
    ),
    (
        "Fees",
        (
            "card_payment_fee_charged",
            "transfer_fee_charged",
            "cash_withdrawal_charge",
            "top_up_by_card_charge",
            "top_up_by_bank_transfer_charge",
            "extra_charge_on_statement",
            "exchange_charge",
        ),
    ),
    (
        "FX",
        (
            "exchange_rate",
            "card_payment_wrong_exchange_rate",
            "wrong_exchange_rate_for_cash_withdrawal",
            "exchange_via_app",
            "fiat_currency_support",
        ),
    ),
    (
        "Identity verification",
        ("verify_my_identity", "why_verify_identity", "unable_to_verify_identity"),
    ),
    ("Compliance", ("verify_source_of_funds", "age_limit", "country_support")),
    ("Account changes", ("edit_personal_details", "terminate_account")),
)
# Share of each group's stored incidents kept (1.0 unless named): a long tail of small groups.
DESK_KEEP = {
    "Virtual cards": 0.35,
    "Card faults": 0.5,
    "Refunds": 0.3,
    "Compliance": 0.25,
    "Account changes": 0.2,
    "FX": 0.6,
    "Card acceptance": 0.45,
}
PREMIUM_DESK = "Premium desk"
PREMIUM_GROUPS = ("Disputes", "Card security")
DESK_REASSIGNED = 0.12  # stored incidents reassigned before they were solved
DESK_WRONG_WHEN_REASSIGNED = 0.5  # ... of which closed under a wrong group
DESK_WRONG_OTHERWISE = 0.03
URGENT = ("lost_or_stolen", "compromised", "not_recognised", "charged_twice", "card_swallowed")
HIGH = (
    "failed",
    "declined",
    "pending",
    "not_received",
    "reverted",
    "pin_blocked",
    "not_working",
    "wrong_amount",
)
LOW = (
    "why",
    "supported",
    "visa_or",
    "limits",
    "estimate",
    "age_limit",
    "country",
    "exchange_rate",
    "fiat",
    "apple_pay",
    "timing",
)


def desk_group(intent: str) -> str:
    return next(name for name, intents in DESK_GROUPS if intent in intents)


def desk_priority(intent: str) -> str:
    if any(word in intent for word in URGENT):
        return "1 - Critical"
    if any(word in intent for word in HIGH):
        return "2 - High"
    if any(word in intent for word in LOW):
        return "4 - Low"
    return "3 - Moderate"


def desk_product(intent: str) -> str:
    if "top_up" in intent or "topping" in intent:
        return "Wallet"
    if (
        "card" in intent
        or "pin" in intent
        or "contactless" in intent
        or "atm" in intent
        or "cash" in intent
    ):
        return "Cards"
    if (
        "transfer" in intent
        or "payment" in intent
        or "refund" in intent.lower()
        or "money" in intent
    ):
        return "Payments"
    return "Accounts"


def desk_set(source: Path, out: Path, seed: int) -> None:
    """``b77-desk``: a help desk routed by resolver group (see the module docstring).

    Every record draws its customer tier (Platinum 10%, Gold 25%, else Standard); a
    Platinum customer's incident of a group in PREMIUM_GROUPS goes to the premium desk four
    times in five. Priority follows the intent's urgency, one step in ten drawn at random.
    Of the stored incidents, DESK_REASSIGNED were reassigned (``escalated``: the number of
    reassignments), half of those closed under a wrong group, and DESK_WRONG_OTHERWISE of
    the rest carry a wrong group too. Queries keep their true group."""
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train, dev, held = split_rows(rows, 0.1, 0.1, seed)
    rng = random.Random(seed + 29)
    names = [name for name, _ in DESK_GROUPS] + [PREMIUM_DESK]
    levels = ("1 - Critical", "2 - High", "3 - Moderate", "4 - Low")

    def record(n: int) -> dict:
        intent = rows[n]["category"]
        group = desk_group(intent)
        draw = rng.random()
        tier = "Platinum" if draw < 0.1 else "Gold" if draw < 0.35 else "Standard"
        if tier == "Platinum" and group in PREMIUM_GROUPS and rng.random() < 0.8:
            group = PREMIUM_DESK
        priority = desk_priority(intent)
        if rng.random() < 0.1:
            priority = rng.choice(levels)
        return {
            "text": rows[n]["text"],
            "intent": intent,
            "assignment_group": group,
            "customer_tier": tier,
            "priority": priority,
            "category": coarse_group(intent),
            "product": desk_product(intent),
        }

    folder = out / "b77-desk"
    folder.mkdir(parents=True, exist_ok=True)
    stored = []
    for n in train:
        item = record(n)
        if rng.random() >= DESK_KEEP.get(desk_group(item["intent"]), 1.0):
            continue
        reassigned = rng.random() < DESK_REASSIGNED
        wrong = rng.random() < (DESK_WRONG_WHEN_REASSIGNED if reassigned else DESK_WRONG_OTHERWISE)
        group = (
            rng.choice([g for g in names if g != item["assignment_group"]])
            if wrong
            else item["assignment_group"]
        )
        stored.append(
            {
                "id": f"desk-{n:05d}",
                "title": "",
                "description": item["text"],
                "resolution": item["intent"],
                "category": item["category"],
                "product": item["product"],
                "status": "resolved",
                "assignment_group": group,
                "priority": item["priority"],
                "customer_tier": item["customer_tier"],
                "escalated": rng.randint(1, 3) if reassigned else 0,
            }
        )
    write_jsonl(folder / "incidents.jsonl", stored)
    counts = {}
    for split, numbers in (("dev", dev), ("report", held)):
        # Queries come as often as the store's incidents do: small groups stay small.
        queries = [
            q
            for q in (record(n) for n in numbers)
            if rng.random() < DESK_KEEP.get(desk_group(q["intent"]), 1.0)
        ]
        write_jsonl(
            folder / f"{split}.jsonl",
            (
                {
                    "text": q["text"],
                    "relevant": [q["intent"]],
                    "assignment_group": q["assignment_group"],
                    "customer_tier": q["customer_tier"],
                    "category": q["category"],
                    "product": q["product"],
                    "priority": q["priority"],
                }
                for q in queries
            ),
        )
        counts[split] = len(queries)
    sizes = sorted(Counter(i["assignment_group"] for i in stored).values())
    click.echo(
        f"b77-desk: {len(stored)} incidents in {len(sizes)} groups ({sizes[0]} to {sizes[-1]} each), "
        f"{counts['dev']} dev, {counts['report']} report queries"
    )


@click.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write into.",
)
@click.option(
    "--data",
    "data_dir",
    default="../shared/data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder holding banking77/ and asf-jira-dup-bugs/.",
)
@click.option("--seed", default=77, show_default=True, help="Seed of the splits.")
@click.option(
    "--max-chars", default=20000, show_default=True, help="Cap on a bug report's description."
)
def main(out_dir: str, data_dir: str, seed: int, max_chars: int) -> None:
    """Write the development sets (stores and seeded dev/report query files)."""
    out, data = Path(out_dir), Path(data_dir)
    banking_sets(data / "banking77" / "train.csv", out, seed)
    routing_set(out)
    free_text_sets(out, seed)
    mixed_files(out, Path(__file__).parent / "data" / "out-of-scope-mixed.jsonl", seed)
    asf_set(data / "asf-jira-dup-bugs", out, seed, max_chars)
    desk_set(data / "banking77" / "train.csv", out, seed)


if __name__ == "__main__":
    main()
