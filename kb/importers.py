"""Reading incident files: generic JSONL / JSON / CSV and ticket-system CSV exports.

Every record is checked before anything is written; the first broken record stops the
import with a message naming the file and the line (JSONL, CSV) or the item (JSON).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.errors import RecordError
from kb.models import IMPORT_FORMATS, INCIDENT_FIELDS, INCIDENT_STATES, Incident

FORMATS = IMPORT_FORMATS
FIELDS = INCIDENT_FIELDS
MAX_FIELD_CHARS = 200_000
MAX_ID_CHARS = 200
# Incident ids as ticket systems write them (INC0010001, HIVE-123, 48213, ops:2024#7): they
# appear in URLs and file names, so no slashes, spaces, quotes or angle brackets.
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#@+-]*")
MAX_FILE_BYTES = 2_000_000_000

# For each export format: our field -> the column names that system uses (first found wins).
COLUMN_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "generic": {
        **{f: (f,) for f in FIELDS},
        "assignment_group": ("assignment_group", "assignment group", "group"),
    },
    "servicenow": {
        "id": ("number",),
        "title": ("short_description",),
        "description": ("description",),
        "resolution": ("close_notes", "resolution_notes"),
        "resolution_code": ("close_code", "resolution_code"),
        "category": ("category", "subcategory"),
        "product": ("cmdb_ci", "business_service", "u_product"),
        "status": ("state", "incident_state"),
        "opened_at": ("opened_at", "sys_created_on"),
        "resolved_at": ("resolved_at", "closed_at"),
        # Not `knowledge`: in ServiceNow that is a true/false "create an article" flag.
        "article_id": ("u_knowledge_article", "kb_article"),
        "assignment_group": ("assignment_group",),
        "priority": ("priority",),
        # `escalation` is 0 (normal) to 3 (overdue); a reassignment moved it off the first desk.
        "escalated": ("escalation", "reassignment_count"),
        "customer_tier": ("u_customer_tier", "company.u_tier", "u_tier"),
    },
    "jira": {
        "id": ("issue key", "key"),
        "title": ("summary",),
        "description": ("description",),
        # Not `resolution`: in Jira that is the resolution's name (Done, Fixed): the code.
        # Without a notes field the fix is read from the resolution comment (see below).
        "resolution": ("resolution notes", "custom field (resolution notes)"),
        "resolution_code": ("resolution",),
        "category": ("issue type", "issuetype", "labels"),
        "product": ("component/s", "components", "project name"),
        "status": ("status",),
        "opened_at": ("created",),
        "resolved_at": ("resolved", "resolutiondate"),
        "article_id": ("custom field (kb article)", "kb article"),
        "assignment_group": ("team", "custom field (team)", "component/s", "components"),
        "priority": ("priority",),
        "escalated": ("custom field (escalated)", "escalated"),
        "customer_tier": ("custom field (customer tier)", "customer tier"),
    },
    "zendesk": {
        "id": ("id", "ticket id"),
        "title": ("subject",),
        "description": ("description",),
        "resolution": ("resolution", "solution", "resolution notes", "latest public comment"),
        "resolution_code": ("resolution code", "ticket form"),
        "category": ("type", "ticket type", "category"),
        # Never `group`: that is the team a ticket went to (assignment_group).
        "product": ("product", "brand"),
        "status": ("status",),
        "opened_at": ("created at", "created", "created_at"),
        "resolved_at": ("solved at", "solved", "solved_at"),
        "article_id": ("kb article", "article id"),
        "assignment_group": ("group", "assignee group"),
        "priority": ("priority",),
        "escalated": ("escalated", "custom field (escalated)"),
        "customer_tier": ("organization tier", "customer tier", "organization"),
    },
}

_STATUS_WORDS = {
    "resolved": "resolved",
    "solved": "resolved",
    "done": "resolved",
    "fixed": "resolved",
    "closed": "closed",
    "cancelled": "closed",
    "canceled": "closed",
    "complete": "closed",
    "completed": "closed",
    "declined": "closed",
}
_OPEN_WORDS = frozenset(
    {
        "new",
        "in progress",
        "on hold",
        "pending",
        "hold",
        "open",
        "to do",
        "waiting",
        "reopened",
        "in review",
        "assigned",
        "active",
        # Jira Service Management's default workflows
        "waiting for support",
        "waiting for customer",
        "escalated",
        "work in progress",
    }
)
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%b/%y %I:%M %p",
    "%d/%b/%Y %I:%M %p",
    "%d/%b/%y %H:%M",
    "%d/%b/%y",
    "%d/%b/%Y",
)
# Numeric dates with the day and month in either order: 03/04/2026, 31.12.26 14:05, 4-3-2026 9:05 PM.
_NUMERIC_DATE = re.compile(
    r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?: ?([AaPp][Mm]))?)?"
)
DATE_ORDERS = ("auto", "day-first", "month-first")
# How a numeric date is read when nothing says otherwise: with slashes month first (US
# exports), with dots or dashes day first (European ones).
_DEFAULT_ORDER = {"/": "month-first", ".": "day-first", "-": "day-first"}


def normalise_status(raw: str, has_resolution: bool) -> str | None:
    value = raw.strip().lower()
    if not value:
        return "resolved" if has_resolution else "open"
    if value in INCIDENT_STATES:
        return value
    if value in _STATUS_WORDS:
        return _STATUS_WORDS[value]
    if value in _OPEN_WORDS:
        return "open"
    return None


def accepted_status_words() -> list[str]:
    """Every status value an import accepts (compared after trimming and lower-casing)."""
    return sorted(set(INCIDENT_STATES) | set(_STATUS_WORDS) | _OPEN_WORDS)


_LEAP_SECOND = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:)60(?=\D|$)")


def numeric_date_parts(value: str) -> tuple[int, int, str] | None:
    """(first number, second number, separator) of a numeric day/month date, else None."""
    match = _NUMERIC_DATE.fullmatch(value.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(3)), match.group(2)


def _numeric_datetime(match: re.Match, order: str) -> dt.datetime | None:
    first, sep, second, year = (
        int(match.group(1)),
        match.group(2),
        int(match.group(3)),
        match.group(4),
    )
    if order == "auto":
        order = _DEFAULT_ORDER[sep]
    day, month = (first, second) if order == "day-first" else (second, first)
    full_year = int(year) if len(year) == 4 else int(dt.datetime.strptime(year, "%y").year)
    hour, minute, second_ = (
        int(match.group(5) or 0),
        int(match.group(6) or 0),
        int(match.group(7) or 0),
    )
    meridiem = (match.group(8) or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    try:
        return dt.datetime(full_year, month, day, hour, minute, second_)
    except ValueError:
        return None


def normalise_datetime(raw: str, order: str = "auto") -> str | None:
    """ISO 8601 UTC text for a timestamp in a common export format, '' for empty, None if bad.

    ``order`` says how a numeric date such as 03/04/2026 is read: "day-first",
    "month-first", "auto" (slashes month first, dots and dashes day first), or a
    strptime pattern (``%d.%m.%Y %H:%M``) that every date of the file follows."""
    value = raw.strip()
    if not value:
        return ""
    if "%" in order:
        try:
            parsed = dt.datetime.strptime(value, order)
        except ValueError:
            return None
    else:
        # RFC 3339 allows a leap second (:60), which datetime cannot hold: read it as :59.
        value = _LEAP_SECOND.sub(r"\g<1>59", value)
        try:
            # RFC 3339 allows lower-case 't' and 'z'; fromisoformat does not.
            parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
            match = _NUMERIC_DATE.fullmatch(value)
            if match is not None:
                parsed = _numeric_datetime(match, order)
            else:
                for fmt in _DATE_FORMATS:
                    try:
                        parsed = dt.datetime.strptime(value, fmt)
                        break
                    except ValueError:
                        continue
            if parsed is None:
                return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 lies before year 1 in UTC
            parsed = dt.datetime.min if parsed.year == 1 else dt.datetime.max
    return (
        parsed.replace(microsecond=0).isoformat() + "Z"
    )  # strftime drops the zeros of years < 1000


def choose_date_order(values: list[str], requested: str = "auto") -> tuple[str, list[str]]:
    """The day/month order to read a file's numeric dates with, and warnings. With "auto",
    a date whose first number is above 12 (31/01/2026) makes the file day-first, one whose
    second is (01/31/2026) month-first; when every date could be either, the separator's
    usual order is kept and the import says so. Raises RecordError when the file has both."""
    if requested != "auto":
        return requested, []
    day_first = month_first = None
    ambiguous: list[str] = []
    separators: set[str] = set()
    for value in values:
        parts = numeric_date_parts(value)
        if parts is None:
            continue
        first, second, sep = parts
        separators.add(sep)
        if first > 12 >= second:
            day_first = day_first or value
        elif second > 12 >= first:
            month_first = month_first or value
        elif first != second:
            ambiguous.append(value)
    if day_first and month_first:
        raise RecordError(
            f"the dates are written both day first ({day_first!r}) and month first ({month_first!r}): "
            "say which with --date-format day-first, month-first or a pattern such as '%d/%m/%Y %H:%M'"
        )
    if day_first:
        return "day-first", []
    if month_first:
        return "month-first", []
    if ambiguous:
        usual = sorted({_DEFAULT_ORDER[s] for s in separators})
        reading = (
            usual[0]
            if len(usual) == 1
            else "month-first for slashes, day-first for dots and dashes"
        )
        return "auto", [
            f"{len(ambiguous)} date(s) such as {ambiguous[0]!r} could be day first or month first; read them "
            f"{reading}. If that is wrong, import again with --date-format day-first (or month-first)."
        ]
    return "auto", []


def _text(value: Any, field: str, where: dict) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise RecordError(f"field '{field}' must be text", **where)
    text = str(value)
    if "\x00" in text:
        raise RecordError(f"field '{field}' contains a NUL character", **where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a JSON escape such as \ud800 on its own
        raise RecordError(
            f"field '{field}' contains an unpaired surrogate escape", **where
        ) from None
    if len(text) > MAX_FIELD_CHARS:
        raise RecordError(f"field '{field}' is longer than {MAX_FIELD_CHARS} characters", **where)
    return text.strip()


def normalise_escalated(value: Any) -> str | None:
    """ "yes", "no" or "" (unknown) from a boolean, a yes/no word, or a count of escalations
    or reassignments (more than 0: it left the first line); None for a list or an object."""
    if value is None or value == "":
        return ""
    if isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).strip().lower()
    if text in ("yes", "y", "true", "t", "escalated"):
        return "yes"
    if text in ("no", "n", "false", "f", "not escalated", "normal"):
        return "no"
    try:
        return "yes" if float(text) > 0 else "no"
    except ValueError:
        return ""  # a word this service does not know: unknown, never guessed


def incident_from_record(
    record: Any, *, source: str = "", line: int | None = None, date_order: str = "auto"
) -> Incident:
    """Validate one generic record (a dict with the contract's field names); ``date_order``
    as for :func:`normalise_datetime`."""
    where = {"source": source, "line": line}
    if not isinstance(record, dict):
        raise RecordError("each record must be a JSON object", **where)
    values = {
        field: _text(record.get(field), field, where) for field in FIELDS if field != "escalated"
    }
    if not values["id"]:
        raise RecordError("missing required field 'id'", **where)
    if len(values["id"]) > MAX_ID_CHARS or not INCIDENT_ID.fullmatch(values["id"]):
        raise RecordError(
            "field 'id' must be 1-200 letters, digits and . _ - : # @ + (starting with a letter or "
            f"digit), got {values['id'][:60]!r}",
            **where,
        )
    if not (values["title"] or values["description"]):
        raise RecordError("a record needs a title or a description", **where)
    status = normalise_status(values["status"], bool(values["resolution"]))
    if status is None:
        raise RecordError(
            f"unknown status {values['status']!r}; expected one of {', '.join(INCIDENT_STATES)}",
            **where,
        )
    values["status"] = status
    raw_escalated = record.get("escalated")
    if isinstance(raw_escalated, str):
        raw_escalated = _text(raw_escalated, "escalated", where)
    escalated = normalise_escalated(raw_escalated)
    if escalated is None:
        raise RecordError("field 'escalated' must be yes/no, true/false or a count", **where)
    values["escalated"] = escalated
    for field in ("opened_at", "resolved_at"):
        normalised = normalise_datetime(values[field], date_order)
        if normalised is None:
            raise RecordError(f"field '{field}' is not a date and time: {values[field]!r}", **where)
        values[field] = normalised
    return Incident(**values)


@dataclass
class ColumnMapping:
    """Which column of a file feeds which incident field."""

    columns: dict[str, str]  # field -> column name as it appears in the file

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        return {field: row.get(column) for field, column in self.columns.items()}


def parse_map_option(pairs: list[str]) -> dict[str, str]:
    """``COLUMN=field`` pairs from --map into {field: column}. Raises RecordError."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")
        if not sep or not column.strip() or field.strip() not in FIELDS:
            raise RecordError(
                f"--map {pair!r}: expected COLUMN=FIELD with FIELD one of {', '.join(FIELDS)}"
            )
        overrides[field.strip()] = column.strip()
    return overrides


