"""Writing article files: new ones from the house template, state changes in place, and
the text form used to show what changed between stored versions.

Files are the source of truth for articles; every function here validates the text it is
about to write with :func:`kb.articles.parse_article_text`, and writes by atomic rename,
so a file is never left half-written or invalid.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.articles import (
    DATE_FIELDS,
    HOUSE_SECTIONS,
    ID_PATTERN,
    KNOWN_FIELDS,
    ParsedArticle,
    parse_article_text,
    read_article_file,
    split_front_matter,
)
from kb.errors import ConflictError, NotFoundError, ValidationError
from kb.models import ARTICLE_STATES, AUDIENCES
from kb.store import Store

REVIEW_PERIOD_DAYS = 180
MAX_SLUG_CHARS = 80


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def slugify(text: str, limit: int = MAX_SLUG_CHARS) -> str:
    """A valid article id from free text: its lower-case words, in whatever script they are
    written, joined by '-' (accents on Latin letters dropped: "café" gives "cafe")."""
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char) and kept and kept[-1].isascii():
            continue  # an accent on a Latin letter
        kept.append(char)
    slug = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFKC", "".join(kept)).lower()).strip("-")
    if len(slug) > limit:
        cut = slug.rfind("-", 0, limit + 1)
        slug = slug[: cut if cut > 0 else limit].strip("-")
    return slug


def check_article_id(article_id: str) -> str:
    """Return the id if it is valid. Raises ValidationError."""
    if not ID_PATTERN.match(article_id or ""):
        raise ValidationError(
            f"id {article_id!r} must be lower-case letters, digits, '.', '_' or '-' "
            "(at most 100 characters)"
        )
    return article_id


def yaml_scalar(value: Any) -> str:
    """One YAML value on one line, quoted only where YAML needs it."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if value is None or value == "":
        return "''"
    # Text with a line break is written double-quoted, its breaks escaped, so a value
    # never spans lines: a line of its own reading `---` would end the front matter.
    style = '"' if isinstance(value, str) and re.search(r"[\r\n\x85\u2028\u2029]", value) else None
    text = yaml.safe_dump(
        value, allow_unicode=True, default_flow_style=True, width=10**9, default_style=style
    )
    if text.endswith("\n...\n"):
        text = text[: -len("\n...\n")]
    return text.strip()


def _date_value(text: str) -> Any:
    """A stored ISO date back to a date, so YAML writes it unquoted."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return text


def front_matter_text(fields: dict[str, Any]) -> str:
    """Front matter lines (without the ``---`` fences) in the house order."""
    lines = []
    for key in KNOWN_FIELDS:
        if key not in fields:
            continue
        value = fields[key]
        if key in DATE_FIELDS and isinstance(value, str):
            value = _date_value(value) if value else ""
        lines.append(f"{key}: {yaml_scalar(value)}")
    return "\n".join(lines)


def article_markdown(fields: dict[str, Any], body: str) -> str:
    """A whole article file: front matter, then the body."""
    return f"---\n{front_matter_text(fields)}\n---\n\n{body.strip(chr(10))}\n"


def article_as_text(data: dict[str, Any]) -> str:
    """A stored article version (``Article.to_dict()``) as file text, for diffs."""
    return article_markdown({k: data.get(k, "") for k in KNOWN_FIELDS}, data.get("body", ""))


def house_template_body(sections: dict[str, str] | None = None, preamble: str = "") -> str:
    """The house sections in order, each with the given text (empty by default)."""
    sections = sections or {}
    parts = [preamble.strip() + "\n"] if preamble.strip() else []
    for heading in HOUSE_SECTIONS:
        text = (sections.get(heading) or "").strip()
        parts.append(f"## {heading}\n{text}\n" if text else f"## {heading}\n")
    return "\n".join(parts)


def new_article_fields(
    article_id: str,
    title: str,
    *,
    product: str = "",
    category: str = "",
    owner: str = "",
    tags: list[str] | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Front matter of a new draft: internal, to be reviewed in REVIEW_PERIOD_DAYS days."""
    today = today or today_utc()
    return {
        "id": check_article_id(article_id),
        "title": " ".join(title.split()),
        "status": "draft",
        "audience": "internal",
        "product": product.strip(),
        "category": category.strip(),
        "tags": list(tags or []),
        "owner": owner.strip(),
        "review_by": today + dt.timedelta(days=REVIEW_PERIOD_DAYS),
        "updated": today,
    }


