"""Secrets and personal data out of incident text, before it is stored, embedded or indexed.

Text is first normalised (NFKC, :func:`kb.text.normalise_text`, as the index stores it), so
full-width digits and letters ("４５３９ １４８８ …", "ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ") are
found as their ordinary forms. Each finding is replaced by a typed placeholder that keeps
the text readable and searchable: ``[secret]``, ``[card]``, ``[iban]``, ``[email]``,
``[phone]``, ``[ip]``, ``[national_id]``.

Kinds (``KB_REDACT``, a comma-separated list; the default is all of them, ``none`` turns
redaction off):

- ``secret``: the provider rules of ``detect-secrets`` (AWS, Azure storage keys, Slack
  tokens and webhook URLs, GitHub, GitLab, Stripe, SendGrid, Twilio, Telegram, Discord,
  Mailchimp, PyPI, Square); private key blocks (PEM, OpenSSH, PGP), JWTs and other prefixed
  tokens; the value after a credential name (the names ``detect-secrets`` lists, and
  ``password``, ``token``, ``secret`` … in English, German, French, Spanish and a few more
  languages, alone or inside a variable name such as ``MYSQL_ROOT_PASSWORD`` or
  ``AWS_SECRET_ACCESS_KEY``); ``Authorization:`` and ``Cookie:`` header values, the password
  in ``scheme://user:pw@host``, and long high-entropy strings on a line that speaks of a
  key, token or secret;
- ``card``: 13 to 19 digits (spaces, dashes or dots in card groups allowed) that start and
  are as long as a major scheme's cards and pass the Luhn check;
- ``iban``: an IBAN in any letter case whose country format and mod-97 checksum hold
  (``python-stdnum``);
- ``email``: e-mail addresses, internationalised ones (``jörg@müller.de``) included;
- ``phone``: numbers written with ``+`` and a country code that the ``phonenumbers``
  metadata calls possible (the right length for the country), and numbers it calls valid,
  written with ``00`` or national for the regions ``KB_PHONE_REGIONS`` names; a national
  number must be written with its trunk prefix (``0171 2345678``) or, in North America, as
  ten digits (a bare run of ten digits only after a word such as "phone" or "call"); dates,
  times, versions, sizes and ids are not phones;
- ``ip``: IPv4 and IPv6 addresses (a desk that needs them in search can leave ``ip`` out);
- ``national_id``: US social security numbers written in groups (``536-90-4399``) whose
  area, group and serial are valid (``python-stdnum``).

Version strings (2.3.0), error codes (0x80070005, ORA-12541), host names and ticket ids
(INC-12345) are left alone. Every pattern applied here runs in time linear in the text's
length (tests/unit/test_linear_time.py); the libraries are loaded on first use and read
only the data they ship with.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from kb.text import normalise_text

KINDS = ("secret", "card", "iban", "email", "phone", "ip", "national_id")
DEFAULT_KINDS = KINDS
# Regions whose national phone numbers are recognised without a "+" (KB_PHONE_REGIONS).
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "JP")


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
    items = [
        s.strip().lower() for s in (setting.split(",") if isinstance(setting, str) else setting)
    ]
    items = [s for s in items if s]
    if not items:
        return DEFAULT_KINDS
    if items == ["none"]:
        return ()
    unknown = [s for s in items if s not in KINDS]
    if unknown:
        raise ValueError(
            f"unknown redaction kind {unknown[0]!r}; choose from {', '.join(KINDS)} or none"
        )
    return tuple(k for k in KINDS if k in items)


def parse_phone_regions(setting: str | Iterable[str] | None) -> tuple[str, ...]:
    """Region codes (ISO 3166 alpha-2) from a setting; "" or None is the default, "none"
    recognises international numbers only. Raises ValueError naming an unknown region."""
    import phonenumbers

    if setting is None:
        return DEFAULT_PHONE_REGIONS
    items = [
        s.strip().upper() for s in (setting.split(",") if isinstance(setting, str) else setting)
    ]
    items = [s for s in items if s]
    if not items:
        return DEFAULT_PHONE_REGIONS
    if items == ["NONE"]:
        return ()
    unknown = [s for s in items if s not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(
            f"unknown phone region {unknown[0]!r}; use two-letter region codes such as US, DE, JP"
        )
    return tuple(dict.fromkeys(items))


# --- detectors -------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_PREFIXED_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})"
)
# Names of a credential, in English and the languages support desks commonly write in
# (besides those detect-secrets lists, added at first use: see _credential_pattern).
_CREDENTIAL_WORDS = (
    r"pass(?:word|wd|phrase|code)?|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key|"
    r"secret[_-]?key|private[_-]?key|account[_-]?key|accountkey|shared[_-]?key|sharedaccesskey|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|token|pin|credentials?|"
    r"passwort|kennwort|mot[ _-]de[ _-]passe|contrase(?:ñ|n)a|clave|senha|wachtwoord|l(?:ö|o)senord|"
    r"adgangskode|passord|salasana|has(?:ł|l)o|parola|heslo|jelsz(?:ó|o)|пароль|パスワード|密码|密碼|비밀번호"
)
# The credential name may end a variable name joined by "_", "-" or "." (DB_PASSWORD,
# MYSQL_ROOT_PASSWORD, AWS_SECRET_ACCESS_KEY, spring.datasource.password); a name that goes
# on (PASSWORD_FILE, credential.provider.path) names something else.
_VALUE = r"(?P<value>\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s,;\"'<>]{1,200})"
_SEPARATOR = r"[\"']?(?P<sep>\s{0,20}[:=]\s{0,20}|\s{1,20}(?:is|was|ist|war|est|es|era)\s{1,20})"
_AUTH_HEADER = re.compile(
    r"(?im)\b(?:authorization|proxy-authorization)\s*:\s*(?:(?:bearer|basic|token|digest)\s+)?"
    r"(?P<value>[^\s,;'\"]+)"
)
_COOKIE_HEADER = re.compile(r"(?im)\b(?:set-)?cookie\s*:\s*(?P<value>[^\n]+)")
_URL_PASSWORD = re.compile(
    r"\b[a-z][a-z0-9+.-]{0,31}://[^\s:/@?#]{1,256}:(?P<value>[^\s@/?#&]{1,256})@"
)
_NOT_A_SECRET = re.compile(
    r"^(?:|null|none|nil|true|false|yes|no|undefined|\*+|x+|\.\.\.|<[^>]*>|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*"
    r"|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\([^)]*\))?|[A-Za-z_][\w.]*[(\[].*|[a-z][a-z0-9+.-]{0,31}://\S*)$",
    re.I,
)
_PLACEHOLDER_START = re.compile(r"\[(?:secret|card|iban|email|phone|ip|national_id)\]")
_CREDENTIAL_CONTEXT = re.compile(rf"(?i)\b(?:{_CREDENTIAL_WORDS}|key|credential|bearer)s?\b")
_LONG_STRING = re.compile(r"[A-Za-z0-9+/_=-]{24,}")

_CARD = re.compile(r"(?<![\w.-])(?:\d[ .-]?){12,18}\d(?![\w-]|\.\d)")
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# Every repetition below is bounded (the lengths RFC 5321 allows), so that text such as
# "a.a.a.a..." or "a-a-a-..." costs a bounded amount of work per position, not a scan to its end.
# \w takes the letters of every script (internationalised addresses: jörg@müller.de).
_EMAIL = re.compile(
    r"(?<![\w.%+-])\w[\w.%+'-]{0,63}@(?:[^\W_]|-){1,63}(?:\.(?:[^\W_]|-){1,63}){0,8}"
    r"\.(?P<tld>[^\W\d_]{2,24})\b"
)
# A stretch of digits, spaces, dashes, dots and brackets that could be a phone number;
# phonenumbers decides. Not after a letter, digit, dot, slash, colon or "=" (paths, times,
# versions, parameters), not before one.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w.+/:=#-])(?:\+[ ]?|\()?\d[\d ().-]{5,30}\d\)?(?![\w/:]|[.-]\d)"
)
_SSN = re.compile(r"(?<![\w.-])\d{3}([- ])\d{2}\1\d{4}(?![\w-]|\.\d)")
# Not inside a dotted name (1.7.0.51.x86_64, 10.1.1.0.jar); a full stop ending a sentence may
# follow. A dash may come before (Connection(4)-10.95.89.20): versions after one (hadoop-0.20.1.0)
# are taken too, the price of not missing an address.
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\w|\.\w)"
)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")

# Provider rules of detect-secrets whose patterns run in linear time (the linear-time test
# times each). Its keyword and generic assignment rules do not (they backtrack over long
# lines), nor does it report where in a text a finding is: the credential-name rule below
# reads its list of names instead.
SECRET_PLUGINS = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("slack", "SlackDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("stripe", "StripeDetector"),
    ("sendgrid", "SendGridDetector"),
    ("twilio", "TwilioKeyDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("square_oauth", "SquareOAuthDetector"),
)


@functools.cache
def plugin_patterns() -> tuple[re.Pattern, ...]:
    """The patterns of the detect-secrets provider rules in SECRET_PLUGINS."""
    import importlib

    patterns = []
    for module, name in SECRET_PLUGINS:
        plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        patterns.extend(plugin.denylist)
    return tuple(patterns)


@functools.cache
def _credential_pattern() -> re.Pattern:
    """ "password: hunter2", "DB_PASSWORD=hunter2", "api_key = 'abc'", "das Passwort ist …":
    a credential name, then ":" or "=" or "is", then the value."""
    from detect_secrets.plugins.keyword import DENYLIST

    words = "|".join([_CREDENTIAL_WORDS, *(w.replace("_?", "[_-]?") for w in DENYLIST)])
    return re.compile(
        rf"(?i)(?<![A-Za-z0-9])(?:{words})(?![A-Za-z0-9])"
        rf"{_SEPARATOR}{_VALUE}"
    )


def library_patterns() -> tuple[re.Pattern, ...]:
    """Patterns built at first use (from the libraries' lists), for the linear-time test."""
    return (*plugin_patterns(), _credential_pattern())


def luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def iban_ok(candidate: str) -> bool:
    """An IBAN (any letter case, spaces allowed) whose country format and checksum hold."""
    from stdnum import iban

    return iban.is_valid(candidate)


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
    if any(
        re.fullmatch(r"[a-z]{4,}(?:[-_][a-z]+)*", part)
        for part in text.split("/")[:-1] + text.split("/")[1:]
    ):
        return False  # a URL or file path (…/blob/61a944fd…/storm-webapp)
    digits = sum(c.isdigit() for c in text)
    letters = sum(c.isalpha() for c in text)
    return (
        digits >= 3
        and letters >= 3
        and text.count("-") < 2
        and text.count("_") < 2
        and entropy(text) >= 3.5
    )


def _password_like(value: str) -> bool:
    """A word after "password is" that is a password rather than English: it has a digit,
    a symbol inside it, or mixed case after its first letter."""
    core = value.strip("\"'.,;:!?")
    if len(core) < 4:
        return False
    return bool(
        re.search(r"\d", core) or re.search(r"\w[^\w\s]\w", core) or re.search(r"[a-z][A-Z]", core)
    )


def _plugin_span(match: re.Match) -> tuple[int, int]:
    """The secret in a provider rule's match: its group when that is long enough to be
    the secret (not a prefix such as ``ghp``), else the match without a leading ``Name=``
    (``AccountKey=…`` keeps its name)."""
    groups = [
        g for g in range(1, match.re.groups + 1) if match.group(g) and len(match.group(g)) >= 16
    ]
    if groups:
        return match.span(max(groups, key=lambda g: len(match.group(g))))
    start, end = match.span()
    head = re.match(r"[A-Za-z_]{1,40}=", match.group(0))
    return (start + head.end(), end) if head else (start, end)


def _secrets(text: str, *, context: bool = True) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pattern in (_PRIVATE_KEY, _JWT, _PREFIXED_TOKEN):
        spans.extend(m.span() for m in pattern.finditer(text))
    for pattern in plugin_patterns():
        spans.extend(_plugin_span(m) for m in pattern.finditer(text))
    credential = _credential_pattern()
    for pattern in (credential, _AUTH_HEADER, _COOKIE_HEADER, _URL_PASSWORD):
        for match in pattern.finditer(text):
            value = match.group("value")
            if _PLACEHOLDER_START.match(value):
                continue  # already redacted
            sep = match.group("sep").strip().lower() if "sep" in match.groupdict() else ""
            worded = sep.isalpha() or "sep" not in match.groupdict()
            if worded and (not context or not _password_like(value)):
                continue  # "my PIN is locked", "the password was not accepted"
            if sep == ":" and value[:1] not in "\"'" and not _password_like(value):
                continue  # "password: Configuration problem", "for (String token : tokens)"
            bare = value.strip("\"'").rstrip(".,;:!?)")
            if (
                len(bare) < 4
                or _NOT_A_SECRET.match(bare)
                or (pattern is _URL_PASSWORD and bare.isdigit())
            ):
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
_IBAN_HEAD = re.compile(r"(?i)[A-Z]{2}\d{2}[ ]?$")


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
    """One run of digits, or the groups cards are printed in (4-4-4-4[-1..4], 4-6-5), one
    separator throughout."""
    if len(set(re.findall(r"[ .-]", value))) > 1:
        return False
    groups = [len(g) for g in re.split(r"[ .-]", value)]
    if len(groups) == 1:
        return True
    return tuple(groups) in _CARD_GROUPS or (
        all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
    )


def _cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _CARD.finditer(text):
        value = match.group(0)
        digits = re.sub(r"\D", "", value)
        if not (
            13 <= len(digits) <= 19
            and len(set(digits)) > 1
            and _card_shaped(value)
            and _card_issuer(digits)
            and luhn_ok(digits)
        ):
            continue
        if _IBAN_HEAD.search(text[max(0, match.start() - 6) : match.start()]):
            continue  # the digits of an account number whose checksum failed, not a card
        spans.append(match.span())
    return spans


def _ibans(text: str) -> list[tuple[int, int]]:
    """IBANs; a candidate that swallowed the word after it ("… 0417 1643 00 from") is
    tried again without its last groups."""
    spans = []
    for match in _IBAN.finditer(text):
        parts = match.group(0).split(" ")
        while parts and len("".join(parts)) >= 15:
            candidate = " ".join(parts)
            if iban_ok(candidate):
                spans.append((match.start(), match.start() + len(candidate)))
                break
            parts.pop()
    return spans


def _emails(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _EMAIL.finditer(text):
        tld = match.group("tld")
        if tld.islower() or tld.isupper() or tld.istitle():  # .com, .COM, .Com; not a .ClassName
            spans.append(match.span())
    return spans


# A date or a date and time, which phone-shaped digits often are in logs.
_DATE_LIKE = re.compile(
    r"(?:^|\D)(?:\d{4}[-/.](?:0?[1-9]|1[0-2])[-/.](?:[0-2]?\d|3[01])"
    r"|(?:[0-2]?\d|3[01])[-/.](?:[0-2]?\d|3[01])[-/.](?:19|20)\d\d)(?:\D|$)"
)
# Words that say a number is a phone number: a run of digits without separators (2125552372)
# is one only after such a word (it is more often a count, a size or an id).
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|call|mobile|cell|number|contact|reach|fax|sms|text|whatsapp|ring|dial|callback|"
    r"telefon|handy|rückruf|ruf|nummer|téléphone|portable|appel|joindre|joignable|teléfono|móvil|llamar|"
    r"telefone|numero|número|電話|連絡|携帯)(?:s|ed|ing)?\b"
)


@functools.cache
def _phone_library():
    import phonenumbers

    return phonenumbers


class _Budget:
    """How many more numbers a text may have parsed (the slow step): one made of digit groups
    could otherwise ask for thousands of parses. The numbers found until it is spent stay
    found; after it, no more are looked for in that text."""

    def __init__(self, text: str):
        self.left = 50 + len(text) // 50

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _valid_phone(candidate: str, regions: tuple[str, ...], budget: _Budget) -> bool:
    if budget.left <= 0:
        return False
    pn = _phone_library()
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15:
        return False
    if len(set(re.findall(r"[ .-]", candidate))) > 2 or candidate.count(".") not in (0, 2, 4):
        return False  # 1.2.3 (a version) or a mix of every separator
    if _DATE_LIKE.search(candidate):
        return False  # 09-13-2012, 0 2017-01-10
    if candidate.startswith("+"):
        if not budget.spend():
            return False
        try:
            number = pn.parse(candidate, None)
        except pn.NumberParseException:
            return False
        return pn.is_possible_number(
            number
        )  # "+" and a country code, though its range may be unassigned
    for region in regions:
        # The shape a national number is written in, checked before the (slower) parse: with
        # the trunk prefix (0171 2345678) or an international prefix (0049 …), or in North
        # America ten digits (or 1 and ten), grouped 3-3-4 when grouped.
        prefix = pn.PhoneMetadata.metadata_for_region(region).national_prefix or ""
        if prefix == "1":
            ten = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
            groups = [len(g) for g in re.split(r"[^\d]+", candidate.strip("()+ ")) if g]
            if not (len(ten) == 10 and groups[-2:] in ([10], [3, 4]) or groups == [1, 3, 3, 4]):
                continue
        elif prefix and not digits.startswith(prefix):
            continue
        if not budget.spend():
            return False
        try:
            number = pn.parse(candidate, region, keep_raw_input=True)
        except pn.NumberParseException:
            continue
        if number.country_code_source not in (
            pn.CountryCodeSource.FROM_DEFAULT_COUNTRY,
            pn.CountryCodeSource.FROM_NUMBER_WITH_IDD,
        ):
            continue  # digits that only start like a country code (49 99 34 81 51)
        if pn.is_valid_number(number):
            return True
    return False


def _phone_span(
    text: str, start: int, candidate: str, regions: tuple[str, ...], budget: _Budget
) -> tuple[int, int] | None:
    """Where ``candidate`` (found at ``start``) is a phone number, or None."""
    if candidate.endswith(")") and candidate.count("(") < candidate.count(")"):
        candidate = candidate[:-1]  # VARCHAR(2147483647)
    if candidate.startswith("(") and ")" not in candidate:
        candidate, start = candidate[1:], start + 1  # VALUES (2152101302, …
    if re.search(r"\d\(", candidate):
        return None  # 0.23.0(2.0.1): a version, not a bracketed area code
    if candidate.isdigit():
        window = max(0, start - 60)
        window = max(window, text.rfind("\n", window, start) + 1)  # on its line
        if not _PHONE_CONTEXT.search(text, window, start):
            return None
    return (start, start + len(candidate)) if _valid_phone(candidate, regions, budget) else None


# A candidate of several numbers written one after another ("… 0151 23453864 0171 2345678")
# is tried again as runs of its space-separated groups, up to this many groups per run, when
# it has at most _PHONE_SPLIT_GROUPS groups.
_PHONE_MAX_GROUPS = 5
_PHONE_SPLIT_GROUPS = 6


def _phones(text: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> list[tuple[int, int]]:
    spans, budget = [], _Budget(text)
    for match in _PHONE_CANDIDATE.finditer(text):
        candidate = match.group(0).rstrip(" .-")
        if _IBAN_HEAD.search(text[max(0, match.start() - 6) : match.start()]):
            continue  # the digits of an account number whose checksum failed
        span = _phone_span(text, match.start(), candidate, regions, budget)
        if span:
            spans.append(span)
        elif 1 <= candidate.count(" ") < _PHONE_SPLIT_GROUPS and budget.left > 0:
            spans.extend(_phones_in_groups(text, match.start(), candidate, regions, budget))
    return spans


def _phones_in_groups(
    text: str, offset: int, candidate: str, regions: tuple[str, ...], budget: _Budget
) -> list[tuple[int, int]]:
    """Numbers inside a candidate that is not one as a whole: runs of its space-separated
    groups, from the left, the longest first."""
    groups = [(g.start(), g.end()) for g in re.finditer(r"[^ ]+", candidate)]
    spans, i = [], 0
    while i < len(groups):
        for j in range(min(len(groups), i + _PHONE_MAX_GROUPS), i, -1):
            if j - i == len(groups):
                continue  # the whole candidate, tried already
            part = candidate[groups[i][0] : groups[j - 1][1]].rstrip(".-")
            if not 7 <= sum(c.isdigit() for c in part) <= 15:
                continue
            span = _phone_span(text, offset + groups[i][0], part, regions, budget)
            if span:
                spans.append(span)
                i = j
                break
        else:
            i += 1
    return spans


def _national_ids(text: str) -> list[tuple[int, int]]:
    from stdnum.us import ssn

    return [m.span() for m in _SSN.finditer(text) if ssn.is_valid(re.sub(r"\D", "", m.group(0)))]


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


DETECTORS = {
    "secret": _secrets,
    "card": _cards,
    "iban": _ibans,
    "email": _emails,
    "phone": _phones,
    "ip": _ips,
    "national_id": _national_ids,
}
# Earlier kinds win where findings overlap (a card inside a cookie value is a secret).
PRIORITY = ("secret", "iban", "card", "email", "ip", "national_id", "phone")


# One of each kind, numbers of every default region: what Redactor.load redacts once.
_WARM_UP = (
    "DB_PASSWORD=x1y2z3w4 AKIAIOSFODNN7EXAMPLE x@example.com 10.1.2.3 536-90-4399 4539 1488 0343 6467 "
    "DE89 3704 0044 0532 0130 00 +1 212 555 4616 call 212 555 4616 0171 2345678 020 7946 0018 "
    "01 42 68 53 00 03-1234-5809"
)


class Redactor:
    """Finds and replaces the configured kinds. Stateless; safe to share."""

    def __init__(
        self,
        kinds: Iterable[str] = DEFAULT_KINDS,
        *,
        context: bool = True,
        phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS,
    ):
        wanted = set(kinds)
        self.kinds = tuple(k for k in PRIORITY if k in wanted)
        # The high-entropy rule reads a line for words like "key" or "token"; raw database
        # bytes have no line or field boundaries, so a scan of files turns it off.
        self.context = context
        self.phone_regions = tuple(phone_regions)

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def load(self) -> None:
        """Load the libraries and their data now (about half a second) rather than on the
        first text redacted: a server worker calls this as it starts."""
        self.redact(_WARM_UP)

    def findings(self, text: str) -> list[Finding]:
        """What the configured kinds find in ``text`` as given (offsets into it). Text that
        is stored passes :meth:`redact`, which normalises it first."""
        if not text or not self.kinds:
            return []
        taken: list[Finding] = []
        starts: list[int] = []  # starts of the findings taken, sorted; they do not overlap
        for kind in self.kinds:
            if kind == "secret":
                found = _secrets(text, context=self.context)
            elif kind == "phone":
                found = _phones(text, self.phone_regions)
            else:
                found = DETECTORS[kind](text)
            for start, end in sorted(found):
                if start >= end or self._overlaps(taken, starts, start, end):
                    continue
                if not self.context and not _printable(text, start, end):
                    continue  # bytes of a vector or a page header that happen to look like text
                at = bisect.bisect(starts, start)
                starts.insert(at, start)
                taken.insert(at, Finding(kind, start, end, text[start:end]))
        return taken

    @staticmethod
    def _overlaps(taken: list[Finding], starts: list[int], start: int, end: int) -> bool:
        at = bisect.bisect(starts, start)
        return (at > 0 and taken[at - 1].end > start) or (at < len(taken) and taken[at].start < end)

    def redact(self, text: str) -> str:
        """The text normalised (:func:`kb.text.normalise_text`, as it is indexed) with every
        finding replaced by its placeholder. With redaction off, the text as given."""
        if not text or not self.kinds:
            return text
        text = normalise_text(text)
        out, cursor = [], 0
        for finding in self.findings(text):
            out.append(text[cursor : finding.start])
            out.append(f"[{finding.kind}]")
            cursor = finding.end
        out.append(text[cursor:])
        return "".join(out)

    def normalised_findings(self, text: str) -> list[Finding]:
        """Findings in the text as it is stored (normalised); offsets into that text."""
        return self.findings(normalise_text(text)) if text and self.kinds else []


def normalise_raw(text: str) -> str:
    """NFKC for decoded file bytes (control characters kept, unlike normalise_text)."""
    return unicodedata.normalize("NFKC", text)
