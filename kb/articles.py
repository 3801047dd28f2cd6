"""Markdown articles: front matter parsing and validation, and safe rendering.

An article file is YAML front matter between ``---`` lines, then a Markdown body.
Raw HTML in the body is never rendered as HTML, and links may only use safe schemes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from kb.errors import RecordError
from kb.models import ARTICLE_STATES, AUDIENCES, Article

REQUIRED_FIELDS = ("id", "title", "status", "audience")
KNOWN_FIELDS = (
    "id",
    "title",
    "status",
    "audience",
    "product",
    "category",
    "tags",
    "owner",
    "review_by",
    "updated",
)
DATE_FIELDS = ("review_by", "updated")


class _ArticleId:
    """Article ids: lower-case letters of any script, digits, '.', '_' and '-', at most 100,
    starting with a letter or digit ("vpn-drops", "принтер-не-печатает")."""

    _shape = re.compile(r"[^\W_][\w.-]{0,99}")

    def match(self, text: str) -> bool:
        return bool(text) and self._shape.fullmatch(text) is not None and text == text.lower()


ID_PATTERN = _ArticleId()
MAX_ARTICLE_BYTES = 1_000_000
HOUSE_SECTIONS = ("Symptoms", "Cause", "Resolution", "Applies to")


@dataclass
class ArticleProblem:
    path: str
    line: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass
class ParsedArticle:
    article: Article
    body_line: int  # line of the file where the body starts
    front_matter_lines: dict[str, int] = field(default_factory=dict)


def _key_lines(front_matter: str, first_line: int) -> dict[str, int]:
    lines = {}
    for offset, text in enumerate(front_matter.splitlines()):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", text)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = first_line + offset
    return lines


def _as_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return dt.date.fromisoformat(value.strip()).isoformat()
    raise ValueError(f"not a date: {value!r}")


def split_front_matter(text: str, source: str) -> tuple[str, str, int]:
    """Return (front matter, body, line where the body starts). Raises RecordError."""
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise RecordError(
            "no front matter: the file must start with a '---' line", source=source, line=1
        )
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            return "\n".join(lines[1 : number - 1]), "\n".join(lines[number:]), number + 1
    raise RecordError("front matter is not closed with a '---' line", source=source, line=1)


def parse_article_text(text: str, source: str = "<text>") -> ParsedArticle:
    """Parse and validate one article. Raises RecordError naming the file and line."""
    if "\x00" in text:
        raise RecordError("file contains NUL bytes", source=source, line=1)
    front, body, body_line = split_front_matter(text, source)
    try:
        meta = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecordError(f"front matter: {problem}", source=source, line=line) from None
    except (ValueError, RecursionError) as exc:  # e.g. `review_by: 2024-02-30`, deep nesting
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise RecordError(f"front matter: {reason}", source=source, line=1) from None
    if not isinstance(meta, dict):
        raise RecordError("front matter must be a mapping of fields", source=source, line=2)
    key_lines = _key_lines(front, 2)

    def fail(key: str, message: str):
        raise RecordError(message, source=source, line=key_lines.get(key, 1))

    for key in REQUIRED_FIELDS:
        if meta.get(key) in (None, ""):
            fail(key, f"missing required field '{key}'")
    values: dict[str, Any] = {}
    for key in ("id", "title", "status", "audience", "product", "category", "owner"):
        raw = meta.get(key, "")
        if raw is None:
            raw = ""
        if isinstance(raw, (dict, list)):
            fail(key, f"field '{key}' must be text")
        values[key] = str(raw).strip()
    if not ID_PATTERN.match(values["id"]):
        fail("id", f"id {values['id']!r} must be lower-case letters, digits, '.', '_' or '-'")
    if values["status"] not in ARTICLE_STATES:
        fail(
            "status",
            f"unknown status {values['status']!r}; expected one of {', '.join(ARTICLE_STATES)}",
        )
    if values["audience"] not in AUDIENCES:
        fail(
            "audience",
            f"unknown audience {values['audience']!r}; expected one of {', '.join(AUDIENCES)}",
        )
    for key in DATE_FIELDS:
        raw = meta.get(key)
        if raw in (None, ""):
            values[key] = ""
            continue
        try:
            values[key] = _as_date(raw)
        except ValueError:
            fail(key, f"field '{key}' is not a valid date (YYYY-MM-DD): {raw!r}")
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, (str, int, float)) for t in tags):
        fail("tags", "field 'tags' must be a list of words")
    values["tags"] = [str(t) for t in tags]
    if len(values["title"]) > 300:
        fail("title", "title is longer than 300 characters")
    for key, value in values.items():
        try:
            "".join(value if isinstance(value, list) else [value]).encode("utf-8")
        except UnicodeEncodeError:  # YAML's "\ud800" escape on its own
            fail(key, f"field '{key}' contains an unpaired surrogate escape")
    article = Article(body=body.strip("\n"), path=source, **values)
    return ParsedArticle(article, body_line, key_lines)


def read_article_file(path: Path, root: Path | None = None) -> ParsedArticle:
    """Read one article file. Refuses files outside ``root`` (symlinks included)."""
    resolved = path.resolve()
    shown = str(path)
    if root is not None:
        try:
            resolved.relative_to(root.resolve())
        except ValueError:
            raise RecordError("file lies outside the articles folder", source=shown) from None
    size = resolved.stat().st_size
    if size > MAX_ARTICLE_BYTES:
        raise RecordError(f"file is larger than {MAX_ARTICLE_BYTES} bytes", source=shown)
    raw = resolved.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecordError("not valid UTF-8 text", source=shown, line=line) from None
    return parse_article_text(text.replace("\r\n", "\n"), shown)


@dataclass
class ArticleScan:
    parsed: list[ParsedArticle]
    problems: list[ArticleProblem]


def scan_articles(folder: Path) -> ArticleScan:
    """Parse every ``*.md`` file in a folder. Bad files become problems, not exceptions."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError("not a folder", source=str(folder))
    parsed: list[ParsedArticle] = []
    problems: list[ArticleProblem] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.rglob("*.md")):
        try:
            item = read_article_file(path, root=folder)
        except RecordError as exc:
            problems.append(ArticleProblem(exc.source or str(path), exc.line or 1, _reason(exc)))
            continue
        except OSError as exc:
            problems.append(ArticleProblem(str(path), 1, f"cannot read: {exc.strerror}"))
            continue
        if item.article.id in seen:
            problems.append(
                ArticleProblem(
                    str(path),
                    item.front_matter_lines.get("id", 1),
                    f"duplicate id {item.article.id!r} (also in {seen[item.article.id]})",
                )
            )
            continue
        seen[item.article.id] = str(path)
        parsed.append(item)
    return ArticleScan(parsed, problems)


