"""Query text: composing and capping an incident's text (a pasted log is read for its
error lines, and a long one at its end too), the words it matched, highlighted snippets.
Tokens, stems, stopwords, log noise and FTS5 expressions come from kb.lexical."""

from __future__ import annotations

import bisect
import html
import re

from kb.lexical import (
    COMMON_WORDS,
    MAX_CANDIDATE_TERMS,
    WORD,
    language_terms,
    query_terms,
    stem,
    strip_noise,
    tokens,
)
from kb.text import normalise_text

# A line of a log or a stack trace (indentation stripped): it starts with a timestamp, a syslog date, a log level,
# a stack frame ("at org.x.Y(Y.java:12)", 'File "x.py", line 3') or "Caused by:".
_LOG_LINE = re.compile(
    r"(?:\[?\d{4}-\d{2}-\d{2}|\[?\d{1,2}:\d{2}:\d{2}|\[\s{0,8}\d{1,12}\.\d{1,9}\]"
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s{1,3}\d{1,2}\s"
    r"|\[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL|SEVERE)\b"
    r"|at\s[\w$.<>]{1,300}\(|File\s\"|Caused by:|\.\.\.\s\d{1,9}\smore)"
)
# What an error line says, wherever it stands: failure words and phrases, upper-case
# severities, "Caused by:", error codes such as ORA-12541 or 0x80070005.
_ERROR_WORDS = re.compile(
    r"(?<!\w)(?:errors?|errno|fail(?:s|ed|ing|ure)?|fatal|denied|refused|timed out|time ?out|cannot"
    r"|can't|could not|couldn't|unable to|no space|not found|no such|out of memory|oom|panic(?:ked)?"
    r"|segfault|segmentation fault|killed|exception|traceback|caused by|exit (?:code|status)"
    r"|abort(?:ed)?|crash(?:ed)?|corrupt(?:ed)?|unreachable|rejected|expired|deadlock|overflow"
    r"|refusing|invalid|forbidden|unauthori[sz]ed)(?!\w)",
    re.IGNORECASE,
)
_ERROR_CODE = re.compile(r"(?<![\w-])(?:[A-Z]{2,8}-\d{3,6}|0x[0-9A-Fa-f]{8})(?![\w-])")
_EXCEPTION_SUFFIXES = ("Exception", "Error", "Fault", "Failure", "Panic")
# A paste is read as a log from this many lines, when at least this share of them are log lines.
LOG_MIN_LINES = 5
LOG_LINE_SHARE = 0.3
# Of the budget of a long paste, at most these shares go to the lines a person wrote and to
# its error lines; what is left is split between its start and its end, the end (where a
# log's last word is) larger.
PROSE_SHARE = 0.2
ERROR_SHARE = 0.3
MAX_ERROR_LINES = 40
TAIL_SHARE = 0.6
MAX_LINE_CHARS = 400
BARE_LOG_PROSE_WORDS = 30


