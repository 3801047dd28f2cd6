"""Logs that text from a request cannot forge: every control character in a log line
(CR and LF, which would start a forged line; ESC, which drives a terminal; NUL; DEL; the
Unicode line and paragraph separators) is written as an escape such as ``\\x0a``.

``kb serve`` runs gunicorn with :class:`SafeLogger`: its access and error logs, and the
service's own loggers (through a handler on the root logger), all format through
:class:`SafeFormatter`. A traceback keeps one line per frame, each line escaped and
marked with ``  | `` so that no line of it reads as a log record of its own.
"""

from __future__ import annotations

import logging
import re
import sys

from gunicorn.glogging import Logger

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
APP_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
APP_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def _escape_one(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape."""
    return _CONTROL.sub(_escape_one, text)


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info):
            if block:
                line += "".join(f"\n  | {escape_controls(part)}" for part in block.splitlines())
        return line


def make_safe(handler: logging.Handler) -> None:
    """Give a handler the escaping formatter, keeping its format and date format."""
    current = handler.formatter
    fmt = current._fmt if current is not None else None
    handler.setFormatter(SafeFormatter(fmt, current.datefmt if current is not None else None))


class SafeLogger(Logger):
    """gunicorn's logger with every line escaped; also gives the service's loggers (which
    propagate to the root logger) a handler on standard error that escapes."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            make_safe(handler)
        root = logging.getLogger()
        if not any(getattr(h, "kb_safe", False) for h in root.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(SafeFormatter(APP_FORMAT, APP_DATE_FORMAT))
            handler.kb_safe = True
            root.addHandler(handler)
