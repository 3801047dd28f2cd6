"""Log lines that request text cannot forge (web.logs)."""

from __future__ import annotations

import io
import logging

from web.logs import SafeFormatter, escape_controls


def test_every_control_character_is_escaped():
    text = "a\nb\rc\x1b[31md\x00e\x7ff\x85g\u2028h\ti"
    escaped = escape_controls(text)
    assert escaped == "a\\x0ab\\x0dc\\x1b[31md\\x00e\\x7ff\\x85g\\u2028h\\x09i"
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in escaped)


def test_app_log_records_and_their_tracebacks_stay_on_their_own_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("kb.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("asked for %s", "/x\nFORGED line\x1b[2J")
        try:
            raise ValueError("bad\ninput\x00")
        except ValueError:
            logger.exception("failed on %s", "/y\r\nFORGED")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "WARNING kb.test-logs: asked for /x\\x0aFORGED line\\x1b[2J"
    assert lines[1] == "ERROR kb.test-logs: failed on /y\\x0d\\x0aFORGED"
    assert all(line.startswith("  | ") for line in lines[2:]) and lines[-1] == "  | input\\x00"
    assert "\x1b" not in stream.getvalue() and "\x00" not in stream.getvalue()
