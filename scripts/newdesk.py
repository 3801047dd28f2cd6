"""A small "new desk" development set: a retail chain's store-systems help desk.

    python -m scripts.newdesk --out OUT [--seed 11]

Writes ``OUT/incidents.jsonl`` (about 300 resolved incidents over 24 resolutions, 10 of
them with an article), ``OUT/articles/*.md``, and labelled queries ``OUT/dev.jsonl`` and
``OUT/report.jsonl``: new wordings of known problems (answerable), and requests nothing in
the store answers: near-domain ones (the same shops and tills, a need never resolved here)
and far ones. Each file is made from the seed alone; dev and report share no wording.

Load and measure it like any set: ``kb import articles OUT/articles``, ``kb import
incidents OUT/incidents.jsonl``, ``kb index``, ``kb eval OUT/dev.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# (key, article title or "", fix, [problem wordings], category, product, group)
PROBLEMS = [
    (
        "till-frozen",
        "Till frozen on the sale screen",
        "Hold the power button 10 s, restart the till app; clear the "
        "print spool if the receipt printer was mid-job.",
        [
            "till frozen on sale screen",
            "POS terminal stuck, touch does nothing",
            "register hangs after scanning an item",
            "checkout screen not responding mid transaction",
            "till locked up while taking payment",
            "the cash register froze and won't take any input",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "card-reader-offline",
        "Card terminal shows offline",
        "Re-pair the PIN pad with the till (Settings > Payment "
        "device > Pair), check the network cable; replace the PIN pad if it still fails.",
        [
            "card reader says offline",
            "PIN pad not connecting to the till",
            "card machine disconnected from register",
            "payment terminal shows no connection",
            "customers can't pay by card, reader offline",
            "chip and pin device lost pairing",
        ],
        "payments",
        "Payments",
        "Payments Team",
    ),
    (
        "receipt-printer-blank",
        "Receipt printer prints blank receipts",
        "Thermal paper loaded upside down; reload with the shiny side facing the print head.",
        [
            "receipt printer prints blank",
            "receipts come out empty",
            "till printer gives white paper with no text",
            "printed receipts are blank",
            "receipt roll prints nothing",
            "no text on printed receipts",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "barcode-not-scanning",
        "Scanner does not read barcodes",
        "Scanner reset with the programming barcode from the "
        "quick guide, then enable the EAN-13 symbology.",
        [
            "barcode scanner not reading",
            "handheld scanner beeps but nothing appears",
            "scanner won't scan products",
            "items don't register when scanned",
            "scan gun stopped reading labels",
            "barcodes not picked up at checkout",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "price-mismatch",
        "Shelf price differs from till price",
        "Price file not yet pushed to the store; run the price "
        "sync from the back office and reprint the shelf labels.",
        [
            "price on shelf differs from till",
            "customer charged more than the label",
            "till price wrong for promo item",
            "promotion not applied at checkout",
            "price mismatch between shelf and register",
            "discount missing when scanning",
        ],
        "pricing",
        "Pricing",
        "Merchandising Support",
    ),
    (
        "cash-drawer-stuck",
        "",
        "Drawer solenoid jammed by a coin; removed the coin and tested open/close.",
        [
            "cash drawer won't open",
            "till drawer stuck shut",
            "money drawer doesn't pop out after sale",
            "drawer not opening at end of transaction",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "eod-report-failed",
        "End-of-day report fails to upload",
        "Back-office PC had no disk space; cleared old journals and re-ran the end-of-day upload.",
        [
            "end of day report failed",
            "EOD upload error on back office PC",
            "daily takings report didn't send",
            "closing report stuck uploading",
            "nightly sales upload failed",
            "store close report error",
        ],
        "back office",
        "Back Office",
        "Store Systems",
    ),
    (
        "handheld-wifi",
        "",
        "Handheld re-enrolled on the store Wi-Fi profile after the certificate renewal.",
        [
            "handheld can't connect to wifi",
            "stock scanner device offline",
            "inventory gun says no network",
            "PDA not joining store wireless",
        ],
        "network",
        "Network",
        "Network Team",
    ),
    (
        "label-printer-alignment",
        "Shelf label printer prints out of line",
        "Calibrated the label printer (hold feed 5 s) and set the label size to 38x21 mm.",
        [
            "shelf labels printing misaligned",
            "label printer text cut off",
            "price labels print half on the edge",
            "shelf edge labels skew",
            "label printer prints across two labels",
        ],
        "hardware",
        "Pricing",
        "Merchandising Support",
    ),
    (
        "staff-login-locked",
        "",
        "Staff account unlocked in the store admin portal; PIN reset and shown how to change it.",
        [
            "staff can't log in to till",
            "cashier PIN locked",
            "employee login rejected on register",
            "user locked out of POS after wrong PIN",
        ],
        "access",
        "POS",
        "Service Desk",
    ),
    (
        "refund-declined",
        "Refund to card declined",
        "Refunds over the store limit need a manager override; processed with the manager card.",
        [
            "refund to card declined",
            "can't process refund over 200",
            "return refund fails on card",
            "refund gets error manager required",
        ],
        "payments",
        "Payments",
        "Payments Team",
    ),
    (
        "scale-error",
        "",
        "Weighing scale recalibrated with the test weight and re-certified.",
        [
            "produce scale shows error",
            "scale weight wrong at checkout",
            "weighing scale reading zero",
            "deli scale not sending weight to till",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "online-order-missing",
        "",
        "Click-and-collect order stuck in the integration queue; requeued it.",
        [
            "click and collect order not showing",
            "online order missing in store app",
            "web order not arrived in picking list",
            "customer order not visible for pickup",
        ],
        "ecommerce",
        "Ecommerce",
        "Digital Team",
    ),
    (
        "stock-count-sync",
        "",
        "Stock count file was from the old app version; updated the handheld app and resent.",
        [
            "stock count didn't sync",
            "inventory count not uploaded",
            "cycle count results missing in back office",
            "stocktake numbers not showing",
        ],
        "inventory",
        "Inventory",
        "Merchandising Support",
    ),
    (
        "email-store-mailbox",
        "",
        "Shared store mailbox re-added to Outlook after the licence change.",
        [
            "store mailbox disappeared from outlook",
            "can't see shared store inbox",
            "shop email account missing",
            "manager can't open store mailbox",
        ],
        "email",
        "Email",
        "Service Desk",
    ),
    (
        "music-system",
        "",
        "In-store music player rebooted and re-linked to the streaming schedule.",
        [
            "background music stopped in store",
            "in-store radio silent",
            "music player offline on shop floor",
            "store playlist not playing",
        ],
        "facilities",
        "Facilities",
        "Facilities",
    ),
    (
        "door-counter",
        "",
        "Footfall counter sensor realigned over the entrance.",
        [
            "footfall counter shows zero",
            "door counter not counting customers",
            "visitor counter numbers wrong",
            "people counter broken at entrance",
        ],
        "facilities",
        "Facilities",
        "Facilities",
    ),
    (
        "vpn-backoffice",
        "Back-office PC cannot reach head office",
        "Store router rebooted; VPN tunnel to head office came back up.",
        [
            "back office can't reach head office systems",
            "store VPN down",
            "HQ applications unreachable from store",
            "no connection to central systems from back office",
        ],
        "network",
        "Network",
        "Network Team",
    ),
    (
        "rota-app",
        "",
        "Rota app cache cleared; staff re-logged in with their new credentials.",
        [
            "rota app not loading shifts",
            "staff schedule app blank",
            "can't see next week's rota",
            "shift planner app error",
        ],
        "hr",
        "HR Apps",
        "Service Desk",
    ),
    (
        "gift-card-activation",
        "Gift card not activated at sale",
        "Gift card activation timed out; activated manually "
        "from the back office with the receipt number.",
        [
            "gift card not activated",
            "customer bought gift card but it shows zero balance",
            "gift voucher not working after purchase",
            "gift card sold but inactive",
        ],
        "payments",
        "Payments",
        "Payments Team",
    ),
    (
        "self-checkout-bagging",
        "",
        "Bagging area scale tare reset; weight tolerance set back to 20 g.",
        [
            "self checkout unexpected item in bagging area constantly",
            "self service till keeps asking for assistance",
            "SCO bagging scale errors",
            "self-checkout keeps locking for approval",
        ],
        "hardware",
        "POS",
        "Store Systems",
    ),
    (
        "cctv-recording",
        "",
        "NVR disk full; old footage purged and retention set to 30 days.",
        [
            "cctv not recording",
            "security cameras stopped saving footage",
            "NVR shows recording error",
            "camera footage missing from last night",
        ],
        "facilities",
        "Security",
        "Facilities",
    ),
    (
        "tablet-app-crash",
        "",
        "Assisted-sales tablet app updated to the current release.",
        [
            "sales tablet app crashes",
            "assisted selling app closes on open",
            "floor tablet app keeps crashing",
            "product lookup app on tablet crashes",
        ],
        "apps",
        "Store Apps",
        "Digital Team",
    ),
    (
        "loyalty-not-applied",
        "",
        "Loyalty service endpoint changed; till config updated and points re-credited.",
        [
            "loyalty card not recognised at till",
            "points not added to member card",
            "member discount not applied",
            "loyalty scan gives error",
        ],
        "payments",
        "Loyalty",
        "Digital Team",
    ),
]

PREFIXES = ["", "", "Store {store}: ", "urgent - ", "{name} reports ", "hi, ", "Till {till}: "]
SUFFIXES = [
    "",
    "",
    " since this morning",
    " again",
    " - customers waiting",
    " after the update last night",
    ", tried restarting already",
    " on till {till}",
    " in store {store}",
    ". Please help",
]
NAMES = ["Anna", "Ben", "Chloe", "Dev", "Ema", "Farid", "Grace", "Hiro", "Ines", "Jon"]

# Requests nothing in the store answers. Near: the same shops, a need never resolved here.
NEAR = [
    "electronic shelf labels show yesterday's prices",
    "fridge temperature alarm going off in chiller aisle",
    "customer wants a copy of an invoice from last year",
    "how do I order more carrier bags",
    "automatic doors at entrance won't close",
    "fitting room alarm keeps sounding",
    "delivery driver can't find the loading bay booking",
    "staff discount card lost, need replacement",
    "security tag deactivator not working",
    "cash collection van didn't turn up",
    "coin counter machine gives wrong totals",
    "customer complaint about parking fine in our car park",
    "store heating not working on shop floor",
    "need a new key for the stock room",
    "trolley lock system jammed",
    "customer's phone charger left behind, lost property process?",
    "planogram for new layout missing",
    "how to set up a new supplier account",
    "timeclock not recording staff clock-ins",
    "bakery oven showing error E7",
    "pest control visit needs to be booked",
    "fire alarm test schedule for next month",
    "window display lights flickering",
    "uniform order for new starters",
    "who approves overtime for bank holiday",
    "escalator making grinding noise",
]
FAR = [
    "best way to cook rice without a rice cooker",
    "can I bring a power bank on a plane",
    "recommend a good fantasy novel",
    "how long to boil an egg",
    "what's the weather in Lisbon next week",
    "how do I train my puppy to sit",
    "tips for running a first marathon",
    "how to get red wine out of a carpet",
    "is it worth learning the piano at 40",
    "what time does the sun set today",
    "how to repot an orchid",
    "cheap flights to Rome in May",
]


def wordings(rng: random.Random, base: str) -> str:
    fill = {"store": rng.randint(100, 480), "till": rng.randint(1, 12), "name": rng.choice(NAMES)}
    return (rng.choice(PREFIXES) + base + rng.choice(SUFFIXES)).format(**fill)


def article_text(
    key: str, title: str, fix: str, category: str, product: str, examples: list[str]
) -> str:
    tags = ", ".join(sorted({category.replace(" ", "-"), product.lower().replace(" ", "-")}))
    symptoms = "\n".join(f"- {e.capitalize()}." for e in examples[:3])
    return (
        f"---\nid: {key}\ntitle: {title}\nstatus: validated\naudience: internal\nproduct: {product}\n"
        f"category: {category}\ntags: [{tags}]\nowner: store-systems\nreview_by: 2027-06-30\n"
        f"updated: 2026-06-01\n---\n\n## Symptoms\n{symptoms}\n\n## Cause\nSee the resolution; "
        f"the most common cause in stores is listed first.\n\n## Resolution\n{fix}\n"
    )


def build(out: Path, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "articles").mkdir(exist_ok=True)
    incidents, dev, report = [], [], []
    number = 50000
    for key, title, fix, bases, category, product, group in PROBLEMS:
        # Two wordings stay out of the store: one asked in dev, one in report.
        bases = bases[:]
        rng.shuffle(bases)
        held_dev, held_report, stored = bases[0], bases[1], bases[2:]
        relevant = key if title else fix
        if title:
            (out / "articles" / f"{key}.md").write_text(
                article_text(key, title, fix, category, product, stored), encoding="utf-8"
            )
        for _ in range(rng.randint(8, 16)):
            number += 1
            base = rng.choice(stored)
            incidents.append(
                {
                    "id": f"RS-{number}",
                    "title": wordings(rng, base)[:80],
                    "description": wordings(rng, base),
                    "resolution": fix,
                    "category": category,
                    "product": product,
                    "status": "resolved",
                    "assignment_group": group,
                    "escalated": rng.choice(["no", "no", "yes"]),
                    **({"article_id": key} if title else {}),
                }
            )
        for _ in range(3):
            dev.append({"text": wordings(rng, held_dev), "relevant": [relevant]})
            report.append({"text": wordings(rng, held_report), "relevant": [relevant]})
    near = NEAR[:]
    rng.shuffle(near)
    far = FAR[:]
    rng.shuffle(far)
    for target, near_part, far_part in (
        (dev, near[::2], far[::2]),
        (report, near[1::2], far[1::2]),
    ):
        target += [{"text": text, "relevant": []} for text in near_part + far_part]
    for name, rows in (
        ("incidents.jsonl", incidents),
        ("dev.jsonl", dev),
        ("report.jsonl", report),
    ):
        with (out / name).open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    return {
        "incidents": len(incidents),
        "articles": sum(1 for p in PROBLEMS if p[1]),
        "dev": len(dev),
        "report": len(report),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="Folder to write the set into.")
    parser.add_argument("--seed", type=int, default=11, help="Seed of every choice.")
    args = parser.parse_args(argv)
    print(json.dumps(build(Path(args.out), args.seed)))


if __name__ == "__main__":
    main()
