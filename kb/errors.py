"""Exceptions named after the condition they report.

The web layer maps each to an HTTP status and the CLI to a one-line message; the library
never prints or exits.
"""

from __future__ import annotations


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