def _reason(exc: RecordError) -> str:
    text = str(exc)
    prefix = f"{exc.source}:{exc.line}: " if exc.line is not None else f"{exc.source}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


# --- rendering -----------------------------------------------------------------------

_SAFE_SCHEMES = ("http:", "https:", "mailto:")
_EXTERNAL_SCHEMES = ("http:", "https:")


def _link_probe(url: str) -> str:
    return re.sub(r"[\x00-\x20\x7f]", "", url).lower()


def is_protocol_relative(url: str) -> bool:
    """``//host/path`` (or a backslash spelling of it): a link to another site that looks
    relative. Browsers read it against the page's scheme."""
    return _link_probe(url).replace("\\", "/").replace("%5c", "/").startswith("//")


def _make_renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])

    def validate_link(url: str) -> bool:
        probe = _link_probe(url)
        if is_protocol_relative(probe):
            return False  # another site's address posing as a relative one: not linked
        if ":" not in probe.split("/")[0].split("?")[0].split("#")[0]:
            return True  # relative link
        return probe.startswith(_SAFE_SCHEMES)

    md.validateLink = validate_link
    return md


_RENDERER = _make_renderer()
_ARTICLE_LINK = re.compile(r"^(?:\./)?([a-z0-9][a-z0-9._-]*)\.md(#[\w-]*)?$")