_TYPE_SUFFIX = re.compile(r"(?<!\s)\s*+\[[a-z ]++\]$")  # linear: whitespace runs are read once


def resolve_columns(
    header: list[str], fmt: str, overrides: dict[str, str] | None = None, source: str = ""
) -> ColumnMapping:
    """Match a file's header to incident fields for a format. Raises RecordError naming
    the missing columns and the --map option."""
    if fmt not in COLUMN_MAPS:
        raise RecordError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    by_lower = {name.strip().lower(): name for name in header if name}
    for name in header:
        # Zendesk names custom fields with their type: "Resolution notes [txt]".
        bare = _TYPE_SUFFIX.sub("", (name or "").strip().lower())
        if bare:
            by_lower.setdefault(bare, name)
    columns: dict[str, str] = {}
    for field, candidates in COLUMN_MAPS[fmt].items():
        for candidate in candidates:
            if candidate in by_lower:
                columns[field] = by_lower[candidate]
                break
    for field, column in (overrides or {}).items():
        if column.strip().lower() not in by_lower:
            raise RecordError(
                f"--map names column {column!r}, which the file does not have", source=source
            )
        columns[field] = by_lower[column.strip().lower()]
    missing = []
    if "id" not in columns:
        missing.append(" or ".join(repr(c) for c in COLUMN_MAPS[fmt]["id"]) + " (id)")
    if "title" not in columns and "description" not in columns:
        names = COLUMN_MAPS[fmt]["title"] + COLUMN_MAPS[fmt]["description"]
        missing.append(" or ".join(repr(c) for c in names) + " (title or description)")
    if missing:
        raise RecordError(
            f"missing columns for --format {fmt}: {'; '.join(missing)}. "
            f"Use --map COLUMN=FIELD to name the file's own columns "
            f"(the file has: {', '.join(header[:20])})",
            source=source,
            line=1,
        )
    return ColumnMapping(columns)


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RecordError("file is too large to import", source=str(path))
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecordError("not valid UTF-8 text", source=str(path), line=line) from None


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "too deeply nested"
    return "a number has too many digits"


