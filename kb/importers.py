"""Reading incident files: generic JSONL / JSON / CSV and ticket-system CSV exports.

Every record is checked before anything is written; the first broken record stops the
import with a message naming the file and the line (JSONL, CSV) or the item (JSON).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.errors import RecordError
from kb.models import IMPORT_FORMATS, INCIDENT_STATES, Incident

FORMATS = IMPORT_FORMATS
FIELDS = (
    "id", "title", "description", "resolution", "resolution_code", "category", "product",
    "status", "opened_at", "resolved_at", "article_id", "assignment_group", "priority", "escalated",
    "customer_tier",
)
MAX_FIELD_CHARS = 200_000
MAX_ID_CHARS = 200
# Incident ids as ticket systems write them (INC0010001, HIVE-123, 48213, ops:2024#7): they
# appear in URLs and file names, so no slashes, spaces, quotes or angle brackets.
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#@+-]*")
MAX_FILE_BYTES = 2_000_000_000

# For each export format: our field -> the column names that system uses (first found wins).
COLUMN_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "generic": {f: (f,) for f in FIELDS},
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
        "resolution": ("resolution notes", "custom field (resolution notes)", "resolution"),
        "resolution_code": ("resolution",),
        "category": ("issue type", "labels"),
        "product": ("component/s", "components", "project name"),
        "status": ("status",),
        "opened_at": ("created",),
        "resolved_at": ("resolved",),
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
        "product": ("product", "group", "brand"),
        "status": ("status",),
        "opened_at": ("created at", "created"),
        "resolved_at": ("solved at", "solved"),
        "article_id": ("kb article", "article id"),
        "assignment_group": ("group", "assignee group"),
        "priority": ("priority",),
        "escalated": ("escalated", "custom field (escalated)"),
        "customer_tier": ("organization tier", "customer tier", "organization"),
    },
}

_STATUS_WORDS = {
    "resolved": "resolved", "solved": "resolved", "done": "resolved", "fixed": "resolved",
    "closed": "closed", "cancelled": "closed", "canceled": "closed", "complete": "closed",
    "completed": "closed", "declined": "closed",
}
_OPEN_WORDS = frozenset({
    "new", "in progress", "on hold", "pending", "hold", "open", "to do", "waiting", "reopened",
    "in review", "assigned", "active",
    # Jira Service Management's default workflows
    "waiting for support", "waiting for customer", "escalated", "work in progress",
})
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d/%b/%y %I:%M %p", "%d/%b/%Y %I:%M %p",
    "%d/%b/%y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d-%m-%Y %H:%M:%S",
)


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


def normalise_datetime(raw: str) -> str | None:
    """ISO 8601 UTC text for a timestamp in a common export format, '' for empty, None if bad."""
    value = raw.strip()
    if not value:
        return ""
    # RFC 3339 allows a leap second (:60), which datetime cannot hold: read it as :59.
    value = _LEAP_SECOND.sub(r"\g<1>59", value)
    try:
        # RFC 3339 allows lower-case 't' and 'z'; fromisoformat does not.
        parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
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
    return parsed.replace(microsecond=0).isoformat() + "Z"  # strftime drops the zeros of years < 1000


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
        raise RecordError(f"field '{field}' contains an unpaired surrogate escape", **where) from None
    if len(text) > MAX_FIELD_CHARS:
        raise RecordError(f"field '{field}' is longer than {MAX_FIELD_CHARS} characters", **where)
    return text.strip()


def normalise_escalated(value: Any) -> str | None:
    """"yes", "no" or "" (unknown) from a boolean, a yes/no word, or a count of escalations
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


def incident_from_record(record: Any, *, source: str = "", line: int | None = None) -> Incident:
    """Validate one generic record (a dict with the contract's field names)."""
    where = {"source": source, "line": line}
    if not isinstance(record, dict):
        raise RecordError("each record must be a JSON object", **where)
    values = {field: _text(record.get(field), field, where) for field in FIELDS if field != "escalated"}
    if not values["id"]:
        raise RecordError("missing required field 'id'", **where)
    if len(values["id"]) > MAX_ID_CHARS or not INCIDENT_ID.fullmatch(values["id"]):
        raise RecordError(
            "field 'id' must be 1-200 letters, digits and . _ - : # @ + (starting with a letter or "
            f"digit), got {values['id'][:60]!r}", **where)
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
        normalised = normalise_datetime(values[field])
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
            raise RecordError(f"--map names column {column!r}, which the file does not have", source=source)
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
            source=source, line=1,
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


