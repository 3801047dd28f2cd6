"""A real `kb serve` against clients that are slow, oversized or odd on the wire.

Requests are read whole in each worker's event loop before a request thread takes them
(web/worker.py): slow senders cannot hold the threads, and what is refused before the app
sees it still gets the app's own answer. Loopback only; every socket has a timeout.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.live_server import LiveServer, create_token, prepare_home, request


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("slow") / "home"
    prepare_home(home)
    token = create_token(home)
    with LiveServer(home, workers=2, KB_WORKER_THREADS="4", KB_REQUEST_READ_TIMEOUT="3") as server:
        yield server, token


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def test_slow_senders_do_not_hold_the_request_threads(live):
    server, token = live
    slow = []
    try:
        # Twelve connections (more than the 2 x 4 request threads) announce a 100 kB body
        # and then send one byte at a time.
        for _ in range(12):
            sock = connect(server)
            sock.sendall(
                b"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            slow.append(sock)
        time.sleep(0.3)
        began = time.monotonic()
        for _ in range(6):
            for sock in slow:
                sock.sendall(b" ")
            status, _ = request(server.url, "GET", "/api/v1/health", timeout=2)
            assert status == 200
            status, body = request(
                server.url,
                "POST",
                "/api/v1/suggest",
                {"description": "vpn drops"},
                token=token,
                timeout=5,
            )
            assert status == 200 and body["results"], body
        assert time.monotonic() - began < 10
    finally:
        for sock in slow:
            sock.close()


def test_a_request_that_does_not_arrive_in_time_is_answered_408(live):
    server, _ = live
    with connect(server) as sock:
        sock.sendall(b"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        began = time.monotonic()
        status, headers, body = read_response(sock)
    assert status == 408 and 2 < time.monotonic() - began < 9
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_oversized_lines_get_the_json_shape_on_the_api_and_a_page_elsewhere(live):
    server, _ = live
    long_text = "x" * 10_000
    with connect(server) as sock:
        sock.sendall(f"GET /api/v1/health?q={long_text} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, body = read_response(sock)
    assert status == 414 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "uri_too_long"
    with connect(server) as sock:
        sock.sendall(f"GET /?description={long_text} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, body = read_response(sock)
    assert status == 414 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "Address too long" in page and "Back to search" in page and long_text not in page
    with connect(server) as sock:
        sock.sendall(
            f"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {long_text}\r\n\r\n".encode()
        )
        status, headers, body = read_response(sock)
    assert status == 431 and json.loads(body)["error"]["code"] == "headers_too_large"


def test_expect_continue_and_chunked_bodies_still_work(live):
    server, token = live
    body = json.dumps({"description": "vpn keeps dropping"}).encode()
    with connect(server) as sock:
        sock.sendall(
            f"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _, answer = read_response(sock)
        assert status == 200 and json.loads(answer)["results"]
        # The same connection goes on with a chunked body sent in two pieces.
        sock.sendall(
            f"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        half = len(body) // 2
        sock.sendall(f"{half:x}\r\n".encode() + body[:half] + b"\r\n")
        time.sleep(0.2)
        sock.sendall(f"{len(body) - half:x}\r\n".encode() + body[half:] + b"\r\n0\r\n\r\n")
        status, _, answer = read_response(sock)
        assert status == 200 and json.loads(answer)["results"]


def test_an_oversized_body_is_read_and_refused_with_the_json_shape(live):
    server, token = live
    body = b'{"description": "' + b"x" * 2_500_000 + b'"}'
    with connect(server) as sock:
        sock.sendall(
            f"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, headers, answer = read_response(sock)
    assert status == 413 and json.loads(answer)["error"]["code"] == "body_too_large"


def test_the_access_log_holds_no_query_strings(live):
    server, token = live
    request(server.url, "GET", "/?description=secret-stack-trace-line-42&title=printer", timeout=5)
    request(server.url, "GET", "/api/v1/health?probe=also-secret", token=token, timeout=5)
    time.sleep(0.5)
    log = server.log_path.read_text(errors="replace")
    assert '"GET /api/v1/health HTTP/1.1" 200' in log
    assert "secret-stack-trace" not in log and "also-secret" not in log