class CsvRow(dict):
    """One CSV row by column name; ``repeated`` keeps every non-empty cell of a column the
    header repeats (lower-case name -> cells in order), such as Jira's "Comment" columns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repeated: dict[str, list[str]] = {}


def csv_row(header: list[str], cells: list[str]) -> dict[str, str | None]:
    """One CSV row by column name. A name the header repeats (Jira writes one column per
    label, component or comment) takes its first non-empty cell."""
    row = CsvRow()
    for index, name in enumerate(header):
        value = cells[index] if index < len(cells) else None
        if name not in row or (not (row[name] or "").strip() and (value or "").strip()):
            row[name] = value
        if (value or "").strip():
            row.repeated.setdefault((name or "").strip().lower(), []).append(value)
    return row


CSV_DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV file, from its header line: the candidate (comma, semicolon as
    European spreadsheets write, tab, bar) it holds most often; a comma when it holds none."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _csv_records(text: str, source: str, delimiter: str) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(MAX_FIELD_CHARS * 2)
    # strict: a quote left open (or closed in the middle of a cell) is an error, never a
    # cell that swallows the rows after it.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader, [])
        while True:
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                return
            if not cells:
                continue
            if len(cells) > len(header):
                raise RecordError(
                    "row has more cells than the header", source=source, line=reader.line_num
                )
            yield start, csv_row(header, cells)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            problem = (
                f"a quoted cell opened in the record starting on line {start} is never closed "
                "(an unterminated quote); nothing was imported"
            )
        else:
            problem = (
                f"a quote in the record starting on line {start} is misplaced ({exc}, at line "
                f"{reader.line_num}); nothing was imported"
            )
        raise RecordError(f"invalid CSV: {problem}", source=source, line=start) from None


def iter_records(
    text: str, kind: str, source: str, *, delimiter: str = ","
) -> Iterator[tuple[int, Any]]:
    """(line or item number, raw record) from JSONL, JSON or CSV text."""
    if kind == "jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except (ValueError, RecursionError) as exc:  # ValueError: also over-long numbers
                raise RecordError(
                    f"invalid JSON: {_json_problem(exc)}", source=source, line=number
                ) from None
    elif kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data" and text.lstrip().startswith("{"):
                # One object a line in a .json file, as Zendesk's JSON export writes it.
                yield from iter_records(text, "jsonl", source)
                return
            raise RecordError(
                f"invalid JSON: {_json_problem(exc)}", source=source, line=exc.lineno
            ) from None
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"invalid JSON: {_json_problem(exc)}", source=source) from None
        items = data if isinstance(data, list) else [data]
        for number, item in enumerate(items, start=1):
            yield number, item
    elif kind == "csv":
        yield from _csv_records(text, source, delimiter)
    else:
        raise RecordError(f"unknown file type {kind!r}", source=source)


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
    if suffix not in kinds:
        raise RecordError("expected a .jsonl, .json or .csv file", source=str(path))
    return kinds[suffix]


# --- resolutions kept in comments ------------------------------------------------------------


def _plain_text(body: Any) -> str:
    """A comment body as text: a string, or Jira's Atlassian Document Format (its text nodes)."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        if body.get("type") == "text":
            return str(body.get("text") or "")
        parts = [_plain_text(child) for child in body.get("content") or []]
        joined = ("\n" if body.get("type") in ("doc", "bulletList", "orderedList") else "").join(
            parts
        )
        return joined + ("\n" if body.get("type") in ("paragraph", "heading", "listItem") else "")
    return ""