def csv_row(header: list[str], cells: list[str]) -> dict[str, str | None]:
    """One CSV row by column name. A name the header repeats (Jira writes one column per
    label, component or comment) takes its first non-empty cell."""
    row: dict[str, str | None] = {}
    for index, name in enumerate(header):
        value = cells[index] if index < len(cells) else None
        if name not in row or (not (row[name] or "").strip() and (value or "").strip()):
            row[name] = value
    return row


def iter_records(text: str, kind: str, source: str) -> Iterator[tuple[int, Any]]:
    """(line or item number, raw record) from JSONL, JSON or CSV text."""
    if kind == "jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except (ValueError, RecursionError) as exc:  # ValueError: also over-long numbers
                raise RecordError(f"invalid JSON: {_json_problem(exc)}",
                                  source=source, line=number) from None
    elif kind == "json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            raise RecordError(f"invalid JSON: {_json_problem(exc)}",
                              source=source, line=line) from None
        items = data if isinstance(data, list) else [data]
        for number, item in enumerate(items, start=1):
            yield number, item
    elif kind == "csv":
        csv.field_size_limit(MAX_FIELD_CHARS * 2)
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, [])
            for cells in reader:
                if not cells:
                    continue
                if len(cells) > len(header):
                    raise RecordError("row has more cells than the header", source=source,
                                      line=reader.line_num)
                yield reader.line_num, csv_row(header, cells)
        except csv.Error as exc:
            raise RecordError(f"invalid CSV: {exc}", source=source, line=reader.line_num) from None
    else:
        raise RecordError(f"unknown file type {kind!r}", source=source)


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
    if suffix not in kinds:
        raise RecordError("expected a .jsonl, .json or .csv file", source=str(path))
    return kinds[suffix]


def read_incident_text(
    text: str, kind: str, *, fmt: str = "generic", overrides: dict[str, str] | None = None,
    source: str = "<input>",
) -> list[Incident]:
    """Parse and validate every record; raises RecordError at the first broken one."""
    incidents: list[Incident] = []
    seen: dict[str, int] = {}
    mapping: ColumnMapping | None = None
    if kind == "csv":
        try:
            header = next(csv.reader(io.StringIO(text, newline="")), [])
        except csv.Error as exc:
            raise RecordError(f"invalid CSV header: {exc}", source=source, line=1) from None
        mapping = resolve_columns(header, fmt, overrides, source)
    for number, record in iter_records(text, kind, source):
        if isinstance(record, dict):
            if mapping is not None:
                record = mapping.apply(record)
            elif fmt != "generic" or overrides:
                keys = [str(k) for k in record]
                row_mapping = resolve_columns(keys, fmt, overrides, source)
                record = row_mapping.apply({str(k): v for k, v in record.items()})
        incident = incident_from_record(record, source=source, line=number)
        if incident.id in seen:
            raise RecordError(
                f"duplicate id {incident.id!r} (first at {seen[incident.id]})",
                source=source, line=number,
            )
        seen[incident.id] = number
        incidents.append(incident)
    return incidents


def read_incident_file(
    path: str | Path, *, fmt: str = "generic", overrides: dict[str, str] | None = None
) -> list[Incident]:
    """Read a .jsonl, .json or .csv file of incidents. Raises RecordError."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RecordError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise RecordError("no such file", source=str(path))
    return read_incident_text(
        _read_text(path), file_kind(path), fmt=fmt, overrides=overrides, source=str(path)
    )


def sample_incidents_path() -> Path:
    """The built-in sample knowledge base's incidents."""
    return Path(__file__).parent / "sample" / "incidents.jsonl"

