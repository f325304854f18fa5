"""Request bodies that cannot be read (issue 9 item 10): a bad chunk size is dockerd's 400; a client
that leaves mid-body costs nothing but a debug line."""
from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from compat_server.app import build_app

from .conftest import ServerThread, servers  # noqa: F401  (the fixture that stops our server)

CREATE = (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n")


@pytest.fixture
def real_app_server(tmpdir_short: Path, servers: list[ServerThread]) -> ServerThread:  # noqa: F811
    # The body is read before the engine is asked anything: no engine is needed
    s = ServerThread([f"unix://{tmpdir_short}/d.sock"], app=build_app(None))
    servers.append(s)
    return s.start()


def _exchange(server: ServerThread, data: bytes, *, close_after_send: bool = False) -> bytes:
    path = next(str(where) for kind, where in server.server.bound if kind == "unix")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(data)
    if close_after_send:
        s.close()
        return b""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


@pytest.mark.parametrize("chunks", [b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{\"Ima\r\nq\r\n"], ids=["first", "second"])
def test_bad_chunk_size_is_400(real_app_server: ServerThread, chunks: bytes) -> None:
    out = _exchange(real_app_server, CREATE + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), out
    assert body == b'{"message": "invalid byte in chunk length"}\n'


def test_client_leaving_mid_body_is_a_debug_line(real_app_server: ServerThread,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _exchange(real_app_server, CREATE + b"Content-Length: 100\r\n\r\n{\"Image\"", close_after_send=True)
    deadline = time.monotonic() + 10
    while not any("went away" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.02)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not noisy, [(r.levelname, r.getMessage()) for r in noisy]
    # and the server still serves
    out = _exchange(real_app_server, b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 ") and b"page not found" not in out


def test_bad_chunk_size_on_a_hijack_route_is_400(real_app_server: ServerThread) -> None:
    out = _exchange(real_app_server, b"POST /v1.41/exec/x/start HTTP/1.1\r\nHost: docker\r\n"
                                     b"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), out
    assert body == b'{"message": "invalid byte in chunk length"}\n'