def write_new_article(folder: Path, article_id: str, text: str) -> Path:
    """Write ``<folder>/<id>.md`` after checking the text parses and the id is free.

    Raises ConflictError when the file exists or another file in the folder has the id,
    and RecordError when the text is not a valid article.
    """
    folder = Path(folder)
    parsed = parse_article_text(text, f"{article_id}.md")
    if parsed.article.id != article_id:
        raise ValidationError(f"the text's id {parsed.article.id!r} is not {article_id!r}")
    path = folder / f"{article_id}.md"
    if path.exists():
        raise ConflictError(f"{path} already exists; choose another id with --id")
    if folder.is_dir():
        other = find_article_file(folder, article_id, missing_ok=True)
        if other is not None:
            raise ConflictError(
                f"id {article_id!r} is already used by {other}; choose another with --id"
            )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except FileExistsError:
        raise ConflictError(f"{path} already exists; choose another id with --id") from None
    return path


def scaffold_article(
    folder: Path,
    title: str,
    *,
    article_id: str | None = None,
    product: str = "",
    category: str = "",
    owner: str = "",
    today: dt.date | None = None,
) -> Path:
    """Create a draft article file with the house sections; returns its path.

    Raises ValidationError for an empty title or bad id, ConflictError if the id is taken.
    """
    if not title.strip():
        raise ValidationError("the title must not be empty")
    article_id = article_id or slugify(title)
    if not article_id:
        raise ValidationError("cannot make an id from this title; pass --id")
    fields = new_article_fields(
        article_id, title, product=product, category=category, owner=owner, today=today
    )
    return write_new_article(folder, article_id, article_markdown(fields, house_template_body()))


# --- finding and editing files ---------------------------------------------------------


def front_matter_id(path: Path) -> str | None:
    """The id in a file's front matter, read cheaply; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(8192)
    except (OSError, UnicodeDecodeError):
        return None
    lines = head.lstrip("\ufeff").split("\n")
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            return None
        match = re.match(r"^id\s*:\s*(.*?)\s*$", line)
        if match:
            return match.group(1).strip("'\"")
    return None


def find_article_file(folder: Path, article_id: str, *, missing_ok: bool = False) -> Path | None:
    """The file in ``folder`` whose front matter has this id (``<id>.md`` is tried first).

    Raises NotFoundError unless ``missing_ok``.
    """
    folder = Path(folder)
    if folder.is_dir():
        direct = folder / f"{article_id}.md"
        if direct.is_file() and front_matter_id(direct) == article_id:
            return direct
        for path in sorted(folder.rglob("*.md")):
            if path != direct and front_matter_id(path) == article_id:
                return path
    if missing_ok:
        return None
    raise NotFoundError(f"no article with id {article_id!r} in {folder}")


def _key_pattern(key: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(key)}\s*:(.*)$")


def set_front_matter_fields(text: str, changes: dict[str, Any], source: str = "<text>") -> str:
    """Return ``text`` with the given front matter fields set, every other byte kept.

    A field's line is replaced in place (with any indented continuation lines of a block
    value); a field the file lacks is added at the end of the front matter.
    Raises RecordError when the text has no front matter.
    """
    split_front_matter(text, source)  # raises on a file without front matter
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = text[len(bom) :].split("\n")
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    for key, value in changes.items():
        rendered = f"{key}: {yaml_scalar(value)}"
        pattern = _key_pattern(key)
        index = next((i for i in range(1, end) if pattern.match(lines[i])), None)
        if index is None:
            lines.insert(end, rendered)
            end += 1
            continue
        stop = index + 1
        while stop < end and (
            lines[stop][:1] in (" ", "\t")
            or (not pattern.match(lines[index]).group(1).strip() and lines[stop].startswith("- "))
        ):
            stop += 1
        lines[index:stop] = [rendered]
        end -= stop - index - 1
    return bom + "\n".join(lines)


def write_file_atomically(path: Path, text: str) -> None:
    """Replace a file's content by writing a sibling and renaming it over the file."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- state changes ---------------------------------------------------------------------


