"""Bodies that bypass h11 (rawbody.py): a route hands the client's socket to another reader or
writer, here a thread using the docker cp helper's BodyReader and Sink, over real sockets."""
from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from compat_server.http.rawbody import EXTENSION
from engine.containers.archive_io import BodyError, BodyReader, Sink

from .conftest import ServerThread, WireClient, body_json, socket_path

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)


def _read_all(fd: int, prefix: bytes, chunked: bool, length: int) -> dict[str, Any]:
    reader = BodyReader(fd, prefix, chunked=chunked, length=length)
    digest, size = hashlib.sha256(), 0
    try:
        while True:
            view = reader.read_view(1 << 16)
            if not view:
                break
            digest.update(view)
            size += len(view)
    except BodyError as err:
        return {"error": str(err)}
    return {"size": size, "sha": digest.hexdigest(), "prefix": len(prefix)}


class _Direct(Response):
    def __init__(self, raw: Any) -> None:
        super().__init__(status_code=200, media_type="application/octet-stream")
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        fd, chunked = os.dup(self.raw.fileno()), self.raw.response_chunked

        def write() -> None:
            try:
                sink = Sink(fd, chunked=chunked)
                for i in range(0, len(PAYLOAD), 300_000):
                    sink.write(PAYLOAD[i:i + 300_000])
                sink.flush()
            finally:
                os.close(fd)

        await asyncio.to_thread(write)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _app() -> Starlette:
    async def take(request: Request) -> JSONResponse:
        raw = request.scope["extensions"][EXTENSION]
        taken = await raw.take_body()
        try:
            fd = os.dup(raw.fileno())
            try:
                result = await asyncio.to_thread(_read_all, fd, taken.prefix, taken.chunked, taken.length)
            finally:
                os.close(fd)
        finally:
            raw.body_done()
        return JSONResponse(result)

    async def direct(request: Request) -> Response:
        return _Direct(request.scope["extensions"][EXTENSION])

    return Starlette(routes=[Route("/take", take, methods=["PUT"]), Route("/direct", direct)])


@pytest.fixture
def raw_server(tmpdir_short: Path, servers: list[ServerThread]) -> Iterator[ServerThread]:
    s = ServerThread([f"unix://{tmpdir_short}/r.sock"], app=_app())
    servers.append(s)
    yield s.start()


def _chunked(data: bytes, size: int) -> bytes:
    out = b"".join(b"%x;ext=1\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n"
                   for i in range(0, len(data), size))
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def _put(c: WireClient, body: bytes, headers: str) -> tuple[int, dict[str, str], bytes]:
    c.send(f"PUT /take HTTP/1.1\r\nHost: d\r\n{headers}\r\n".encode() + body)
    return c.response()


@pytest.mark.parametrize("piece", [1, 7, 32768, 1 << 20])
def test_chunked_body_read_off_the_socket(raw_server: ServerThread, piece: int) -> None:
    c = WireClient.unix(socket_path(raw_server))
    data = PAYLOAD if piece > 100 else PAYLOAD[:20000]
    status, headers, body = _put(c, _chunked(data, piece), "Transfer-Encoding: chunked\r\n")
    assert status == 200 and headers.get("connection") == "close"
    assert body_json(body)["sha"] == hashlib.sha256(data).hexdigest()
    assert c.read_to_eof() == b"", "the connection ends after a body taken off it"


def test_length_body_and_bytes_already_received(raw_server: ServerThread) -> None:
    c = WireClient.unix(socket_path(raw_server))
    status, _, body = _put(c, PAYLOAD, f"Content-Length: {len(PAYLOAD)}\r\n")
    got = body_json(body)
    assert status == 200 and got["size"] == len(PAYLOAD) and got["sha"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_expect_100_continue_is_answered_before_the_body(raw_server: ServerThread) -> None:
    c = WireClient.unix(socket_path(raw_server))
    c.send(b"PUT /take HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100")
    c.send(b"hello")
    status, _, body = c.response()
    assert status == 200 and body_json(body)["size"] == 5


@pytest.mark.parametrize("bad, error", [(b"zz\r\nhello\r\n0\r\n\r\n", "invalid byte in chunk length"),
                                        (b"5\r\nhelloXX0\r\n\r\n", "malformed chunked encoding"),
                                        (b"10\r\nhel", "unexpected EOF")])
def test_badly_framed_body(raw_server: ServerThread, bad: bytes, error: str) -> None:
    c = WireClient.unix(socket_path(raw_server))
    c.send(b"PUT /take HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n" + bad)
    if error == "unexpected EOF":
        c.sock.shutdown(1)
    status, _, body = c.response()
    assert status == 200 and body_json(body) == {"error": error}


def test_response_body_written_by_another_writer_keeps_the_connection(raw_server: ServerThread) -> None:
    c = WireClient.unix(socket_path(raw_server))
    for _ in range(2):
        status, headers, body = c.request("GET", "/direct")
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert body == PAYLOAD
    c.close()


def test_response_body_to_an_http_1_0_client_goes_until_close(raw_server: ServerThread) -> None:
    c = WireClient.unix(socket_path(raw_server))
    c.send(b"GET /direct HTTP/1.0\r\n\r\n")
    status, headers = c.read_head()
    assert status == 200 and "transfer-encoding" not in headers
    assert c.read_to_eof() == PAYLOAD
