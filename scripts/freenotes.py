"""Close notes in an agent's voice, for free-text variants of the development sets.

Real tickets close with a note written anew each time: two agents who apply the same fix
write "Reset AD password, user confirmed" and "pw reset in AD + unlocked acct, cust can log
in". ``close_note`` writes such a note for one incident from pieces chosen by a seeded
random generator: an optional opener naming the problem, the resolution's own steps (each
in one of several wordings, in varying order and number), now and then a canned first step
that agents paste for any problem, and a closer; then terse abbreviations, step numbering
or arrows, case and a typo or two. Almost no two notes are equal, yet notes of one
resolution share their steps, as real ones do.
"""

from __future__ import annotations

import random
import re

# Steps of each resolver group: (wordings of one step, ...). A note of a resolution in the
# group takes one or two of them.
GROUP_STEPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Card delivery and activation": (
        (
            "checked card dispatch status in backoffice",
            "looked up card shipment in BO",
            "verified card was dispatched",
        ),
        (
            "confirmed delivery address on file",
            "checked postal address on the account",
            "address verified w/ customer",
        ),
        (
            "explained card activation in the app",
            "walked customer through activating card in app",
            "showed how to activate card (app > cards > activate)",
        ),
        ("reordered card free of charge", "issued replacement card, no fee", "sent new card"),
    ),
    "Lost, stolen and blocked cards": (
        ("froze the card immediately", "card frozen in BO", "put a block on the card"),
        ("issued a replacement card", "ordered new card for customer", "replacement card sent"),
        (
            "reset PIN attempts and unblocked PIN",
            "unblocked pin after ID check",
            "cleared PIN lock",
        ),
        (
            "advised customer to change PIN at an ATM",
            "told cust to set new PIN via ATM",
            "PIN change via ATM explained",
        ),
    ),
    "Top-ups": (
        (
            "checked top-up transaction in backoffice",
            "looked up the top up in BO",
            "found top-up in ledger",
        ),
        (
            "explained top-up limits and fees",
            "told customer about top up limits/fees",
            "top-up fees + limits explained",
        ),
        (
            "asked customer to retry top-up with another card",
            "advised retry of top up w/ different card",
            "retry top-up suggested",
        ),
        (
            "reversed the failed top-up",
            "refunded failed top up to source card",
            "top-up reversal raised",
        ),
    ),
    "Transfers and payments": (
        (
            "traced the transfer with payments team",
            "checked transfer status in payments queue",
            "looked up xfer in payment system",
        ),
        (
            "explained processing times for transfers",
            "told customer transfers take 1-3 working days",
            "xfer timing explained",
        ),
        (
            "raised a chargeback / dispute for the payment",
            "opened dispute on the card payment",
            "dispute filed for the transaction",
        ),
        (
            "confirmed payment is pending with merchant",
            "payment still pending on merchant side",
            "advised to wait for merchant to settle",
        ),
    ),
    "Cash and ATMs": (
        (
            "checked ATM withdrawal record",
            "looked up the cash withdrawal in BO",
            "found ATM txn in ledger",
        ),
        (
            "explained ATM fees and free withdrawal allowance",
            "told cust about ATM fee allowance",
            "ATM charges explained",
        ),
        ("raised ATM dispute with card network", "opened ATM cash dispute", "ATM claim raised"),
    ),
    "Fees, exchange and statements": (
        (
            "explained the fee on the statement",
            "went through the charge on statement w/ customer",
            "fee breakdown explained",
        ),
        (
            "checked exchange rate applied on the day",
            "verified FX rate used for the transaction",
            "looked at the exchange rate applied",
        ),
        (
            "refunded the fee as a goodwill gesture",
            "fee refunded (goodwill)",
            "goodwill refund of charge",
        ),
        (
            "sent statement from the app",
            "showed where to download statement",
            "emailed statement to customer",
        ),
    ),
    "Account and identity": (
        (
            "verified identity with documents",
            "ID docs checked and approved",
            "completed KYC check manually",
        ),
        (
            "explained why verification is needed",
            "told customer verification is a legal requirement",
            "KYC requirement explained",
        ),
        (
            "updated personal details on the account",
            "edited customer details in BO",
            "personal details changed",
        ),
        (
            "escalated to compliance team",
            "passed to compliance for review",
            "sent to KYC/compliance queue",
        ),
    ),
}

