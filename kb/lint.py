"""Checks on article files that a knowledge manager fixes before publishing.

Errors (exit 1): broken front matter (required fields, unknown states or audiences, bad
dates), duplicate ids, links to article files that do not exist, raw HTML in the body,
links or images written ``//host/...`` (another site posing as a relative address),
empty sections (a warning on drafts), and ``audience: public`` on an article that is not
validated. Warnings: review date passed or missing, missing house sections, unknown
front matter fields, links to archived articles.

A broken file is reported with its file and line and never stops the others.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from markdown_it import MarkdownIt

from kb.articles import (
    DATE_FIELDS,
    HOUSE_SECTIONS,
    ID_PATTERN,
    KNOWN_FIELDS,
    MAX_ARTICLE_BYTES,
    REQUIRED_FIELDS,
    ParsedArticle,
    is_protocol_relative,
    parse_article_text,
    split_front_matter,
)
from kb.errors import RecordError
from kb.models import ARTICLE_STATES, AUDIENCES
from kb.redaction import Redactor

ERROR = "error"
WARNING = "warning"

_PARSER = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class LintProblem:
    path: str
    line: int
    severity: str  # "error" | "warning"
    code: str  # a stable name for the kind of problem, e.g. "broken-link"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


@dataclass
class LintReport:
    files: int = 0
    problems: list[LintProblem] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == WARNING)

    def failed(self, *, strict: bool = False) -> bool:
        """True when there are errors (or, with ``strict``, any problem at all)."""
        return bool(self.errors or (strict and self.warnings))

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "errors": self.errors,
            "warnings": self.warnings,
            "problems": [p.to_dict() for p in self.problems],
        }


def article_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[LintProblem]]:
    """The ``*.md`` files named or lying under the named folders, each once."""
    files: dict[Path, None] = {}
    problems = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for item in sorted(path.rglob("*.md")):
                files.setdefault(item, None)
        elif path.is_file():
            files.setdefault(path, None)
        else:
            problems.append(LintProblem(str(path), 1, ERROR, "not-found", "no such file or folder"))
    return list(files), problems


def lint_paths(paths: Sequence[str | Path], *, today: dt.date | None = None) -> LintReport:
    """Lint every article file under ``paths`` (files or folders)."""
    today = today or dt.datetime.now(dt.UTC).date()
    files, problems = article_files(paths)
    report = LintReport(files=len(files), problems=problems)
    parsed: dict[Path, ParsedArticle] = {}
    first_with_id: dict[str, str] = {}
    links: dict[Path, list[tuple[int, str, str]]] = {}
    for path in files:
        item, found, links[path] = lint_file(path, today=today)
        report.problems.extend(found)
        if item is None:
            continue
        parsed[path.resolve()] = item
        article = item.article
        if article.id in first_with_id:
            report.problems.append(
                LintProblem(
                    str(path),
                    item.front_matter_lines.get("id", 1),
                    ERROR,
                    "duplicate-id",
                    f"duplicate id {article.id!r} (also in {first_with_id[article.id]})",
                )
            )
        else:
            first_with_id[article.id] = str(path)
    for path, found_links in links.items():
        for line, href, target in found_links:
            linked = parsed.get((path.parent / target).resolve())
            if linked is not None and linked.article.status == "archived":
                report.problems.append(
                    LintProblem(
                        str(path),
                        line,
                        WARNING,
                        "archived-link",
                        f"link to {href!r}: that article is archived",
                    )
                )
    report.problems.sort(key=lambda p: (p.path, p.line, p.severity != ERROR, p.code))
    return report


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_ARTICLE_BYTES:
        raise RecordError(f"file is larger than {MAX_ARTICLE_BYTES} bytes", source=str(path))
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecordError("not valid UTF-8 text", source=str(path), line=line) from None


def _record_problem(exc: RecordError, path: Path, code: str = "front-matter") -> LintProblem:
    text = str(exc)
    prefix = f"{exc.source}:{exc.line}: " if exc.line is not None else f"{exc.source}: "
    message = text[len(prefix) :] if text.startswith(prefix) else text
    return LintProblem(str(path), exc.line or 1, ERROR, code, message)


Links = list[tuple[int, str, str]]  # (line, href, relative file path) of links to articles


def lint_file(
    path: Path, *, today: dt.date
) -> tuple[ParsedArticle | None, list[LintProblem], Links]:
    """Problems of one file, the parsed article when its front matter is valid, and its
    links to other article files."""
    try:
        text = _read_text(path)
    except RecordError as exc:
        return None, [_record_problem(exc, path, "unreadable")], []
    except OSError as exc:
        return (
            None,
            [LintProblem(str(path), 1, ERROR, "unreadable", f"cannot read: {exc.strerror}")],
            [],
        )
    return lint_text(text, str(path), today=today, folder=path.parent)


def lint_text(
    text: str,
    source: str,
    *,
    today: dt.date,
    folder: Path | None = None,
) -> tuple[ParsedArticle | None, list[LintProblem], Links]:
    """Lint one article's text; ``folder`` is where its relative links are resolved."""
    problems: list[LintProblem] = []
    try:
        front, body, body_line = split_front_matter(text, source)
        meta = yaml.safe_load(front) if front.strip() else {}
    except RecordError as exc:
        return None, [_record_problem(exc, Path(source))], []
    except (yaml.YAMLError, ValueError, RecursionError):
        meta = None  # parse_article_text below reports it (e.g. `review_by: 2024-02-30`)
    key_lines: dict[str, int] = {}
    if isinstance(meta, dict):
        key_lines = _front_matter_lines(front)
        problems.extend(front_matter_problems(meta, key_lines, source))
    parsed: ParsedArticle | None = None
    try:
        parsed = parse_article_text(text, source)
    except RecordError as exc:
        problem = _record_problem(exc, Path(source))
        if not any(p.severity == ERROR and p.line == problem.line for p in problems):
            problems.append(problem)
    except (ValueError, RecursionError) as exc:  # YAML that builds an impossible date
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        problems.append(LintProblem(source, 1, ERROR, "front-matter", f"front matter: {reason}"))
    if parsed is not None:
        problems.extend(article_problems(parsed, source, today=today))
    status = (
        parsed.article.status
        if parsed is not None
        else str((meta or {}).get("status") or "")
        if isinstance(meta, dict)
        else ""
    )
    found, links = body_problems(body, body_line, source, status, folder)
    problems.extend(found)
    problems.extend(secret_problems(body, body_line, source))
    return parsed, problems, links