def is_log_like(text: str) -> bool:
    """True for a pasted log or stack trace: enough lines, a good share of them log lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < LOG_MIN_LINES:
        return False
    log_lines = sum(1 for line in lines if _LOG_LINE.match(line.lstrip()))
    return log_lines >= LOG_LINE_SHARE * len(lines)


def is_error_line(line: str) -> bool:
    """A line that says what went wrong: an exception class, an error code or message."""
    if _ERROR_WORDS.search(line) or _ERROR_CODE.search(line):
        return True
    return any(
        word[:1].isupper() and word.endswith(_EXCEPTION_SUFFIXES) and len(word) > 5
        for word in WORD.findall(line)
    )


def error_lines(text: str, limit: int = MAX_ERROR_LINES) -> list[str]:
    """The distinct error lines of a text, without their log noise (timestamps, ids, levels),
    last first: the end of a log and the innermost "Caused by" usually decide."""
    found: dict[str, None] = {}
    for line in reversed(text.split("\n")):
        if not is_error_line(line):
            continue
        clean = " ".join(strip_noise(line[:MAX_LINE_CHARS]).split())
        if clean and sum(ch.isalpha() for ch in clean) >= 3:
            found.setdefault(clean, None)
            if len(found) >= limit:
                break
    return list(found)


def _lines_within(lines: list[str], budget: int, *, from_end: bool = False) -> list[str]:
    out, size = [], 0
    for line in reversed(lines) if from_end else lines:
        line = line[:MAX_LINE_CHARS]
        if size + len(line) + 1 > budget:
            break
        out.append(line)
        size += len(line) + 1
    return out[::-1] if from_end else out


def is_prose_line(line: str) -> bool:
    """A line a person wrote: not a log line, not an error line, some words."""
    stripped = line.strip()
    return (
        sum(ch.isalpha() for ch in stripped[:200]) >= 3
        and not _LOG_LINE.match(stripped)
        and not is_error_line(line)
    )


def prose_lines(text: str) -> list[str]:
    return [line.strip()[:MAX_LINE_CHARS] for line in text.split("\n") if is_prose_line(line)]


def focus_text(title: str, body: str, max_chars: int) -> str:
    """A pasted log or a long text as it is searched, within ``max_chars``: its title, the
    lines a person wrote, its error lines (last first, without their timestamps and ids),
    then as much of its start and its end as the budget leaves. The model reads the start
    of this text: what the person said, then what the machine said went wrong."""
    head = [title] if title else []
    budget = max_chars - sum(len(x) + 1 for x in head)
    prose = _lines_within(prose_lines(body), int(budget * PROSE_SHARE))
    errors = _lines_within(error_lines(body), int(budget * ERROR_SHARE))
    budget -= sum(len(x) + 1 for x in prose) + sum(len(x) + 1 for x in errors)
    lines = body.split("\n")
    if sum(len(line) + 1 for line in lines) <= budget:
        rest = lines
    else:
        tail = _lines_within(lines, int(budget * TAIL_SHARE), from_end=True)
        start = _lines_within(
            lines[: len(lines) - len(tail)], budget - sum(len(x) + 1 for x in tail) - 2
        )
        rest = [*start, "…", *tail]
    return "\n".join([*head, *prose, *errors, *rest])[:max_chars]


def typed_text(title: str | None, description: str | None) -> str:
    """The incident as typed, in one text: its title, then its description (unless the
    description already starts with the title), normalised. What a recorded suggestion
    keeps, so that showing it again shows what was typed, not the reordered text searched."""
    title = (title or "").strip()
    description = (description or "").strip()
    if title and description and not description.lower().startswith(title.lower()):
        return normalise_text(f"{title}\n{description}")
    return normalise_text(description or title)


def compose_query(title: str | None, description: str | None, max_chars: int) -> tuple[str, bool]:
    """The text searched for an incident, at most ``max_chars``; returns (text, truncated).

    A bare pasted log (is_bare_log), and any text longer than ``max_chars``, is searched as
    :func:`focus_text` composes it: what the person wrote, its error lines, its start and
    its end.
    """
    title = (title or "").strip()
    description = (description or "").strip()
    text = typed_text(title, description)
    if title and description and not description.lower().startswith(title.lower()):
        lead, body = normalise_text(title), normalise_text(description)
    else:
        lead, body = "", text
    too_long = len(text) > max_chars
    if not too_long and not is_bare_log(body):
        return text, False
    return focus_text(lead, body, max_chars), too_long


def is_bare_log(text: str) -> bool:
    """A paste that is all log: log lines with hardly a word of a person's own. A report
    that carries a stack trace is searched as written (read errors first, its embeddings
    ranked worse on the development bug reports); its error lines still lead its lexical
    terms (search_terms)."""
    return (
        is_log_like(text)
        and sum(len(line.split()) for line in prose_lines(text)) < BARE_LOG_PROSE_WORDS
    )


def search_terms(text: str, language: str | None = None) -> list[str]:
    """The words the lexical half searches for: those of a log's title, the lines a person
    wrote and its error lines when it has error lines (routine log lines are left out, so
    the errors count most), else those of the whole text; then the
    terms of the text's language analysis (kb.lexical.language_terms: stems of
    ``language``, CJK bigrams), which the store holds beside each chunk's text."""
    if is_log_like(text):
        errors = error_lines(text)
        if errors:
            text = "\n".join([*prose_lines(text), *errors])
    terms = query_terms(text)
    known = set(terms)
    for term in language_terms(text, language):
        if term not in known and len(known) < MAX_CANDIDATE_TERMS:
            known.add(term)
            terms.append(term)
    return terms


def shown_terms(terms: list[str]) -> list[str]:
    """Terms worth showing as matched: no common words, no bare years or short numbers."""
    return [
        t
        for t in terms
        if t not in COMMON_WORDS
        and not (t.isdigit() and (len(t) <= 2 or (len(t) == 4 and t[:2] in ("19", "20"))))
    ]


def matched_terms(query: list[str], text: str) -> list[str]:
    """Query terms that occur in the text (after light suffix stripping), common words and
    bare numbers left out."""
    stems = {stem(t) for t in tokens(text)}
    return [t for t in shown_terms(query) if stem(t) in stems]


def highlight_snippet(text: str, terms: list[str], width: int = 240) -> str:
    """A window of ``text`` around the densest run of matched terms, HTML-escaped, with
    matched words wrapped in ``<mark>`` (common words and bare numbers never are)."""
    text = " ".join(text.split())
    wanted = {stem(t) for t in shown_terms(terms)}
    words = list(WORD.finditer(text))
    hits = [m.start() for m in words if stem(m.group(0).lower()) in wanted]
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
        if stem(match.group(0).lower()) in wanted:
            out.append(html.escape(text[cursor : match.start()], quote=False))
            out.append("<mark>" + html.escape(match.group(0), quote=False) + "</mark>")
            cursor = match.end()
    out.append(html.escape(text[cursor:end], quote=False))
    if end < len(text):
        out.append("…")
    return "".join(out)