def zendesk_agent_comment(record: dict) -> str:
    """The last public comment not written by the requester: the agent's answer that solved
    the ticket. Without a requester id the first comment (the request itself) is skipped."""
    comments = record.get("comments")
    if not isinstance(comments, list):
        return ""
    requester = record.get("requester_id")
    candidates = comments if requester is not None else comments[1:]
    for comment in reversed(candidates):
        if not isinstance(comment, dict) or comment.get("public") is False:
            continue
        if requester is not None and comment.get("author_id") == requester:
            continue
        text = _plain_text(comment.get("plain_body") or comment.get("body") or "").strip()
        if text:
            return text
    return ""


_JIRA_CSV_COMMENT = re.compile(r"([^;\n]{6,40});([^;\n]*);(.*)", re.S)


def jira_comments(row: Any) -> list[tuple[str, str]]:
    """(when, text) of each comment of a Jira issue: the "Comment" columns of a CSV export
    ("03/Nov/26 2:38 PM;author;text"), or fields.comment.comments of the REST API's JSON."""
    if isinstance(row, CsvRow):
        found = []
        for cell in row.repeated.get("comment", []):
            match = _JIRA_CSV_COMMENT.fullmatch(cell.strip())
            found.append(
                (match.group(1).strip(), match.group(3).strip()) if match else ("", cell.strip())
            )
        return found
    fields = row.get("fields") if isinstance(row, dict) else None
    comment = fields.get("comment") if isinstance(fields, dict) else None
    items = comment.get("comments") if isinstance(comment, dict) else None
    return [
        (str(c.get("created") or ""), _plain_text(c.get("body")).strip())
        for c in items or []
        if isinstance(c, dict)
    ]


