"""Exceptions named after the condition they report.

The web layer maps each to an HTTP status and the CLI to a one-line message; the library
never prints or exits.
"""

from __future__ import annotations

import errno
import os


class KBError(Exception):
    """Base class: a problem the user can act on, with a message fit to show them."""

    code = "error"
    http_status = 400


class ConfigError(KBError):
    code = "bad_config"


class ValidationError(KBError):
    """Input that does not have the required shape (missing field, wrong type, bad value)."""

    code = "invalid_input"


class RecordError(ValidationError):
    """A record in an import file is broken; the message names the file and line or row."""

    code = "invalid_record"

    def __init__(self, message: str, *, source: str = "", line: int | None = None):
        where = source
        if line is not None:
            where = f"{source}:{line}" if source else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


class NotFoundError(KBError):
    code = "not_found"
    http_status = 404


class ConflictError(KBError):
    code = "conflict"
    http_status = 409


class AuthError(KBError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(KBError):
    code = "forbidden"
    http_status = 403


class IndexMismatchError(KBError):
    """The index on disk was built with another model or does not agree with the store."""

    code = "index_mismatch"
    http_status = 503


class IndexDamagedError(IndexMismatchError):
    """An index version's files cannot be read (empty, truncated or garbled)."""

    code = "index_damaged"


class IndexMissingError(KBError):
    code = "index_missing"
    http_status = 503


class NotEnoughDataError(KBError):
    code = "not_enough_data"


class StoreUnavailableError(KBError):
    """The database cannot be reached (PostgreSQL down or restarting): try again shortly."""

    code = "store_unavailable"
    http_status = 503


class SchemaTooNewError(KBError):
    """The database was migrated by a newer version of the service than this one."""

    code = "schema_too_new"
    http_status = 503


class StorageError(KBError):
    """The disk holding the data is full, or the database or its folder is read-only:
    nothing was written; the caller can retry once space is freed or the mount is fixed."""

    code = "storage_unavailable"
    http_status = 503


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY_ERRNOS = {errno.EROFS}
# SQLite primary result codes (the low byte of an extended code).
_SQLITE_READONLY, _SQLITE_FULL = 8, 13
# PostgreSQL SQLSTATEs: disk full, out of memory/resources, read-only transaction (a standby).
_PG_FULL = {"53100", "53000"}
_PG_READ_ONLY = {"25006"}


def storage_failure(exc: BaseException, where: str | os.PathLike = "") -> StorageError | None:
    """A StorageError with a one-line reason when ``exc`` says the disk is full or the
    storage is read-only (an OSError, an sqlite3 error or a psycopg error), else None."""
    kind = ""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS | _READ_ONLY_ERRNOS:
        kind = "full" if exc.errno in _FULL_ERRNOS else "read-only"
        where = os.path.dirname(os.fsdecode(exc.filename)) if exc.filename else where
    elif getattr(exc, "sqlite_errorcode", None) is not None:
        code = exc.sqlite_errorcode & 0xFF
        kind = {_SQLITE_FULL: "full", _SQLITE_READONLY: "read-only"}.get(code, "")
    elif getattr(exc, "sqlstate", None):
        kind = (
            "full"
            if exc.sqlstate in _PG_FULL
            else "read-only"
            if exc.sqlstate in _PG_READ_ONLY
            else ""
        )
    if not kind:
        return None
    place = str(where) or "the data"
    if kind == "full":
        message = (
            f"the disk holding {place} is full: nothing was written; free some space and try again"
        )
    else:
        message = f"{place} is read-only: nothing was written; make it writable and try again"
    error = StorageError(message)
    error.kind = kind
    return error
