"""A recording unix-socket proxy between the docker CLI and the daemon under test.

It relays HTTP/1.1 byte for byte, frames each exchange just enough to find
where a response body ends, and checks every single-document JSON response
(the body must parse, and api_spec must accept it when available).
Hijacked connections (attach, exec start) and streaming endpoints (logs,
events, load, pull, build...) are passed through unchecked.
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from conformance_tests.contract import api_path

Validator = Callable[[str, str, int, object], None]

# Endpoints whose JSON body is a stream of documents, not one document.
_STREAMING = re.compile(
    r"^/(events|build|images/create|images/load|images/[^?]+/push|containers/[^/]+/(logs|stats|attach(/ws)?)"
    r"|exec/[^/]+/start|plugins/pull|plugins/[^/]+/upgrade|plugins/[^/]+/push|session|grpc)$"
)
_MAX_CAPTURE = 8 * 1024 * 1024


class _Closed(Exception):
    pass


def _read_head(reader: BinaryIO) -> list[bytes] | None:
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
        if not line:
            if lines:
                raise _Closed("connection closed inside a message head")
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # tolerate stray CRLF between messages
            return lines
        lines.append(line)


def _headers(head: list[bytes]) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw in head[1:]:
        name, _, value = raw.decode("latin-1").partition(":")
        key = name.strip().lower()
        value = value.strip()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


class ValidatingProxy:
    def __init__(self, listen_path: Path, upstream_path: str, validate: Validator | None) -> None:
        self.listen_path = listen_path
        self.upstream_path = upstream_path
        self.validate = validate
        self.failures: list[str] = []
        self.checked = 0
        #: when a list: one (request seen, response head, response end, method, target, status) per
        #: exchange, in time.monotonic() seconds (bench/compose_trace.py times the calls with it)
        self.trace: list[tuple[float, float, float, str, str, int]] | None = None
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(listen_path))
        self._server.listen(64)
        self._closing = False
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name="cli-proxy", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"unix://{self.listen_path}"

    def close(self) -> None:
        self._closing = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        try:
            os.unlink(self.listen_path)
        except FileNotFoundError:
            pass

    def take_failures(self) -> list[str]:
        with self._lock:
            failures, self.failures = self.failures, []
        return failures

    # ---- plumbing
    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._conns.update((client, upstream))
        try:
            upstream.connect(self.upstream_path)
            c_in = client.makefile("rb")
            u_in = upstream.makefile("rb")
            while self._exchange(client, c_in, upstream, u_in):
                pass
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
                self._conns.discard(upstream)
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)  # also wakes a pump thread blocked on it
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def _exchange(self, client: socket.socket, c_in: BinaryIO, upstream: socket.socket, u_in: BinaryIO) -> bool:
        """Relay one request/response; False when the connection is done."""
        req_head = _read_head(c_in)
        if req_head is None:
            return False
        t_req = time.monotonic()
        method, target = req_head[0].decode("latin-1").split()[:2]
        req_headers = _headers(req_head)
        upstream.sendall(b"".join(req_head) + b"\r\n")
        upgrade = "upgrade" in req_headers.get("connection", "").lower()
        try:
            self._relay_body(req_headers, c_in, upstream, None)
        except OSError:
            pass  # the daemon answered early and closed; its answer is still worth reading
        resp_head = _read_head(u_in)
        if resp_head is None:
            return False
        t_head = time.monotonic()
        client.sendall(b"".join(resp_head) + b"\r\n")
        status = int(resp_head[0].split()[1])

        def traced() -> None:
            if self.trace is not None:
                self.trace.append((t_req, t_head, time.monotonic(), method, target, status))
        resp_headers = _headers(resp_head)
        ctype = resp_headers.get("content-type", "")
        if status == 101 or (upgrade and status == 200) or ctype.startswith("application/vnd.docker."):
            self._splice(client, c_in, upstream, u_in)
            traced()
            return False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            traced()
            return True
        path = api_path(target)
        streaming = bool(_STREAMING.match(path))
        body = bytearray() if ctype.startswith("application/json") else None

        def check() -> None:
            # Runs before the body's last byte goes out, so the client cannot see the response
            # complete (and a test cannot end) before its check is recorded.
            traced()
            if body is None or len(body) > _MAX_CAPTURE:
                return
            if streaming:
                self._check_stream(method, path, status, bytes(body))
            else:
                self._check(method, path, status, bytes(body))

        keep = self._relay_body(resp_headers, u_in, client, body, until_eof=True, before_end=check)
        close = "close" in resp_headers.get("connection", "").lower()
        return keep and not close

    def _relay_body(self, headers: dict[str, str], src: BinaryIO, dst: socket.socket,
                    capture: bytearray | None, until_eof: bool = False,
                    before_end: Callable[[], None] = lambda: None) -> bool:
        """Copy one message body; returns False if it was delimited by connection close.

        `before_end` runs once the whole body has been read but before its end reaches `dst`.
        """
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = src.readline(4096)
                if not size_line:
                    raise _Closed("closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    before_end()
                dst.sendall(size_line)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = src.readline(65537)
                        if not line:
                            raise _Closed("closed inside trailers")
                        dst.sendall(line)
                        if line in (b"\r\n", b"\n"):
                            return True
                self._copy(src, dst, size, capture)
                crlf = src.readline(8)
                dst.sendall(crlf)
        if "content-length" in headers:
            length = int(headers["content-length"])
            if length == 0:
                before_end()
                return True
            self._copy(src, dst, length - 1, capture)
            last = src.read(1)
            if len(last) != 1:
                raise _Closed("closed inside a body")
            if capture is not None:
                capture.extend(last)
            before_end()
            dst.sendall(last)
            return True
        if not until_eof:
            return True  # a request without a body
        while True:  # close-delimited response
            chunk = src.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                before_end()
                return False
            dst.sendall(chunk)
            if capture is not None:
                capture.extend(chunk)

    @staticmethod
    def _copy(src: BinaryIO, dst: socket.socket, n: int, capture: bytearray | None) -> None:
        while n > 0:
            chunk = src.read1(min(n, 65536))  # type: ignore[attr-defined]
            if not chunk:
                raise _Closed("closed inside a body")
            dst.sendall(chunk)
            if capture is not None and len(capture) <= _MAX_CAPTURE:
                capture.extend(chunk)
            n -= len(chunk)

    @staticmethod
    def _splice(client: socket.socket, c_in: BinaryIO, upstream: socket.socket, u_in: BinaryIO) -> None:
        """Hijacked stream: copy both ways, forwarding half-closes, until both sides are done."""
        def pump(src: BinaryIO, dst: socket.socket) -> None:
            try:
                while True:
                    chunk = src.read1(65536)  # type: ignore[attr-defined]
                    if not chunk:
                        break
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        up = threading.Thread(target=pump, args=(c_in, upstream), daemon=True)
        up.start()
        pump(u_in, client)
        # The daemon closed its side: the session is over even if the client never half-closes.
        try:
            upstream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        up.join(timeout=5)

    def _check(self, method: str, path: str, status: int, body: bytes) -> None:
        if not body.strip():
            return
        try:
            doc = json.loads(body)
        except ValueError as exc:
            self._fail(f"{method} {path} -> {status}: Content-Type is JSON but the body is not ({exc})")
            return
        with self._lock:
            self.checked += 1
        if self.validate is None:
            return
        try:
            self.validate(method, path, status, doc)
        except Exception as exc:  # noqa: BLE001 - any validator failure is recorded, not raised in the proxy thread
            message = getattr(exc, "message", str(exc))
            where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
            self._fail(f"{method} {path} -> {status}: {message} (at /{where})")

    def _check_stream(self, method: str, path: str, status: int, body: bytes) -> None:
        """A finished stream of JSON documents (pull/push/load progress, events, stats), one per line."""
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                self._fail(
                    f"{method} {path} -> {status}: a line of the JSON stream is not JSON ({exc}): {line[:200]!r}"
                )
                return
        with self._lock:
            self.checked += 1
        if self.validate is None or not body.strip():
            return
        try:
            self.validate(method, path, status, body)
        except Exception as exc:  # noqa: BLE001 - any validator failure is recorded, not raised in the proxy thread
            message = getattr(exc, "message", str(exc))
            where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
            self._fail(f"{method} {path} -> {status} (stream): {message} (at /{where})")

    def _fail(self, text: str) -> None:
        with self._lock:
            self.failures.append(text)
