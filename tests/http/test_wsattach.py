"""Websocket pieces of attach/ws: handshake key, server frames, client frame decoding."""
from __future__ import annotations

import os
import struct

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from compat_server.wsattach import REPLY, STDIN, STDIN_EOF, AttachSocket, accept_key, is_websocket_request


def _client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame made by hand, for input no well-behaved client library produces."""
    mask = os.urandom(4)
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack(">BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack(">BBQ", first, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _client_reads(data: bytes) -> list[tuple[Opcode, object]]:
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(data)
    return [(f.opcode, f.payload) for f in proto.received_frames()]


def test_accept_key_is_rfc6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_binary_output_is_one_frame_per_chunk(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert _client_reads(AttachSocket(binary=True).output(payload)) == [(Opcode.BINARY, payload)]


def test_text_output_keeps_a_character_split_across_chunks_whole() -> None:
    ws = AttachSocket(binary=False)
    data = "grüße\n".encode()
    cut = data.index(b"\xc3") + 1  # inside the two bytes of "ü"
    wire = ws.output(data[:cut]) + ws.output(data[cut:]) + ws.close()
    frames = _client_reads(wire)
    assert [op for op, _ in frames] == [Opcode.TEXT, Opcode.TEXT, Opcode.CLOSE]
    assert "".join(str(p) for _, p in frames[:2]) == "grüße\n"
    assert frames[2][1] == (1000, "")


def test_input_in_pieces_fragments_ping_and_close() -> None:
    client = FrameProtocol(client=True, extensions=[])
    data = (bytes(client.send_data("hel", fin=False)) + bytes(client.ping(b"p"))
            + bytes(client.send_data("lo", fin=True)) + bytes(client.send_data(b"x" * 300))
            + bytes(client.close(1000)) + bytes(client.send_data(b"after close")))
    ws = AttachSocket(binary=True)
    got: list[tuple[str, bytes]] = []
    for i in range(0, len(data), 7):  # arbitrary chunking
        got += ws.receive(data[i:i + 7])
    stdin = b"".join(p for kind, p in got if kind == STDIN)
    assert stdin == b"hello" + b"x" * 300, "text and binary frames are stdin; nothing after the close"
    assert [kind for kind, _ in got if kind != STDIN] == [REPLY, STDIN_EOF]
    pong = next(p for kind, p in got if kind == REPLY)
    assert _client_reads(pong) == [(Opcode.PONG, b"p")]
    assert not ws.stdin_open
    # Output still goes out after the client's close, then our close frame (as dockerd does).
    assert [op for op, _ in _client_reads(ws.output(b"late") + ws.close())] == [Opcode.BINARY, Opcode.CLOSE]


def test_a_stray_continuation_ends_stdin_and_the_rest_is_ignored() -> None:
    ws = AttachSocket(binary=True)
    assert ws.receive(_client_frame(0x0, b"x")) == [(STDIN_EOF, b"")]
    assert ws.receive(_client_frame(0x2, b"more")) == []


def test_unmasked_client_frames_are_refused() -> None:
    ws = AttachSocket(binary=True)
    assert ws.receive(b"\x82\x02hi") == [(STDIN_EOF, b"")]


def test_websocket_request_detection() -> None:
    ok = {"connection": "keep-alive, Upgrade", "upgrade": "websocket", "sec-websocket-key": "k"}
    assert is_websocket_request(ok)
    assert not is_websocket_request({**ok, "upgrade": "tcp"})
    assert not is_websocket_request({k: v for k, v in ok.items() if k != "sec-websocket-key"})