def render_markdown(body: str, *, article_url: str = "/articles/{id}") -> str:
    """Render an article body to HTML: raw HTML escaped, unsafe links dropped.

    Relative links to other articles (``other-article.md``) point at their page; links to
    other sites carry ``rel="noopener noreferrer nofollow"``; an image on another site is
    never loaded: it becomes a link to it.
    """
    tokens = _RENDERER.parse(body)
    for token in tokens:
        if token.children:
            token.children = _outside_images_as_links(token.children)
        for child in token.children or []:
            if child.type != "link_open":
                continue
            href = child.attrGet("href") or ""
            match = _ARTICLE_LINK.match(href)
            if match:
                child.attrSet(
                    "href", article_url.format(id=match.group(1)) + (match.group(2) or "")
                )
            elif href.startswith(("http:", "https:")):
                child.attrSet("rel", "noopener noreferrer nofollow")
    return _RENDERER.renderer.render(tokens, _RENDERER.options, {})


def _outside_images_as_links(children: list) -> list:
    out = []
    for child in children:
        src = (child.attrGet("src") or "") if child.type == "image" else ""
        if not _link_probe(src).startswith(_EXTERNAL_SCHEMES):
            out.append(child)
            continue
        opening = Token("link_open", "a", 1, attrs={"href": src})
        label = Token("text", "", 0, content=child.content or src)
        out.extend([opening, label, Token("link_close", "a", -1)])
    return out


def article_sections(body: str) -> list[tuple[str, str]]:
    """Split a body into (heading, text) at level-2 headings; text before any is ''."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in body.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else re.match(r"^##\s+(.+?)\s*#*\s*$", line)
        if match:
            sections.append((match.group(1).strip(), []))
        else:
            sections[-1][1].append(line)
    return [
        (heading, "\n".join(lines).strip())
        for heading, lines in sections
        if heading or "\n".join(lines).strip()
    ]


def text_segments(markdown: str) -> list[tuple[str, str]]:
    """Markdown as ``(kind, text)`` pieces in reading order, read from markdown-it's
    tokens: kind "text" (emphasis and link syntax gone), "code" (an inline code span) or
    "block" (a fenced or indented block, without its language tag). Code is kept exactly
    as written, so ``export_jobs`` and ``$API_KEY`` are never mangled; every block-level
    element ends with a "break" piece."""
    pieces: list[tuple[str, str]] = []
    for token in _RENDERER.parse(markdown):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in ("text", "html_inline"):
                    pieces.append(("text", child.content))
                elif child.type == "code_inline":
                    pieces.append(("code", child.content))
                elif child.type in ("softbreak", "hardbreak"):
                    pieces.append(("text", " " if child.type == "softbreak" else "\n"))
                elif child.type == "image":
                    pieces.append(("text", child.content))  # its alt text
            pieces.append(("break", ""))
        elif token.type in ("fence", "code_block"):
            pieces.append(("block", token.content.rstrip("\n")))
            pieces.append(("break", ""))
        elif token.type == "html_block":
            pieces.append(("text", token.content.rstrip("\n")))
            pieces.append(("break", ""))
    return pieces


def plain_text(markdown: str) -> str:
    """Markdown reduced to plain text for embedding, snippets and the "Fix" shown to
    agents: ordinary text with its spacing tidied, code verbatim (a block keeps its lines
    and indentation), one line per block-level element."""
    lines: list[str] = []
    current: list[str] = []
    for kind, text in text_segments(markdown):
        if kind == "text":
            current.append(re.sub(r"[ \t]+", " ", text))
        elif kind == "code":
            current.append(text)
        elif kind == "block":
            current.append(text)
        else:
            line = "".join(current).strip(" ")
            if line.strip():
                lines.append(line)
            current = []
    if "".join(current).strip():
        lines.append("".join(current).strip(" "))
    return "\n".join(lines).strip()
