"""Lexical analysis, in one place for indexing and querying alike: tokens, stopwords,
the Porter stem SQLite FTS5 computes, the FTS5 tokenizer itself, safe MATCH expressions,
identifier phrases, and the budget of postings a query may make FTS5 read.

The store's full-text table is created with ``tokenize=FTS_TOKENIZER`` (kb.store.migrations),
and :func:`stem` must compute the stems that tokenizer stores: FTS5's porter tokenizer is
the original Porter algorithm, which is snowball's "porter" stemmer (a test checks the two
agree on the store's own vocabulary).
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

import snowballstemmer

# The tokenizer of the store's full-text table (SQLite FTS5's porter stemmer over unicode61).
FTS_TOKENIZER = "porter"

# Common English function words: they carry no evidence of a matching resolution and
# make SQLite FTS5 walk long posting lists.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of on once only or other our ours
    ourselves own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    im ive id dont cant wont didnt doesnt isnt please hi hello thanks thank get got also still
    """.split()
)

WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 48  # terms sent to FTS5; a long report keeps its rarest ones
MAX_CANDIDATE_TERMS = 400
# A term in more than this share of chunks carries almost no BM25 weight (its IDF is ~0)
# but makes FTS5 score a long posting list: it is left out of the lexical query.
COMMON_TERM_SHARE = 0.5
POSTINGS_BUDGET = 10_000


# Words too common in requests to be evidence that a result matches, though a query may
# still search for them (BM25 gives them little weight): never shown as matched words.
COMMON_WORDS = STOPWORDS | frozenset(
    """since morning evening afternoon today yesterday tomorrow week day days time times
    says said say saying tell told new old fine ok okay good bad now just like also well
    want wanted need needs needed try tried trying see seen seems seem know let lets make
    made go going went come came use used using work works worked working one two way
    thing things something anything everything nothing someone anyone everyone all any
    every many much lot lots bit really actually already always never ever again back
    right still yet sure able unable issue issues problem problems help please hey dear
    regards best team user users customer customers asap urgent""".split()
)

# Machine noise in pasted logs and long text: timestamps, dates and times, UUIDs, long
# hex ids, IP addresses, process ids, the redactor's placeholders ("[email]") and
# log-level prefixes. None is a word a person would match a resolution on. Every branch
# starts only where a run starts and is bounded or possessive (linear in the text).
_NOISE = re.compile(
    r"(?<![\w.:-])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w-])"
    r"|(?<![\w.:])\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?![\w:])"
    r"|(?<![\w/])\d{1,4}/\d{1,2}/\d{2,4}(?![\w/])"
    r"|(?<![\w.])\d{1,2}\.\d{1,2}\.\d{4}(?![\w.])"
    r"|(?<![\w-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])"
    r"|(?<![\w-])(?=[a-fA-F]*+\d)[0-9a-fA-F]{12,}+(?![\w-])"
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])"
    r"|\[\s{0,8}\d{1,12}(?:\.\d{1,9})?\]"
    r"|\[[a-z_]{2,16}\]"
    r"|(?<![\w-])(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRIT|CRITICAL|SEVERE|EMERG|ALERT)(?![\w-])"
    r"|(?<!\w)(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)(?=\s{1,3}\d{1,2}\s)"
)


def strip_noise(text: str) -> str:
    """``text`` without the machine noise of logs (see _NOISE), each piece a space."""
    return _NOISE.sub(" ", text)


def is_noise_term(term: str) -> bool:
    """A term that is a number of one or two digits (a day, an hour, a count): never a
    word to match on."""
    return term.isdigit() and len(term) <= 2


def tokens(text: str) -> list[str]:
    return [t.lower() for t in WORD.findall(text)]