RESOLUTION_COMMENT_SLACK = dt.timedelta(minutes=10)


def jira_resolution_comment(comments: list[tuple[str, str]], resolved_at: str, order: str) -> str:
    """The comment written when the issue was resolved: the last one made by the time of
    resolution (a transition screen's comment carries about that time); without a resolution
    time, the last comment."""
    texts = [
        (normalise_datetime(when, order) if when else "", text) for when, text in comments if text
    ]
    if not texts:
        return ""
    resolved = normalise_datetime(resolved_at, order) if resolved_at else ""
    if not resolved:
        return texts[-1][1]
    limit = dt.datetime.fromisoformat(resolved[:-1]) + RESOLUTION_COMMENT_SLACK
    before = [
        (when, text)
        for when, text in texts
        if when and dt.datetime.fromisoformat(when[:-1]) <= limit
    ]
    if not before:
        return ""
    return max(before, key=lambda item: item[0])[1]


def flatten_jira_issue(record: dict) -> dict:
    """A Jira REST API issue ({"key", "fields": {...}}) as flat columns: names of objects
    (status, priority, resolution, issue type), names of lists joined (components, labels)."""
    flat: dict[str, Any] = {"key": record.get("key")}
    for name, value in (record.get("fields") or {}).items():
        if isinstance(value, dict):
            value = (
                value.get("name")
                or value.get("value")
                or (_plain_text(value) if "content" in value else None)
            )
        elif isinstance(value, list):
            names = [v.get("name") if isinstance(v, dict) else v for v in value]
            value = ", ".join(str(v) for v in names if isinstance(v, (str, int, float)))
        flat[name] = value
    return flat