# Wordings of a step naming the incident's own problem ({topic}).
TOPIC_STEPS = (
    "resolved {topic} issue",
    "sorted out {topic}",
    "fixed {topic} for customer",
    "handled {topic} per procedure",
    "explained {topic} to customer",
    "{topic}: applied standard fix",
)
OPENERS = (
    "",
    "",
    "",
    "",
    "customer contacted about {topic}.",
    "cust called re {topic}.",
    "user reported {topic} -",
    "chat: {topic}.",
    "Issue: {topic}.",
)
# First steps agents paste whatever the problem: not a resolution of their own.
CANNED = (
    "asked customer to log out and back in",
    "cleared app cache",
    "asked cust to update the app",
    "restarted the app with customer",
    "verified caller (security questions)",
)
CLOSERS = (
    "",
    "customer confirmed, closing.",
    "cust happy, closing ticket",
    "resolved.",
    "no further action needed",
    "pls reopen if it happens again",
    "closing as resolved",
    "cx confirmed fix",
)
ABBREVIATIONS = (
    ("customer", "cust"),
    ("customer", "cx"),
    ("account", "acct"),
    ("transfer", "xfer"),
    ("please", "pls"),
    ("with", "w/"),
    ("backoffice", "BO"),
    ("replacement", "repl"),
    ("explained", "expl."),
    ("confirmed", "conf."),
)


def topic_of(intent: str) -> str:
    return " ".join(intent.replace("?", "").replace("_", " ").lower().split())


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    choice = rng.random()
    if choice < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
    if choice < 0.8:
        return word[:i] + word[i + 1 :]  # a letter dropped
    return word[:i] + word[i] + word[i:]  # a letter doubled


def close_note(group: str, intent: str, rng: random.Random) -> str:
    """One close note for an incident of resolver ``group`` about ``intent``."""
    topic = topic_of(intent)
    pool = GROUP_STEPS[group]
    # Each resolution has its own favoured steps: seeded by the intent, so notes of one
    # intent agree more with each other than with other intents of the group.
    own = random.Random(intent)
    order = list(range(len(pool)))
    own.shuffle(order)
    favoured = order[:2]
    count = 1 if rng.random() < 0.4 else 2
    picked = favoured[:count] if rng.random() < 0.8 else rng.sample(range(len(pool)), count)
    steps = [rng.choice(pool[i]) for i in picked]
    if rng.random() < 0.5:
        steps.insert(rng.randrange(len(steps) + 1), rng.choice(TOPIC_STEPS).format(topic=topic))
    if rng.random() < 0.3:
        steps.insert(0, rng.choice(CANNED))
    style = rng.random()
    if style < 0.3:
        body = " ".join(f"{n}) {s}" for n, s in enumerate(steps, start=1))
    elif style < 0.55:
        body = " -> ".join(steps)
    elif style < 0.8:
        body = "; ".join(steps)
    else:
        body = ", ".join(steps)
    opener = rng.choice(OPENERS).format(topic=topic)
    closer = rng.choice(CLOSERS)
    text = " ".join(p for p in (opener, body, closer) if p)
    for long, short in ABBREVIATIONS:
        if rng.random() < 0.5:
            text = re.sub(rf"\b{long}\b", short, text)
    words = text.split(" ")
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        at = rng.randrange(len(words))
        words[at] = _typo(words[at], rng)
    text = " ".join(words)
    if rng.random() < 0.4:
        text = text.lower()
    elif rng.random() < 0.5:
        text = text[:1].upper() + text[1:]
    return text