def query_terms(text: str, limit: int = MAX_CANDIDATE_TERMS) -> list[str]:
    """Distinct content words of a query, in order of appearance, at most ``limit``:
    no stopwords, no log noise (timestamps, ids, placeholders: see strip_noise), no
    one- or two-digit numbers."""
    seen: dict[str, None] = {}
    for token in tokens(strip_noise(text)):
        if token in STOPWORDS or len(token) > 40 or is_noise_term(token):
            continue
        if len(token) == 1:
            continue
        seen.setdefault(token, None)
        if len(seen) >= limit:
            break
    return list(seen)


def fts_match_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression that ORs quoted terms: user text can never inject syntax.

    Each term is wrapped in double quotes with inner quotes doubled, which FTS5 reads as
    a plain string, so operators such as NEAR, AND, '*' or column filters lose meaning.
    """
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms if term]
    return " OR ".join(quoted)


# A snowball stemmer keeps its word in instance state, so threads sharing one get each
# other's words (wrong stems, IndexError): one stemmer per thread.
_STEMMERS = threading.local()


def fold_diacritics(word: str) -> str:
    """``word`` without combining accents ("contraseña" -> "contrasena"), as FTS5's
    unicode61 tokenizer stores it (it keeps letters such as "ß", "ø" and kana marks)."""
    if word.isascii():
        return word
    return unicodedata.normalize(
        "NFC",
        "".join(ch for ch in unicodedata.normalize("NFD", word) if not "\u0300" <= ch <= "\u036f"),
    )


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Porter stem, as SQLite FTS5's porter tokenizer computes it (accents folded first,
    as its unicode61 tokenizer does)."""
    stemmer = getattr(_STEMMERS, "porter", None)
    if stemmer is None:
        stemmer = _STEMMERS.porter = snowballstemmer.stemmer("porter")
    return stemmer.stemWord(fold_diacritics(word.lower()))


def rarest_terms(
    terms: list[str],
    document_counts: dict[str, int],
    total: int,
    limit: int = MAX_QUERY_TERMS,
    postings_budget: int = POSTINGS_BUDGET,
) -> list[str]:
    """The terms worth sending to FTS5, rarest (highest IDF) first.

    Left out: terms in no chunk, terms in most chunks (IDF near zero), and, on a large
    store, the commonest terms once the rarer ones already make FTS5 read
    ``postings_budget`` postings: FTS5 scores every chunk a term occurs in (a few
    microseconds each), so a few everyday words would otherwise cost more than the whole
    rest of the query. When even the rarest term is over the budget (a short query of
    everyday words on a store of a million chunks) nothing is sent: the dense half ranks
    that query alone, which is also what ranks short queries best. On a store of up to
    ``postings_budget`` chunks no single term is left out for cost.
    """
    kept = []
    for term in terms:
        count = document_counts.get(stem(term), 0)
        if count == 0 or (total > 20 and count > COMMON_TERM_SHARE * total):
            continue
        kept.append((count, term))
    kept.sort()
    chosen, postings = [], 0
    for count, term in kept[:limit]:
        if postings + count > postings_budget:
            break
        chosen.append(term)
        postings += count
    return chosen


def stems(terms: list[str]) -> list[str]:
    return [stem(t) for t in terms]


# Identifiers in incident text: error codes (ORA-12541, KB5034441), versions (2.3.0),
# dotted class and package names, paths, host names. The tokenizer splits them into pieces
# that are common alone ("ora", "3"); asked as a phrase they match only where the whole
# identifier stands.
# Linear in the text's length: a match starts only where a run of letters or digits starts
# (the look-behind), and runs are taken whole (possessive), so an unbroken run of 200,000
# letters is read once instead of once per position in it.
_IDENTIFIER = re.compile(r"(?<![^\W_])[^\W_]++(?:[-._:/\\][^\W_]++)+", re.UNICODE)
_STATUS_CODE = re.compile(
    r"\b(?:HTTP|HTTPS|error|code|status|errno|exit)[ :#-]*(\d{3,5})\b", re.IGNORECASE
)
MAX_IDENTIFIERS = 8
SOURCE_SUFFIXES = frozenset("java py scala kt cs cpp cc c h go js ts rb php groovy clj".split())


