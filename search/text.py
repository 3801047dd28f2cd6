"""Query text: composing, capping, tokenising, FTS5-safe match expressions, highlighting."""

from __future__ import annotations

import bisect
import functools
import html
import re
import threading

import snowballstemmer

from kb.text import normalise_text

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

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 48  # terms sent to FTS5; a long report keeps its rarest ones
MAX_CANDIDATE_TERMS = 400
# A term in more than this share of chunks carries almost no BM25 weight (its IDF is ~0)
# but makes FTS5 score a long posting list: it is left out of the lexical query.
COMMON_TERM_SHARE = 0.5
POSTINGS_BUDGET = 10_000


def compose_query(title: str | None, description: str | None, max_chars: int) -> tuple[str, bool]:
    """The text searched for an incident, cut to ``max_chars``; returns (text, truncated)."""
    title = (title or "").strip()
    description = (description or "").strip()
    if title and description and not description.lower().startswith(title.lower()):
        text = f"{title}\n{description}"
    else:
        text = description or title
    text = normalise_text(text)
    if len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(text)]


def query_terms(text: str, limit: int = MAX_CANDIDATE_TERMS) -> list[str]:
    """Distinct content words of a query, in order of appearance, at most ``limit``."""
    seen: dict[str, None] = {}
    for token in tokens(text):
        if token in STOPWORDS or len(token) > 40:
            continue
        if len(token) == 1 and not token.isdigit():
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


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """The Porter stem, as SQLite FTS5's porter tokenizer computes it."""
    stemmer = getattr(_STEMMERS, "porter", None)
    if stemmer is None:
        stemmer = _STEMMERS.porter = snowballstemmer.stemmer("porter")
    return stemmer.stemWord(word.lower())


def rarest_terms(terms: list[str], document_counts: dict[str, int], total: int,
                 limit: int = MAX_QUERY_TERMS, postings_budget: int = POSTINGS_BUDGET) -> list[str]:
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
        count = document_counts.get(_stem(term), 0)
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
    return [_stem(t) for t in terms]


def matched_terms(query: list[str], text: str) -> list[str]:
    """Query terms that occur in the text (after light suffix stripping)."""
    stems = {_stem(t) for t in tokens(text)}
    return [t for t in query if _stem(t) in stems]


def highlight_snippet(text: str, terms: list[str], width: int = 240) -> str:
    """A window of ``text`` around the densest run of matched terms, HTML-escaped, with
    matched words wrapped in ``<mark>``."""
    text = " ".join(text.split())
    wanted = {_stem(t) for t in terms}
    words = list(_WORD.finditer(text))
    hits = [m.start() for m in words if _stem(m.group(0).lower()) in wanted]
    if len(text) <= width:
        start, end = 0, len(text)
    else:
        best, best_count = 0, -1
        for number, pos in enumerate(hits or [0]):
            count = bisect.bisect_left(hits, pos + width, lo=number) - number
            if count > best_count:
                best, best_count = pos, count
        start = max(0, best - width // 6)
        start = text.rfind(" ", 0, start) + 1 if start > 0 else 0
        end = min(len(text), start + width)
        if end < len(text):
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
    out: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for match in words:
        if match.start() < start or match.end() > end:
            continue
        if _stem(match.group(0).lower()) in wanted:
            out.append(html.escape(text[cursor : match.start()], quote=False))
            out.append("<mark>" + html.escape(match.group(0), quote=False) + "</mark>")
            cursor = match.end()
    out.append(html.escape(text[cursor:end], quote=False))
    if end < len(text):
        out.append("…")
    return "".join(out)


def word_count(text: str) -> int:
    return len(text.split())



# Identifiers in incident text: error codes (ORA-12541, KB5034441), versions (2.3.0),
# dotted class and package names, paths, host names. The tokenizer splits them into pieces
# that are common alone ("ora", "3"); asked as a phrase they match only where the whole
# identifier stands.
_IDENTIFIER = re.compile(r"[^\W_]+(?:[-._:/\\][^\W_]+)+", re.UNICODE)
_STATUS_CODE = re.compile(r"\b(?:HTTP|HTTPS|error|code|status|errno|exit)[ :#-]*(\d{3,5})\b", re.IGNORECASE)
MAX_IDENTIFIERS = 8
SOURCE_SUFFIXES = frozenset("java py scala kt cs cpp cc c h go js ts rb php groovy clj".split())


def identifier_phrases(text: str, limit: int = MAX_IDENTIFIERS) -> list[str]:
    """Multi-token identifiers of a text as space-joined token phrases, longest first."""
    found: dict[str, None] = {}
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
