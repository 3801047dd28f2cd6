"""Small shared pieces of test data and checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TODAY = dt.datetime.now(dt.UTC).date()
SVG = "{http://www.w3.org/2000/svg}"

# An article that passes every lint rule; format with id, status, audience, review_by.
GOOD = """---
id: {id}
title: Good article
status: {status}
audience: {audience}
review_by: {review_by}
updated: 2026-01-01
---

## Symptoms
It breaks.

## Cause
A reason.

## Resolution
Fix it; see [the other one](other.md).

## Applies to
- Everything
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse_svg(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


class TicketReceiver:
    """A ticket system's end on loopback. ``script`` is a list of what to do with each post
    in turn ("ok", "fail", "redirect", "trickle", "hang"); after it runs out, "ok". Every post
    is kept with whether its signature (HMAC-SHA256 with ``secret``) held."""

    def __init__(self, secret: str, script: list[str] | None = None):
        self.script = list(script or [])
        self.posts: list[tuple[str, bool, dict, dict]] = []  # (action, signature ok, headers, body)
        self.gets = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.gets += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                action = outer.script.pop(0) if outer.script else "ok"
                outer.posts.append(
                    (
                        action,
                        self.headers["X-KB-Signature"] == expected,
                        dict(self.headers),
                        json.loads(body),
                    )
                )
                if action == "hang":
                    outer.release.wait(20)
                if action == "trickle":  # one byte of the status line at a time, for ever
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                        if outer.release.wait(0.2):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                status = {"ok": 200, "fail": 503, "redirect": 302, "hang": 200}[action]
                self.send_response(status)
                if action == "redirect":
                    self.send_header(
                        "Location", f"http://127.0.0.1:{outer.server.server_port}/elsewhere"
                    )
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/kb"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