def identifier_phrases(text: str, limit: int = MAX_IDENTIFIERS) -> list[str]:
    """Multi-token identifiers of a text as space-joined token phrases, longest first."""
    found: dict[str, None] = {}
    text = strip_noise(text)  # a timestamp or an IP address is not an identifier to search for
    for match in _IDENTIFIER.finditer(text):
        parts = tokens(match.group(0))
        if len(parts) >= 3 and parts[-1].isdigit() and parts[-2] in SOURCE_SUFFIXES:
            parts = parts[:-1]  # Task.java:123 - the line number is noise
        has_digit = any(p.isdigit() or any(c.isdigit() for c in p) for p in parts)
        if 2 <= len(parts) <= 8 and (has_digit or len(parts) >= 3):
            found.setdefault(" ".join(parts), None)
    for match in _STATUS_CODE.finditer(text):
        found.setdefault(" ".join(tokens(match.group(0))), None)
    return sorted(found, key=lambda p: (-len(p.split()), p))[:limit]


# --- language analysis -----------------------------------------------------------------
# Beside a chunk's text (stemmed by FTS5's porter tokenizer, which knows English), the
# store's full-text table holds the chunk's "language terms" in a second column: the stems
# of the chunk's own language where Snowball has a stemmer for it, and, in any text,
# Japanese and Chinese runs split into overlapping two-character units (they are written
# without spaces, so FTS5 would otherwise see a whole clause as one word). A query's terms
# pass the same analysis (search.text.search_terms), so both sides meet on the same units.

# ISO 639-1 code -> Snowball algorithm, for the languages other than English that have one.
SNOWBALL_LANGUAGES = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "nl": "dutch",
    "eo": "esperanto",
    "et": "estonian",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nb": "norwegian",
    "nn": "norwegian",
    "fa": "persian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "st": "sesotho",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
# Hiragana, katakana and the CJK ideographs (with their extension A and compatibility forms).
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
MAX_LANGUAGE_TERMS = 2000  # per chunk or query


def cjk_units(text: str) -> list[str]:
    """Japanese and Chinese runs as overlapping character bigrams ("印刷機" -> "印刷", "刷機");
    a run of one character stays whole."""
    out: list[str] = []
    for match in _CJK_RUN.finditer(text):
        run = match.group(0)
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        if len(out) >= MAX_LANGUAGE_TERMS:
            break
    return out[:MAX_LANGUAGE_TERMS]


def language_stem(word: str, language: str) -> str:
    """``word``'s stem by the Snowball stemmer of ``language`` (an ISO 639-1 code in
    SNOWBALL_LANGUAGES), one stemmer per thread."""
    algorithm = SNOWBALL_LANGUAGES[language]
    stemmer = getattr(_STEMMERS, algorithm, None)
    if stemmer is None:
        stemmer = snowballstemmer.stemmer(algorithm)
        setattr(_STEMMERS, algorithm, stemmer)
    return stemmer.stemWord(word.lower())


def language_terms(text: str, language: str | None) -> list[str]:
    """The terms of ``text``'s language analysis, in order: its CJK bigrams, and, when
    ``language`` has a Snowball stemmer, the stems of its words (no log noise, no numbers)."""
    out = cjk_units(text)
    if language in SNOWBALL_LANGUAGES:
        for token in tokens(strip_noise(text)):
            if len(out) >= MAX_LANGUAGE_TERMS:
                break
            if (
                len(token) > 2
                and len(token) <= 40
                and not token.isdigit()
                and not _CJK_RUN.match(token)
            ):
                out.append(language_stem(token, language))
    return out[:MAX_LANGUAGE_TERMS]


def analyse(text: str) -> str:
    """The language-terms column of a chunk (see above): its language recognised by
    kb.language, the terms joined by spaces; empty for English text without CJK."""
    from kb.language import detect_code

    language = detect_code(text[:600])
    return " ".join(language_terms(text, language))
