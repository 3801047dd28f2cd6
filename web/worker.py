"""The gunicorn worker `kb serve` runs: gthread, with every request read whole before it
takes a thread.

gunicorn's threaded worker hands a connection to a request thread as soon as its first
bytes arrive; a client that then sends its headers or body one byte a second holds that
thread for as long as it likes, and a handful of such clients hold them all (the health
check and every suggest request wait behind them). This worker reads each request in its
event loop instead, without blocking: the request line, the headers and the body are
collected in memory (a body is at most ``max_body_bytes``) and only a complete request is
given to a thread. A request that is not complete within ``request_read_timeout`` seconds
is answered 408 and its connection closed.

Requests that are refused before the app sees them get the app's own answer: the JSON
error shape under /api, the project's error page elsewhere. That covers a request line or
a header that is too long, or a header section over 64 kB (414, 431), a declared body over
the limit (413; a body of up to 16 MB is read and dropped first, so the client can read
the answer), a chunked body over the limit (413) or with broken chunk framing (400), and
the read timeout (408).
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import ThreadWorker

# Longest request line and longest single header line accepted (gunicorn's own maximum).
MAX_LINE = 8190
# Largest header section, all lines together.
MAX_HEAD = 64 * 1024
# A declared body over the limit but under this size is read and dropped before the 413,
# so a client that sends its whole body before reading the answer sees the answer.
DISCARD_LIMIT = 16 * 1024 * 1024
RECV_SIZE = 256 * 1024

_REASONS = {
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    400: "Bad Request",
}


@dataclass
class Pending:
    """A connection whose next request is still arriving."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    head_end: int = -1  # index just past the blank line that ends the headers
    body_length: int | None = None  # declared Content-Length
    chunked: bool = False
    discard: int = 0  # bytes of an oversized body still to read and drop
    refusal: tuple[int, str, str] | None = None  # (status, path, message) once refused
    done: bool = False  # handed to a thread, answered or closed
    closed: bool = False


class RequestError(Exception):
    def __init__(self, status: int, message: str, path: str = "/"):
        super().__init__(message)
        self.status, self.message, self.path = status, message, path


def parse_head(head: bytes, max_body: int) -> tuple[str, int | None, bool, bool]:
    """(path, Content-Length or None, chunked, expects 100-continue) of a header section,
    or RequestError for one the server refuses before the app sees it."""
    lines = head.split(b"\r\n")
    request_line = lines[0]
    path = _path_of(request_line)
    if len(request_line) > MAX_LINE:
        raise RequestError(414, f"the address is longer than {MAX_LINE} characters", path)
    length = None
    chunked = expect = False
    for line in lines[1:]:
        if len(line) > MAX_LINE:
            raise RequestError(431, f"a request header is longer than {MAX_LINE} characters", path)
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit():
                raise RequestError(400, "the Content-Length header is not a number", path)
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    if length is not None and length > max_body:
        raise RequestError(413, f"the request body is larger than {max_body} bytes", path)
    return path, length, chunked, expect


class MalformedChunks(ValueError):
    """A chunked body whose framing is broken (a chunk size that is not a hex number)."""