# --- reading a file --------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What a file holds, checked, and what the person importing it should know."""

    incidents: list[Incident]
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


RESOLVED_STATES = ("resolved", "closed")
COMMENT_SOURCES = {"zendesk": "last public agent comment", "jira": "resolution comment"}


def read_incidents(
    text: str,
    kind: str,
    *,
    fmt: str = "generic",
    overrides: dict[str, str] | None = None,
    source: str = "<input>",
    date_format: str = "auto",
    delimiter: str | None = None,
    known_names: dict[str, list[str]] | None = None,
) -> ImportReport:
    """Parse and validate every record (raises RecordError at the first broken one), with
    warnings about what would import without effect.

    A Zendesk or Jira record without a resolution column takes the fix from its comments (the
    last public agent comment; the resolution comment). Numeric dates are read in one
    day/month order for the whole file (``date_format``: auto, day-first, month-first or a
    strptime pattern). Product and category spellings that differ only in case, spacing or a
    plural are stored as one (``known_names``: the store's names, kept as they are)."""
    if date_format not in DATE_ORDERS and "%" not in date_format:
        raise RecordError(
            f"--date-format must be one of {', '.join(DATE_ORDERS)} or a pattern such as "
            f"'%d.%m.%Y %H:%M', got {date_format!r}"
        )
    mapping: ColumnMapping | None = None
    notes: list[str] = []
    if kind == "csv":
        delimiter = delimiter or sniff_delimiter(text)
        if delimiter != ",":
            notes.append(f"Read as {'tab' if delimiter == chr(9) else repr(delimiter)}-separated.")
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
        except csv.Error as exc:
            raise RecordError(f"invalid CSV header: {exc}", source=source, line=1) from None
        mapping = resolve_columns(header, fmt, overrides, source)
    rows: list[tuple[int, dict, list[tuple[str, str]], dict]] = []
    dates: list[str] = []
    for number, raw in iter_records(text, kind, source, delimiter=delimiter or ","):
        record, comments = raw, []
        if isinstance(raw, dict):
            if fmt == "jira" and isinstance(raw.get("fields"), dict):
                comments = jira_comments(raw)
                raw = flatten_jira_issue(raw)
            elif fmt == "jira":
                comments = jira_comments(raw)
            if mapping is not None:
                record = mapping.apply(raw)
            elif fmt != "generic" or overrides:
                keys = [str(k) for k in raw]
                record = resolve_columns(keys, fmt, overrides, source).apply(
                    {str(k): v for k, v in raw.items()}
                )
            for name in ("opened_at", "resolved_at"):
                if isinstance(record.get(name), str):
                    dates.append(record[name])
            dates.extend(when for when, _ in comments if when)
        rows.append((number, record, comments, raw))
    order, warnings = choose_date_order(dates, date_format)
    incidents: list[Incident] = []
    seen: dict[str, int] = {}
    from_comments = 0
    for number, record, comments, raw in rows:
        if (
            isinstance(record, dict)
            and fmt in COMMENT_SOURCES
            and not _filled(record.get("resolution"))
        ):
            status = normalise_status(str(record.get("status") or ""), False)
            if status in RESOLVED_STATES:
                if fmt == "zendesk":
                    found = zendesk_agent_comment(raw)
                else:
                    found = jira_resolution_comment(
                        comments, str(record.get("resolved_at") or ""), order
                    )
                if found:
                    record = dict(record, resolution=found)
                    from_comments += 1
        incident = incident_from_record(record, source=source, line=number, date_order=order)
        if incident.id in seen:
            raise RecordError(
                f"duplicate id {incident.id!r} (first at {seen[incident.id]})",
                source=source,
                line=number,
            )
        seen[incident.id] = number
        incidents.append(incident)
    if from_comments:
        notes.append(f"{from_comments} resolution(s) read from the {COMMENT_SOURCES[fmt]}.")
    normalise_names(incidents, known_names or {}, notes)
    unusable = _never_suggested(incidents, fmt, mapping, overrides)
    if unusable:
        warnings.append(unusable)
    return ImportReport(incidents, warnings, notes)