@dataclass
class StateChange:
    article_id: str
    path: str
    old_status: str
    new_status: str
    old_audience: str
    new_audience: str
    changed: bool
    in_store: bool = False
    store_version: int | None = None
    left_search: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_state_rules(status: str, audience: str) -> None:
    """Raises ValidationError for a state or audience the KCS rules do not allow."""
    if status not in ARTICLE_STATES:
        raise ValidationError(
            f"unknown state {status!r}; choose one of {', '.join(ARTICLE_STATES)}"
        )
    if audience not in AUDIENCES:
        raise ValidationError(
            f"unknown audience {audience!r}; choose one of {', '.join(AUDIENCES)}"
        )
    if audience == "public" and status != "validated":
        raise ValidationError(
            f"only validated articles may have audience public; to make it {status}, "
            "also make it internal (--audience internal)"
        )


def edit_article_state(
    path: Path,
    status: str,
    *,
    audience: str | None = None,
    today: dt.date | None = None,
) -> tuple[ParsedArticle, ParsedArticle, str]:
    """Work out a state change of one file without writing it.

    Returns (before, after, new text); ``updated`` is set to today when anything changes.
    Raises ValidationError when the rules forbid the change, RecordError for a broken file.
    """
    path = Path(path)
    before = read_article_file(path)
    new_audience = audience or before.article.audience
    if audience is None and before.article.audience == "public" and status != "validated":
        raise ValidationError(
            f"{before.article.id} is public, and only validated articles may be public: "
            f"pass --audience internal to make it {status} and internal"
        )
    check_state_rules(status, new_audience)
    raw = path.read_bytes().decode("utf-8")
    crlf = "\r\n" in raw
    text = raw.replace("\r\n", "\n")
    if status == before.article.status and new_audience == before.article.audience:
        return before, before, raw
    changes: dict[str, Any] = {"status": status}
    if new_audience != before.article.audience:
        changes["audience"] = new_audience
    changes["updated"] = today or today_utc()
    new_text = set_front_matter_fields(text, changes, str(path))
    after = parse_article_text(new_text, str(path))
    if crlf:
        new_text = new_text.replace("\n", "\r\n")
    return before, after, new_text


# --- history ---------------------------------------------------------------------------


def version_changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Names of the fields that differ between two stored versions."""
    if previous is None:
        return ["created"]
    names = list(KNOWN_FIELDS) + ["body", "path"]
    return [name for name in names if previous.get(name) != current.get(name)]


def article_history(store: Store, article_id: str) -> list[dict[str, Any]]:
    """Every stored version of an article, oldest first, each with the fields that changed
    and a unified diff against the version before. Raises NotFoundError."""
    versions = store.article_versions(article_id)
    if not versions:
        raise NotFoundError(f"no article with id {article_id!r} in the store")
    history = []
    previous: dict[str, Any] | None = None
    for row in versions:
        data = row["data"]
        old_text = article_as_text(previous) if previous is not None else ""
        diff = difflib.unified_diff(
            old_text.splitlines(keepends=True),
            article_as_text(data).splitlines(keepends=True),
            fromfile=f"{article_id} v{row['version'] - 1}" if previous is not None else "/dev/null",
            tofile=f"{article_id} v{row['version']}",
        )
        history.append(
            {
                "version": row["version"],
                "changed_at": row["changed_at"],
                "changed_by": row["changed_by"] or "",
                "status": data.get("status", ""),
                "changes": version_changes(previous, data),
                "diff": "".join(diff),
            }
        )
        previous = data
    return history