def secret_problems(body: str, body_line: int, source: str) -> list[LintProblem]:
    """Secrets in an article (articles are curated and not redacted: a support address or
    phone number may belong there, a password or a card number never does)."""
    out = []
    for finding in Redactor(("secret", "card", "iban")).findings(body):
        line = body_line + body.count("\n", 0, finding.start)
        out.append(
            LintProblem(
                source,
                line,
                ERROR,
                "secret",
                f"this looks like a {'secret' if finding.kind == 'secret' else finding.kind} "
                "(password, key, token or account number): remove it from the article",
            )
        )
    return out


def _front_matter_lines(front: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for offset, text in enumerate(front.splitlines()):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", text)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = 2 + offset
    return lines


def front_matter_problems(meta: dict, key_lines: dict[str, int], source: str) -> list[LintProblem]:
    """Every schema problem of the front matter (the importer stops at the first)."""
    out: list[LintProblem] = []

    def add(key: str, message: str, severity: str = ERROR, code: str = "front-matter") -> None:
        out.append(LintProblem(source, key_lines.get(key, 1), severity, code, message))

    for key in REQUIRED_FIELDS:
        if meta.get(key) in (None, ""):
            add(key, f"missing required field '{key}'")
    for key in meta:
        if str(key) not in KNOWN_FIELDS:
            add(
                str(key),
                f"unknown field '{key}' (known: {', '.join(KNOWN_FIELDS)})",
                WARNING,
                "unknown-field",
            )
    for key in ("id", "title", "status", "audience", "product", "category", "owner"):
        if isinstance(meta.get(key), (dict, list)):
            add(key, f"field '{key}' must be text")
    article_id = str(meta.get("id") or "").strip()
    if article_id and not ID_PATTERN.match(article_id):
        add("id", f"id {article_id!r} must be lower-case letters, digits, '.', '_' or '-'")
    status = str(meta.get("status") or "").strip()
    if status and status not in ARTICLE_STATES:
        add("status", f"unknown status {status!r}; expected one of {', '.join(ARTICLE_STATES)}")
    audience = str(meta.get("audience") or "").strip()
    if audience and audience not in AUDIENCES:
        add("audience", f"unknown audience {audience!r}; expected one of {', '.join(AUDIENCES)}")
    for key in DATE_FIELDS:
        value = meta.get(key)
        if value in (None, "") or isinstance(value, dt.date):
            continue
        try:
            dt.date.fromisoformat(str(value).strip())
        except ValueError:
            add(key, f"field '{key}' is not a valid date (YYYY-MM-DD): {value!r}")
    tags = meta.get("tags")
    if (
        tags not in (None, "")
        and not isinstance(tags, str)
        and not (isinstance(tags, list) and all(isinstance(t, (str, int, float)) for t in tags))
    ):
        add("tags", "field 'tags' must be a list of words")
    if len(str(meta.get("title") or "")) > 300:
        add("title", "title is longer than 300 characters")
    return out


def article_problems(parsed: ParsedArticle, source: str, *, today: dt.date) -> list[LintProblem]:
    """Rules on a valid article: public only when validated, review date, house sections."""
    article = parsed.article
    lines = parsed.front_matter_lines
    out: list[LintProblem] = []
    if article.audience == "public" and article.status != "validated":
        out.append(
            LintProblem(
                source,
                lines.get("audience", 1),
                ERROR,
                "public-not-validated",
                f"audience is public but status is {article.status}: only validated articles "
                "may be public (make it internal, or validate it)",
            )
        )
    if article.status != "archived":
        if not article.review_by:
            out.append(
                LintProblem(
                    source,
                    lines.get("id", 1),
                    WARNING,
                    "no-review-date",
                    "no review_by date: set when the article is due for review",
                )
            )
        elif dt.date.fromisoformat(article.review_by) < today:
            days = (today - dt.date.fromisoformat(article.review_by)).days
            out.append(
                LintProblem(
                    source,
                    lines.get("review_by", 1),
                    WARNING,
                    "review-overdue",
                    f"review date {article.review_by} passed {days} day{'s' if days != 1 else ''} ago",
                )
            )
    return out


def _sections(tokens: list) -> list[tuple[str, int, bool]]:
    """(heading, body-relative line, has content) for each level-2 section."""
    sections: list[list] = []  # [heading, line, has content, tag]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.level == 0 and token.type == "heading_open" and token.tag in ("h1", "h2"):
            text = tokens[index + 1].content.strip() if index + 1 < len(tokens) else ""
            sections.append([text, token.map[0] if token.map else 0, False, token.tag])
            index += 3  # heading_open, inline, heading_close
            continue
        if token.level == 0 and sections and token.nesting >= 0 and token.type != "inline":
            sections[-1][2] = True
        index += 1
    return [(s[0], s[1], s[2]) for s in sections if s[3] == "h2"]


def body_problems(
    body: str,
    body_line: int,
    source: str,
    status: str,
    folder: Path | None,
) -> tuple[list[LintProblem], Links]:
    """Raw HTML, broken relative links, empty sections and missing house sections; and
    the body's links to other article files."""
    out: list[LintProblem] = []
    links: Links = []
    tokens = _PARSER.parse(body)
    body_lines = body.split("\n")

    def line_of(token, parent=None, needle: str = "") -> int:
        span = (token.map or (parent.map if parent is not None else None)) or [0, 1]
        if needle:
            for offset in range(span[0], min(span[1], len(body_lines))):
                if needle in body_lines[offset]:
                    return body_line + offset
        return body_line + span[0]

    for token in tokens:
        if token.type == "html_block":
            out.append(
                LintProblem(
                    source,
                    line_of(token),
                    ERROR,
                    "raw-html",
                    f"raw HTML is shown as text, not rendered: {_clip(token.content)}",
                )
            )
        for child in token.children or []:
            if child.type == "html_inline":
                out.append(
                    LintProblem(
                        source,
                        line_of(child, token, child.content),
                        ERROR,
                        "raw-html",
                        f"raw HTML is shown as text, not rendered: {_clip(child.content)}",
                    )
                )
            elif child.type in ("link_open", "image") and is_protocol_relative(
                child.attrGet("href") or child.attrGet("src") or ""
            ):
                href = child.attrGet("href") or child.attrGet("src") or ""
                out.append(
                    LintProblem(
                        source,
                        line_of(child, token, href),
                        ERROR,
                        "protocol-relative-link",
                        f"{'image' if child.type == 'image' else 'link'} {_clip(href)!r} points at "
                        "another site without saying so: write it with https:, or make it relative",
                    )
                )
            elif child.type == "link_open":
                href = child.attrGet("href") or ""
                target = _relative_article_target(href)
                if not target:
                    continue
                line = line_of(child, token, href)
                links.append((line, href, target))
                if folder is not None and not (folder / target).exists():
                    out.append(
                        LintProblem(
                            source,
                            line,
                            ERROR,
                            "broken-link",
                            f"link to {href!r}: no such article file",
                        )
                    )
    sections = _sections(tokens)
    for heading, offset, has_content in sections:
        if not has_content:
            out.append(
                LintProblem(
                    source,
                    body_line + offset,
                    WARNING if status == "draft" else ERROR,
                    "empty-section",
                    f"section '{heading}' is empty"
                    if heading
                    else "an untitled '##' section is empty",
                )
            )
    present = {heading.lower() for heading, _, _ in sections}
    missing = [h for h in HOUSE_SECTIONS if h.lower() not in present]
    if missing and status != "archived":
        out.append(
            LintProblem(
                source,
                body_line,
                WARNING,
                "missing-section",
                f"missing house section{'s' if len(missing) > 1 else ''}: "
                + ", ".join(f"## {h}" for h in missing),
            )
        )
    return out, links


def _relative_article_target(href: str) -> str | None:
    """The file path of a relative link to a Markdown file, else None."""
    if not href or href.startswith(("/", "#")) or _SCHEME.match(href):
        return None
    path = unquote(href.split("#", 1)[0].split("?", 1)[0])
    return path if path.lower().endswith(".md") else None


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
