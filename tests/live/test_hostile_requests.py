"""A real `kb serve` against requests a hostile client would send, and a home whose
current index version is damaged. What gunicorn's parser and the Flask test client do
differs here, so these run against the production server on loopback."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.live_server import LiveServer, create_token, kb, prepare_home, request

MAX_BODY = 100_000


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile") / "home"
    prepare_home(home)
    token = create_token(home)
    with LiveServer(home, workers=1, KB_MAX_BODY_BYTES=str(MAX_BODY)) as server:
        yield server, token


def exchange(server, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes, read the answer until the server closes or a whole answer came."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def chunked(payload: bytes, size: int = 65536) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def post_head(token: str) -> bytes:
    return (
        b"POST /api/v1/suggest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def test_an_invalid_chunk_size_is_a_400(live):
    server, token = live
    status, body = exchange(server, post_head(token) + b"zz\r\n{}\r\n0\r\n\r\n")
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_request"
    # A well-formed chunked body still works.
    status, body = exchange(
        server, post_head(token) + chunked(json.dumps({"title": "vpn drops"}).encode())
    )
    assert status == 200 and json.loads(body)["results"]


def test_a_chunked_body_over_the_limit_is_a_413(live):
    server, token = live
    payload = json.dumps({"title": "vpn", "description": "x" * (MAX_BODY + 20_000)}).encode()
    status, body = exchange(server, post_head(token) + chunked(payload))
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"


def test_an_80_kb_header_block_in_one_read_is_a_431(live):
    server, _ = live
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 4000) for n in range(20))
    status, body = exchange(
        server, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    )
    assert status == 431 and json.loads(body)["error"]["code"] == "headers_too_large"


def test_control_characters_in_a_request_cannot_forge_log_lines(live):
    server, _ = live
    status, _ = exchange(
        server,
        b"GET /nothing%0aFORGED%1b[31m%00%0d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert status == 404
    time.sleep(0.5)
    log = server.log_path.read_bytes()
    assert b"\x1b" not in log and b"\x00" not in log and b"\r" not in log
    assert not any(line.startswith(b"FORGED") for line in log.splitlines())
    assert b"/nothing\\x0aFORGED\\x1b[31m\\x00\\x0d" in log


@pytest.mark.parametrize("how", ["empty", "garbage"])
def test_kb_serve_starts_on_a_damaged_index_and_says_so(tmp_path, how):
    home = tmp_path / "home"
    prepare_home(home)
    token = create_token(home)
    kb(home, "index", "--rebuild")
    damaged = (home / "index" / "CURRENT").read_text().strip()
    faiss_file = Path(home) / "index" / damaged / "vectors.faiss"
    faiss_file.write_bytes(b"" if how == "empty" else b"\x7fgarbage" * 100)
    with LiveServer(home, workers=1) as server:
        status, health = request(server.url, "GET", "/api/v1/health", token=token)
        assert status == 200 and health["status"] == "degraded", health
        assert health["index_damaged"]["version"] == damaged and health["index_version"] != damaged
        status, answer = request(
            server.url, "POST", "/api/v1/suggest", {"title": "vpn drops"}, token=token
        )
        assert status == 200 and answer["results"]
        assert "INDEX DAMAGED" in server.log_path.read_text(errors="replace")


def test_kb_serve_finishes_an_erasure_left_pending(tmp_path):
    from kb.app.service import Service
    from kb.config import load_config

    home = tmp_path / "home"
    prepare_home(home)
    service = Service(load_config(environ={}, home=str(home), embed_backend="hashing"))
    try:
        service.store().erase_incidents(["T-1"], actor="test")  # rows gone, files not yet
        assert service.store().pending_erasures()
        with LiveServer(home, workers=2):
            deadline = time.monotonic() + 60
            while service.store().pending_erasures() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not service.store().pending_erasures()
    finally:
        service.close()
