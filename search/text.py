"""Query text: composing and capping an incident's text, the words it matched, highlighted
snippets. Tokens, stems and FTS5 expressions come from kb.lexical."""

from __future__ import annotations

import bisect
import html

from kb.lexical import WORD, stem, tokens
from kb.text import normalise_text


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


def matched_terms(query: list[str], text: str) -> list[str]:
    """Query terms that occur in the text (after light suffix stripping)."""
    stems = {stem(t) for t in tokens(text)}
    return [t for t in query if stem(t) in stems]


def highlight_snippet(text: str, terms: list[str], width: int = 240) -> str:
    """A window of ``text`` around the densest run of matched terms, HTML-escaped, with
    matched words wrapped in ``<mark>``."""
    text = " ".join(text.split())
    wanted = {stem(t) for t in terms}
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
