"""Attach over a websocket: `GET /containers/{id}/attach/ws`, with wsproto as an independent client."""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from conformance_tests.harness import Daemon, socket_path_of
from conformance_tests.util import ok, wait_for_log, wait_for_status

BUSYBOX = "busybox"


class WSClient:
    def __init__(self, daemon: Daemon, target: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(socket_path_of(daemon.host))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="localhost", target=target)))
        self.pending: list[Event] = []

    def events(self) -> Iterator[Event]:
        while True:
            while self.pending:
                yield self.pending.pop(0)
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
            if not data and not self.pending:
                return

    def handshake(self) -> Event:
        for ev in self.events():
            if isinstance(ev, (AcceptConnection, RejectConnection)):
                return ev
        raise AssertionError("no handshake answer")

    def send_text(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def read_until_close(self, deadline: float = 20) -> tuple[list[tuple[str, bytes]], int | None]:
        """Messages as (kind, data) until the server's close frame; and its close code."""
        end = time.monotonic() + deadline
        out: list[tuple[str, bytes]] = []
        for ev in self.events():
            if isinstance(ev, BytesMessage):
                out.append(("binary", bytes(ev.data)))
            elif isinstance(ev, TextMessage):
                out.append(("text", ev.data.encode()))
            elif isinstance(ev, CloseConnection):
                return out, ev.code
            assert time.monotonic() < end, "no close frame in time"
        return out, None

    def read_until(self, want: bytes) -> bytes:
        got = b""
        for ev in self.events():
            if isinstance(ev, (BytesMessage, TextMessage)):
                got += ev.data if isinstance(ev.data, (bytes, bytearray)) else ev.data.encode()
                if want in got:
                    return got
        raise AssertionError(f"stream ended without {want!r}: {got!r}")

    def close(self) -> None:
        self.sock.close()


def test_ws_attach_stdin_and_stdout_binary_frames(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "-i", "--name", name, BUSYBOX, "cat"))
    wait_for_status(daemon, name, "running")
    client = WSClient(daemon, f"/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1")
    try:
        assert isinstance(client.handshake(), AcceptConnection)
        client.send_text("hello\n")
        kinds = []
        for ev in client.events():
            if isinstance(ev, (BytesMessage, TextMessage)):
                kinds.append((type(ev).__name__, ev.data))
                break
        assert kinds == [("BytesMessage", bytearray(b"hello\n"))], "API >= 1.28: raw output in binary frames"
    finally:
        client.close()


def test_ws_attach_old_api_uses_text_frames(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "-i", "--name", name, BUSYBOX, "cat"))
    wait_for_status(daemon, name, "running")
    client = WSClient(daemon, f"/v1.27/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1")
    try:
        assert isinstance(client.handshake(), AcceptConnection)
        client.send_text("old\n")
        for ev in client.events():
            if isinstance(ev, (BytesMessage, TextMessage)):
                assert isinstance(ev, TextMessage) and ev.data == "old\n"
                break
    finally:
        client.close()


def test_ws_attach_unmultiplexed_output_logs_and_close_frame(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", "echo first; sleep 2; echo bye; echo err >&2"))
    wait_for_log(daemon, name, "first")  # so "first" comes from the log replay, the rest from the stream
    client = WSClient(daemon, f"/containers/{name}/attach/ws?stream=1&stdout=1&stderr=1&logs=1")
    try:
        assert isinstance(client.handshake(), AcceptConnection)
        messages, code = client.read_until_close()
        data = b"".join(d for _, d in messages)
        # stdout and stderr are separate pipes: their relative order is not fixed.
        assert data.startswith(b"first\n") and sorted(data.splitlines()) == [b"bye", b"err", b"first"], \
            "no multiplexing headers, stderr included"
        assert {k for k, _ in messages} == {"binary"}
        assert code == 1000
    finally:
        client.close()


def test_ws_attach_errors(daemon: Daemon, busybox: str, name: str) -> None:
    client = WSClient(daemon, "/containers/no-such-container-x/attach/ws?stream=1")
    try:
        answer = client.handshake()
        assert isinstance(answer, RejectConnection) and answer.status_code == 404
        body = b""
        for ev in client.events():  # the daemon may keep the connection open after its answer
            if isinstance(ev, RejectData):
                body += bytes(ev.data)
                if ev.body_finished:
                    break
        assert b"No such container: no-such-container-x" in body
    finally:
        client.close()
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    r = daemon.raw("GET", f"/containers/{name}/attach/ws?stream=1")
    assert r.status == 400 and r.body.startswith(b"not websocket protocol")


def test_ws_client_close_ends_stdin_and_the_output_still_arrives(daemon: Daemon, busybox: str, name: str) -> None:
    """The client's close frame is the end of its stdin, not of the stream: with StdinOnce the
    container's stdin closes, its last output still comes in frames, then the server's close (1000)."""
    body = {"Image": BUSYBOX, "Cmd": ["sh", "-c", "cat; echo after-eof"], "OpenStdin": True, "StdinOnce": True,
            "AttachStdin": True, "AttachStdout": True}
    resp = daemon.raw("POST", f"/containers/create?name={name}", json.dumps(body), {"Content-Type": "application/json"})
    assert resp.status == 201, resp.body
    client = WSClient(daemon, f"/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1")
    try:
        assert isinstance(client.handshake(), AcceptConnection)
        ok(daemon.cli("start", name))
        client.sock.sendall(client.ws.send(TextMessage(data="hello\n")) + client.ws.send(CloseConnection(code=1000)))
        messages, code = client.read_until_close()
        assert b"".join(d for _, d in messages) == b"hello\nafter-eof\n"
        assert code == 1000
    finally:
        client.close()
    wait_for_status(daemon, name, "exited")


def test_ws_attach_detach_keys_end_the_attach(daemon: Daemon, busybox: str, name: str) -> None:
    """As on a hijacked attach: a terminal's detach keys end the websocket attach, the container runs on."""
    ok(daemon.cli("run", "-dit", "--name", name, BUSYBOX, "sh"))
    wait_for_status(daemon, name, "running")
    client = WSClient(daemon, f"/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x")
    try:
        assert isinstance(client.handshake(), AcceptConnection)
        client.send_text("echo w''s\r")
        client.read_until(b"ws")
        client.send_text("\x18")
        end = time.monotonic() + 20
        for ev in client.events():   # the attach ends: a close frame or the connection closing
            if isinstance(ev, CloseConnection):
                break
            assert time.monotonic() < end, "the attach did not end"
    finally:
        client.close()
    assert ok(daemon.cli("inspect", "-f", "{{.State.Running}}", name)).strip() == "true"