def chunked_body_scan(data: bytes | bytearray, start: int) -> tuple[int | None, int]:
    """(index just past a complete chunked body that begins at ``start``, or None while
    more is to come; the payload bytes seen so far). Raises MalformedChunks."""
    pos, payload = start, 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            if len(data) - pos > MAX_LINE:
                raise MalformedChunks("a chunk size line is too long")
            return None, payload
        size_text = bytes(data[pos:line_end]).split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
            raise MalformedChunks("a chunk size is not a hexadecimal number")
        size = int(size_text, 16)
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", line_end)
            if data[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4, payload
            return (trailer_end + 4 if trailer_end >= 0 else None), payload
        payload += size
        pos = line_end + 2 + size + 2
        if pos > len(data):
            return None, payload
        if data[pos - 2 : pos] != b"\r\n":
            raise MalformedChunks("a chunk is longer than its size says")


class BufferingWorker(ThreadWorker):
    """gthread, but a request reaches a thread only once it has fully arrived."""

    def init_process(self):
        self.reading: deque = deque()  # (conn, Pending) in deadline order
        super().init_process()

    def _limits(self) -> tuple[int, float]:
        config = self.wsgi.config["KB_CONFIG"]
        return config.max_body_bytes, float(config.request_read_timeout)

    def enqueue_req(self, conn):
        if self.cfg.is_ssl or getattr(conn, "is_http2", False):
            return super().enqueue_req(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        _, read_timeout = self._limits()
        pending = Pending(deadline=time.monotonic() + read_timeout)
        pending.data += conn.parser.unreader.take_buffered()
        conn.sock.setblocking(False)
        if self._advance(conn, pending):
            return
        self.reading.append((conn, pending))
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn, pending)
        )

    def _on_readable(self, conn, pending: Pending, _sock):
        try:
            while True:
                chunk = conn.sock.recv(RECV_SIZE)
                if not chunk:
                    self._drop(conn, pending)
                    return
                arrived = len(chunk)
                if pending.discard:
                    taken = min(len(chunk), pending.discard)
                    pending.discard -= taken
                    chunk = chunk[taken:]
                pending.data += chunk
                if arrived < RECV_SIZE:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(conn, pending)
            return
        self._advance(conn, pending)

    def _advance(self, conn, pending: Pending) -> bool:
        """Look at what has arrived. True when the connection left the reading state:
        handed to a thread, answered with a refusal, or closed."""
        max_body, _ = self._limits()
        if pending.refusal is not None:
            if pending.discard:
                return False
            self._refuse(conn, pending, *pending.refusal)
            return True
        if pending.head_end < 0:
            end = pending.data.find(b"\r\n\r\n")
            if end < 0:
                first_line = pending.data.split(b"\r\n", 1)[0]
                if len(first_line) > MAX_LINE:
                    self._refuse(
                        conn,
                        pending,
                        414,
                        _path_of(first_line),
                        f"the address is longer than {MAX_LINE} characters",
                    )
                    return True
                if len(pending.data) > MAX_HEAD:
                    self._refuse(
                        conn,
                        pending,
                        431,
                        _path_of(first_line),
                        f"the request headers are larger than {MAX_HEAD} bytes",
                    )
                    return True
                return False
            if end + 4 > MAX_HEAD:
                # The whole header section can arrive in one read: measured here too.
                self._refuse(
                    conn,
                    pending,
                    431,
                    _path_of(pending.data),
                    f"the request headers are larger than {MAX_HEAD} bytes",
                )
                return True
            pending.head_end = end + 4
            try:
                path, length, chunked, expect = parse_head(bytes(pending.data[:end]), max_body)
            except RequestError as exc:
                self._refuse_or_discard(conn, pending, exc)
                return pending.refusal is None or not pending.discard
            pending.body_length, pending.chunked = length, chunked
            if expect:
                # The client waits for this before it sends the body; the request parser
                # must not send it a second time, so the header goes.
                pending.data[: pending.head_end] = _without_expect(
                    bytes(pending.data[: pending.head_end])
                )
                pending.head_end = pending.data.find(b"\r\n\r\n") + 4
                try:
                    conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    self._drop(conn, pending)
                    return True
        if pending.chunked:
            try:
                end, payload = chunked_body_scan(pending.data, pending.head_end)
            except MalformedChunks as exc:
                self._refuse(
                    conn,
                    pending,
                    400,
                    _path_of(pending.data),
                    f"the chunked request body is malformed: {exc}",
                )
                return True
            # The limit is on the body itself, whether it arrived whole or is still coming.
            if payload > max_body or (
                end is None and len(pending.data) - pending.head_end > max_body + 64 * 1024
            ):
                self._refuse(
                    conn,
                    pending,
                    413,
                    _path_of(pending.data),
                    f"the request body is larger than {max_body} bytes",
                )
                return True
            if end is None:
                return False
        elif len(pending.data) < pending.head_end + (pending.body_length or 0):
            return False
        self._hand_over(conn, pending)
        return True

    def _refuse_or_discard(self, conn, pending: Pending, exc: RequestError) -> None:
        if exc.status == 413:
            length = _declared_length(bytes(pending.data[: pending.head_end]))
            if length is not None and length <= DISCARD_LIMIT:
                arrived = len(pending.data) - pending.head_end
                pending.discard = max(0, length - arrived)
                del pending.data[:]
                pending.refusal = (exc.status, exc.path, exc.message)
                if not pending.discard:
                    self._refuse(conn, pending, exc.status, exc.path, exc.message)
                return
        self._refuse(conn, pending, exc.status, exc.path, exc.message)

    def _hand_over(self, conn, pending: Pending) -> None:
        self._leave(conn, pending)
        conn.parser.unreader.unread(bytes(pending.data))
        pending.data = bytearray()
        conn.data_ready = True
        super().enqueue_req(conn)

    def _refuse(self, conn, pending: Pending, status: int, path: str, message: str) -> None:
        from web.errors import refusal_body

        content_type, body = refusal_body(self.wsgi, status, path, message)
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n\r\n"
        ).encode("latin-1")
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(2.0)
            conn.sock.sendall(head + body)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.log.info('%s "refused before the app" %s %s', _client(conn), status, path)
        self._drop(conn, pending)

    def _drop(self, conn, pending: Pending) -> None:
        if pending.closed:
            return
        pending.closed = True
        self._leave(conn, pending)
        self.nr_conns -= 1
        try:
            conn.close()
        except OSError as exc:
            if exc.errno not in (errno.EBADF, errno.ENOTCONN):
                raise

    def _leave(self, conn, pending: Pending) -> None:
        """The connection stops being read here (its data goes with it)."""
        pending.done = True
        pending.data = bytearray() if pending.closed else pending.data
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            conn, pending = self.reading[0]
            if pending.done:
                self.reading.popleft()
                continue
            if pending.deadline > now:
                break
            self.reading.popleft()
            if pending.data.strip() or pending.refusal:
                self._refuse(
                    conn, pending, 408, _path_of(pending.data), "the request did not arrive in time"
                )
            else:
                self._drop(conn, pending)


def _path_of(data: bytes | bytearray) -> str:
    first = bytes(data).split(b"\r\n", 1)[0]
    parts = first.split(b" ")
    target = parts[1] if len(parts) >= 2 else b"/"
    return target.split(b"?", 1)[0].decode("latin-1")[:200] or "/"


def _declared_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def _without_expect(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(
        line for line in lines if line.partition(b":")[0].strip().lower() != b"expect"
    )


def _client(conn) -> str:
    try:
        return str(conn.client[0])
    except (TypeError, IndexError):
        return "-"
