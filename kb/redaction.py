"""Secrets and personal data out of incident text, before it is stored, embedded or indexed.

Each finding is replaced by a typed placeholder that keeps the text readable and
searchable: ``[secret]``, ``[card]``, ``[iban]``, ``[email]``, ``[phone]``, ``[ip]``.

Kinds (``KB_REDACT``, a comma-separated list; the default is all of them, ``none`` turns
redaction off):

- ``secret``: private key blocks, JWTs, tokens with well-known prefixes (GitHub, GitLab,
  Slack, AWS access key ids, Stripe, OpenAI-style ``sk-``, Google API keys, npm, SendGrid),
  the value of ``password: ...`` / ``pwd=...`` / ``api_key=...`` and similar pairs,
  ``Authorization:`` and ``Cookie:`` header values, the password in ``scheme://user:pw@host``,
  and long high-entropy strings (letters and digits, not a hex digest) on a line that speaks
  of a key, token or secret;
- ``card``: 13 to 19 digits (spaces or dashes in card groups allowed) that start and are as
  long as a major scheme's cards and pass the Luhn check;
- ``iban``: an IBAN whose mod-97 checksum holds;
- ``email``: e-mail addresses;
- ``phone``: international numbers (``+`` and 8 to 15 digits) and national numbers in the
  shapes they are written in ((212) 555-0187, 212-555-0187, 030 1234 5678); dates, times,
  versions and ids are not phones;
- ``ip``: IPv4 and IPv6 addresses (a desk that needs them in search can leave ``ip`` out).

Version strings (2.3.0), error codes (0x80070005, ORA-12541), host names and ticket ids
(INC-12345) are left alone.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("secret", "card", "iban", "email", "phone", "ip")
DEFAULT_KINDS = KINDS


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


def parse_kinds(setting: str | Iterable[str] | None) -> tuple[str, ...]:
    """Kinds from a setting: "" or None is the default (all), "none" is no redaction.
    Raises ValueError naming an unknown kind."""
    if setting is None:
        return DEFAULT_KINDS
    items = [s.strip().lower() for s in (setting.split(",") if isinstance(setting, str) else setting)]
    items = [s for s in items if s]
    if not items:
        return DEFAULT_KINDS
    if items == ["none"]:
        return ()
    unknown = [s for s in items if s not in KINDS]
    if unknown:
        raise ValueError(f"unknown redaction kind {unknown[0]!r}; choose from {', '.join(KINDS)} or none")
    return tuple(k for k in KINDS if k in items)


# --- detectors -------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_PREFIXED_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})")
_CREDENTIAL_WORDS = (r"pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret|api[_-]?key|apikey|"
                     r"access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|"
                     r"refresh[_-]?token|token|pin")
# "password: hunter2", "pwd=hunter2", "api_key = 'abc'", "password is hunter2"
_CREDENTIAL_PAIR = re.compile(
    rf"(?i)\b(?:{_CREDENTIAL_WORDS})\b[\"']?(?P<sep>\s*[:=]\s*|\s+(?:is|was)\s+)"
    r"(?P<value>\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s,;\"'<>]{1,200})")
_AUTH_HEADER = re.compile(r"(?im)\b(?:authorization|proxy-authorization)\s*:\s*(?:(?:bearer|basic|token|digest)\s+)?"
                          r"(?P<value>[^\s,;'\"]+)")
_COOKIE_HEADER = re.compile(r"(?im)\b(?:set-)?cookie\s*:\s*(?P<value>[^\n]+)")
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]{0,31}://[^\s:/@?#]{1,256}:(?P<value>[^\s@/?#&]{1,256})@")
_NOT_A_SECRET = re.compile(
    r"^(?:|null|none|nil|true|false|yes|no|undefined|\*+|x+|\.\.\.|<[^>]*>|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*"
    r"|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\([^)]*\))?|[A-Za-z_][\w.]*[(\[].*|https?://\S*)$", re.I)
_PLACEHOLDER_START = re.compile(r"\[(?:secret|card|iban|email|phone|ip)\]")
_CREDENTIAL_CONTEXT = re.compile(rf"(?i)\b(?:{_CREDENTIAL_WORDS}|key|credential|bearer)s?\b")
_LONG_STRING = re.compile(r"[A-Za-z0-9+/_=-]{24,}")

_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# Every repetition below is bounded (the lengths RFC 5321 allows), so that text such as
# "a.a.a.a..." or "a-a-a-..." costs a bounded amount of work per position, not a scan to its end.
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.(?:[a-z]{2,24}|[A-Z]{2,24})\b")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,5}(?![\w-])")
# National numbers: (212) 555-0187, 212-555-0187, 212.555.0187, or a trunk prefix 0 and
# groups: 030 1234 5678, 06 12 34 56 78.
_PHONE_NATIONAL = re.compile(
    r"(?<![\w.+/:-])(?:\(\d{3}\)[ ]?\d{3}[ .-]\d{4}|\d{3}([.-])\d{3}\1\d{4}|0[1-9]\d{0,3}(?:[ ]\d{2,4}){2,4})(?![\w.:/-])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    text = candidate.replace(" ", "")
    if not 15 <= len(text) <= 34:
        return False
    moved = text[4:] + text[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(text: str) -> bool:
    """A generated key or token rather than a word, a class name or a path: letters and at
    least three digits, spread evenly (high entropy)."""
    if re.fullmatch(r"[0-9a-fA-F]+", text):
        return False  # a hex digest (content hashes, checksums, commit ids)
    if "=" in text.rstrip("="):
        return False  # name=value, not base64 (whose "=" only pads the end)
    if any(re.fullmatch(r"[a-z]{4,}(?:[-_][a-z]+)*", part) for part in text.split("/")[:-1] + text.split("/")[1:]):
        return False  # a URL or file path (…/blob/61a944fd…/storm-webapp)
    digits = sum(c.isdigit() for c in text)
    letters = sum(c.isalpha() for c in text)
    return (digits >= 3 and letters >= 3 and text.count("-") < 2 and text.count("_") < 2
            and entropy(text) >= 3.5)


def _password_like(value: str) -> bool:
    """A word after "password is" that is a password rather than English: it has a digit,
    a symbol inside it, or mixed case after its first letter."""
    core = value.strip("\"'.,;:!?")
    if len(core) < 4:
        return False
    return bool(re.search(r"\d", core) or re.search(r"\w[^\w\s]\w", core) or re.search(r"[a-z][A-Z]", core))


def _secrets(text: str, *, context: bool = True) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pattern in (_PRIVATE_KEY, _JWT, _PREFIXED_TOKEN):
        spans.extend(m.span() for m in pattern.finditer(text))
    for pattern in (_CREDENTIAL_PAIR, _AUTH_HEADER, _COOKIE_HEADER, _URL_PASSWORD):
        for match in pattern.finditer(text):
            value = match.group("value")
            if _PLACEHOLDER_START.match(value):
                continue  # already redacted
            sep = match.group("sep").strip() if "sep" in match.groupdict() else ""
            worded = sep in ("is", "was") or "sep" not in match.groupdict()
            if worded and (not context or not _password_like(value)):
                continue  # "my PIN is locked", "the password was not accepted"
            if sep == ":" and value[:1] not in "\"'" and not _password_like(value):
                continue  # "password: Configuration problem", "for (String token : tokens)"
            bare = value.strip("\"'").rstrip(".,;:!?)")
            if len(bare) < 4 or _NOT_A_SECRET.match(bare) or (pattern is _URL_PASSWORD and bare.isdigit()):
                continue  # password = null, token: getToken(), key=Config.DEFAULT_KEY
            spans.append(match.span("value"))
    for line in re.finditer(r"[^\n]+", text) if context else ():
        if not _CREDENTIAL_CONTEXT.search(line.group(0)):
            continue
        for match in _LONG_STRING.finditer(line.group(0)):
            if _looks_random(match.group(0)):
                spans.append((line.start() + match.start(), line.start() + match.end()))
    return spans


_CARD_GROUPS = ((4, 6, 5), (4, 6, 4))
_IBAN_HEAD = re.compile(r"[A-Z]{2}\d{2}[ ]?$")


def _card_issuer(digits: str) -> bool:
    """Whether the number starts and is as long as a card of a major scheme would."""
    n, head2, head4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= head2 <= 55 or 2221 <= head4 <= 2720:
        return n == 16  # Mastercard
    if head2 in (34, 37):
        return n == 15  # American Express
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19  # Discover
    if 3528 <= head4 <= 3589:
        return 16 <= n <= 19  # JCB
    if head2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Diners
    if head2 == 62:
        return 16 <= n <= 19  # UnionPay
    return False


def _card_shaped(value: str) -> bool:
    """One run of digits, or the groups cards are printed in (4-4-4-4[-1..4], 4-6-5)."""
    groups = [len(g) for g in re.split(r"[ -]", value)]
    if len(groups) == 1:
        return True
    return tuple(groups) in _CARD_GROUPS or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)


def _cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _CARD.finditer(text):
        value = match.group(0)
        digits = re.sub(r"\D", "", value)
        if not (13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1 and _card_shaped(value)
                and _card_issuer(digits)):
            continue
        if _IBAN_HEAD.search(text[max(0, match.start() - 6):match.start()]):
            continue  # the digits of an account number whose checksum failed, not a card
        spans.append(match.span())
    return spans


def _ibans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _IBAN.finditer(text) if iban_ok(m.group(0))]


def _emails(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _EMAIL.finditer(text)]


def _phones(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _PHONE_INTL.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 8 <= len(digits) <= 15:
            spans.append(match.span())
    for match in _PHONE_NATIONAL.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        inside_longer = re.search(r"[\dA-Z][ ]$", text[:match.start()]) or re.match(r"[ ]\d", text[match.end():])
        if 10 <= len(digits) <= 12 and not inside_longer:
            spans.append(match.span())
    return spans


def _ips(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _IPV4.finditer(text)]
    for match in _IPV6_CANDIDATE.finditer(text):
        value = match.group(0)
        if value.count(":") < 2 or sum(1 for group in value.split(":") if group) < 3:
            continue  # "::1" and "a::b" are too short to tell from code or binary noise
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if "::" in value or value.count(":") == 7:
            spans.append(match.span())
    return spans


_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\ufffd]")


def _printable(text: str, start: int, end: int) -> bool:
    """Whether a finding in decoded raw bytes is text: none of its characters, nor the
    one before it, is a control character or an undecodable byte."""
    return not _BINARY.search(text, max(0, start - 1), end)


DETECTORS = {"secret": _secrets, "card": _cards, "iban": _ibans, "email": _emails,
             "phone": _phones, "ip": _ips}
# Earlier kinds win where findings overlap (a card inside a cookie value is a secret).
PRIORITY = ("secret", "iban", "card", "email", "ip", "phone")


class Redactor:
    """Finds and replaces the configured kinds. Stateless; safe to share."""

    def __init__(self, kinds: Iterable[str] = DEFAULT_KINDS, *, context: bool = True):
        wanted = set(kinds)
        self.kinds = tuple(k for k in PRIORITY if k in wanted)
        # The high-entropy rule reads a line for words like "key" or "token"; raw database
        # bytes have no line or field boundaries, so a scan of files turns it off.
        self.context = context

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def findings(self, text: str) -> list[Finding]:
        if not text or not self.kinds:
            return []
        taken: list[Finding] = []
        for kind in self.kinds:
            found = _secrets(text, context=self.context) if kind == "secret" else DETECTORS[kind](text)
            for start, end in found:
                if start >= end or any(start < f.end and f.start < end for f in taken):
                    continue
                if not self.context and not _printable(text, start, end):
                    continue  # bytes of a vector or a page header that happen to look like text
                taken.append(Finding(kind, start, end, text[start:end]))
        return sorted(taken, key=lambda f: f.start)

    def redact(self, text: str) -> str:
        if not text or not self.kinds:
            return text
        out, cursor = [], 0
        for finding in self.findings(text):
            out.append(text[cursor:finding.start])
            out.append(f"[{finding.kind}]")
            cursor = finding.end
        out.append(text[cursor:])
        return "".join(out)