def _filled(value: Any) -> bool:
    return (
        isinstance(value, str)
        and bool(value.strip())
        or (value is not None and not isinstance(value, str))
    )


def normalise_names(
    incidents: list[Incident], known: dict[str, list[str]], notes: list[str] | None = None
) -> None:
    """Store each product and category name of ``incidents`` in one spelling (kb.names):
    the one ``known`` (the store's) uses, else the most frequent among them."""
    from kb.names import display_names, name_key

    notes = [] if notes is None else notes
    for name in ("product", "category"):
        spellings = display_names(
            [getattr(i, name) for i in incidents], preferred=known.get(name, ())
        )
        changed = 0
        for incident in incidents:
            value = getattr(incident, name)
            if value and spellings.get(name_key(value), value) != value:
                setattr(incident, name, spellings[name_key(value)])
                changed += 1
        if changed:
            notes.append(
                f"{changed} {name} name(s) stored in the spelling already in use "
                f"(case, spacing and plurals differ)."
            )


def _never_suggested(
    incidents: list[Incident],
    fmt: str,
    mapping: ColumnMapping | None,
    overrides: dict[str, str] | None,
) -> str:
    """A warning for resolved or closed incidents without a resolution: they are stored
    but can never be suggested. Empty when there are none."""
    missing = [i for i in incidents if i.status in RESOLVED_STATES and not i.resolution.strip()]
    if not missing:
        return ""
    resolved = sum(1 for i in incidents if i.status in RESOLVED_STATES)
    columns = COLUMN_MAPS.get(fmt, COLUMN_MAPS["generic"])["resolution"]
    read = mapping.columns.get("resolution") if mapping is not None else None
    if (overrides or {}).get("resolution"):
        read = overrides["resolution"]
    if read:
        why = f"their {read!r} cell is empty"
    else:
        why = (
            "the file has no column read as the resolution ("
            + " or ".join(repr(c) for c in columns)
            + ")"
        )
    if fmt in COMMENT_SOURCES:
        why += f" and no {COMMENT_SOURCES[fmt]} was found"
    example = ", ".join(i.id for i in missing[:3])
    return (
        f"{len(missing)} of {resolved} resolved or closed incidents have no resolution text and can never "
        f"be suggested ({example}{', ...' if len(missing) > 3 else ''}): {why}. If the fix is in another "
        f"column, import again with --map 'COLUMN=resolution'."
    )


def read_incident_text(
    text: str,
    kind: str,
    *,
    fmt: str = "generic",
    overrides: dict[str, str] | None = None,
    source: str = "<input>",
) -> list[Incident]:
    """Parse and validate every record; raises RecordError at the first broken one."""
    return read_incidents(text, kind, fmt=fmt, overrides=overrides, source=source).incidents


def read_incident_report(
    path: str | Path,
    *,
    fmt: str = "generic",
    overrides: dict[str, str] | None = None,
    date_format: str = "auto",
    delimiter: str | None = None,
    known_names: dict[str, list[str]] | None = None,
) -> ImportReport:
    """Read a .jsonl, .json or .csv file of incidents, with warnings. Raises RecordError."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RecordError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise RecordError("no such file", source=str(path))
    return read_incidents(
        _read_text(path),
        file_kind(path),
        fmt=fmt,
        overrides=overrides,
        source=str(path),
        date_format=date_format,
        delimiter=delimiter,
        known_names=known_names,
    )


def read_incident_file(
    path: str | Path, *, fmt: str = "generic", overrides: dict[str, str] | None = None
) -> list[Incident]:
    """Read a .jsonl, .json or .csv file of incidents. Raises RecordError."""
    return read_incident_report(path, fmt=fmt, overrides=overrides).incidents


def columns_table(fmt: str) -> list[tuple[str, str]]:
    """(field, the columns read for it, first found first) of a format, for help and docs."""
    extra = {
        ("zendesk", "resolution"): "else the last public agent comment",
        ("jira", "resolution"): "else the resolution comment",
    }
    rows = []
    for name, columns in COLUMN_MAPS[fmt].items():
        text = " | ".join(columns)
        if (fmt, name) in extra:
            text += f" ({extra[(fmt, name)]})"
        rows.append((name, text))
    return rows


def sample_incidents_path() -> Path:
    """The built-in sample knowledge base's incidents."""
    return Path(__file__).parent / "sample" / "incidents.jsonl"
