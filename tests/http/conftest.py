"""Fixtures: a real Server on real sockets (unix, tcp, tcp+TLS) running in a background event loop,
a tiny starlette app and an echo hijack handler, and TLS material made with `cryptography`."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from compat_server.http import HijackConn, HijackRequest, Server, TLSOptions

# ---------------------------------------------------------------------------------------------
# the app under the driver


@dataclass
class Probe:
    """Cross-thread signals between the app (server loop) and the test (main thread)."""

    loop: asyncio.AbstractEventLoop | None = None
    gate: asyncio.Event | None = None  # /stream waits on it between its two chunks
    disconnected: threading.Event = field(default_factory=threading.Event)
    hijack_gone: threading.Event = field(default_factory=threading.Event)
    requests: list[Any] = field(default_factory=list)

    def open_gate(self) -> None:
        assert self.loop is not None and self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)


def make_app(probe: Probe) -> Starlette:
    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    async def echo(request: Request) -> JSONResponse:
        chunks = 0
        total = bytearray()
        async for chunk in request.stream():
            if chunk:
                chunks += 1
                total += chunk
        return JSONResponse({"length": len(total), "chunks": chunks, "head": total[:16].decode("latin-1")})

    async def stream(request: Request) -> StreamingResponse:
        probe.gate = asyncio.Event()

        async def gen() -> Any:
            yield b"first line\n"
            assert probe.gate is not None
            await probe.gate.wait()
            yield b"second line\n"
            yield b"last line, no newline"

        return StreamingResponse(gen(), media_type="application/json")

    async def events(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            try:
                yield b'{"status":"start"}\n'
                await asyncio.Event().wait()  # until starlette cancels us on http.disconnect
            finally:
                probe.disconnected.set()

        return StreamingResponse(gen(), media_type="application/json")

    async def peer(request: Request) -> JSONResponse:
        ext = request.scope["extensions"]["pydockerd"]
        return JSONResponse({
            "peer_creds": ext["peer_creds"], "tls_client_cert": ext["tls_client_cert"],
            "scheme": request.scope["scheme"], "path": request.scope["path"],
            "raw_path": request.scope["raw_path"].decode(), "query": request.scope["query_string"].decode(),
            "client": request.scope["client"], "server": request.scope["server"],
        })

    async def first(request: Request) -> PlainTextResponse:
        # Answers from the first piece of the body, before the rest was even sent.
        async for chunk in request.stream():
            if chunk:
                return PlainTextResponse(chunk)
        return PlainTextResponse("")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    return Starlette(routes=[
        Route("/ping", ping), Route("/echo", echo, methods=["POST"]), Route("/first", first, methods=["POST"]),
        Route("/stream", stream),
        Route("/events", events), Route("/peer/{rest:path}", peer), Route("/boom", boom),
    ])


async def echo_hijack(req: HijackRequest, conn: HijackConn, probe: Probe) -> None:
    """Fake attach: stdin until b"", then "got N bytes\\n" + the data, then our half-close."""
    probe.requests.append(req)
    if "/containers/missing/" in req.path:
        await conn.send_response(404, [("Content-Type", "application/json")],
                                 b'{"message":"No such container: missing"}\n')
        return
    if req.upgrade:
        await conn.start_upgrade("application/vnd.docker.raw-stream")
    else:
        await conn.start_stream("application/vnd.docker.raw-stream")
    if "/containers/eager/" in req.path:
        await conn.write(b"early")  # output right after the head, like logs=1
    if "/containers/forever/" in req.path:
        # Output until the client hangs up completely.
        for _ in range(2000):
            if conn.closed_by_peer.is_set():
                probe.hijack_gone.set()
                return
            await conn.write(b"tick\n")
            await asyncio.sleep(0.005)
        return
    data = bytearray()
    while True:
        chunk = await conn.read()
        if not chunk:
            break
        data += chunk
    await conn.write(f"got {len(data)} bytes\n".encode() + bytes(data) + (b"|" + req.body if req.body else b""))
    await conn.close_write()
    await conn.close()


# ---------------------------------------------------------------------------------------------
# the server in a background loop


class ServerThread:
    def __init__(self, hosts: list[str], tls: TLSOptions | None = None, group: str | None = None,
                 allow_insecure_tcp: bool = False, app: Any = None, hijack: Any = None, **extra: Any) -> None:
        self.probe = Probe()
        self.loop = asyncio.new_event_loop()
        self.probe.loop = self.loop
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        probe = self.probe

        async def handler(req: HijackRequest, conn: HijackConn) -> None:
            await echo_hijack(req, conn, probe)

        async def build() -> Server:
            return Server(app or make_app(probe), hijack or handler, hosts=hosts, tls=tls, group=group,
                          allow_insecure_tcp=allow_insecure_tcp, **extra)

        self.server = self.run(build())

    def run(self, coro: Any, timeout: float = 10) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> ServerThread:
        self.run(self.server.start())
        return self

    def tcp_port(self) -> int:
        for kind, where in self.server.bound:
            if kind == "tcp":
                assert isinstance(where, tuple)
                return int(where[1])
        raise AssertionError("no tcp listener")

    def stop(self) -> None:
        try:
            self.run(self.server.close(grace=0.2))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    # unix socket paths are limited to 108 bytes: keep them short.
    with tempfile.TemporaryDirectory(prefix="pdh-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
def servers() -> Iterator[list[ServerThread]]:
    made: list[ServerThread] = []
    yield made
    for s in made:
        s.stop()


@pytest.fixture
def unix_server(tmpdir_short: Path, servers: list[ServerThread]) -> ServerThread:
    s = ServerThread([f"unix://{tmpdir_short}/d.sock"])
    servers.append(s)
    return s.start()


@pytest.fixture
def tcp_server(servers: list[ServerThread]) -> ServerThread:
    s = ServerThread(["tcp://127.0.0.1:0"])
    servers.append(s)
    return s.start()


# ---------------------------------------------------------------------------------------------
# TLS material


@dataclass(frozen=True)
class Certs:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _write_certs(d: Path) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def save_key(k: ec.EllipticCurvePrivateKey, name: str) -> str:
        p = d / name
        p.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return str(p)

    def save_cert(c: x509.Certificate, name: str) -> str:
        p = d / name
        p.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return str(p)

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pydockerd test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage: Any, san: list[x509.GeneralName] | None) -> tuple[x509.Certificate, Any]:
        k = key()
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(ca_key, hashes.SHA256()), k

    srv, srv_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli, cli_key = leaf("test-client", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    return Certs(save_cert(ca, "ca.pem"), save_cert(srv, "server-cert.pem"), save_key(srv_key, "server-key.pem"),
                 save_cert(cli, "cert.pem"), save_key(cli_key, "key.pem"))


@pytest.fixture(scope="session")
def certs() -> Iterator[Certs]:
    with tempfile.TemporaryDirectory(prefix="pdh-tls-") as d:
        yield _write_certs(Path(d))


def client_context(certs: Certs, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    if with_cert:
        ctx.load_cert_chain(certs.client_cert, certs.client_key)
    return ctx


# ---------------------------------------------------------------------------------------------
# a minimal blocking HTTP/1.1 client that shows exactly what is on the wire


class WireClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.buf = b""

    @classmethod
    def unix(cls, path: str) -> WireClient:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s)

    @classmethod
    def tcp(cls, port: int) -> WireClient:
        return cls(socket.create_connection(("127.0.0.1", port)))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(f"EOF before {marker!r}; got {self.buf!r}")
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def read_head(self) -> tuple[int, dict[str, str]]:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        return status, headers

    def read_chunk(self) -> bytes:
        size = int(self.read_until(b"\r\n")[:-2], 16)
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n"
        return data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.read_head()
        if "content-length" in headers:
            return status, headers, self.read_exact(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                chunk = self.read_chunk()
                if not chunk:
                    return status, headers, body
                body += chunk
        return status, headers, self.read_to_eof()

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[
            int, dict[str, str], bytes]:
        self.send(raw_request(method, target, body, headers))
        return self.response()

    def close(self) -> None:
        self.sock.close()


def raw_request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    h = {"Host": "docker"}
    if body or method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() + body


def body_json(body: bytes) -> Any:
    return json.loads(body)


def socket_path(s: ServerThread) -> str:
    for kind, where in s.server.bound:
        if kind == "unix":
            return str(where)
    raise AssertionError("no unix listener")


__all__ = ["os"]
