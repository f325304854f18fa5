"""Websocket pieces of attach/ws: handshake key, server frames, client frame decoding."""
from __future__ import annotations

import os
import struct

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from compat_server.wsattach import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameDecoder,
    FrameError,
    accept_key,
    encode_frame,
    is_websocket_request,
)


def _client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
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


def test_accept_key_is_rfc6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_server_frames_decode_in_wsproto(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(encode_frame(OP_BINARY, payload))
    frames = list(proto.received_frames())
    assert len(frames) == 1 and frames[0].opcode == Opcode.BINARY and frames[0].payload == payload


def test_decoder_handles_split_input_fragments_and_control_frames() -> None:
    data = (_client_frame(OP_TEXT, b"hel", fin=False) + _client_frame(OP_PING, b"p")
            + _client_frame(0x0, b"lo") + _client_frame(OP_BINARY, b"x" * 300) + _client_frame(OP_CLOSE, b""))
    dec = FrameDecoder()
    got = []
    for i in range(0, len(data), 7):  # arbitrary chunking
        got += dec.feed(data[i:i + 7])
    assert got == [(OP_PING, b"p"), (OP_TEXT, b"hello"), (OP_BINARY, b"x" * 300), (OP_CLOSE, b"")]


def test_decoder_refuses_stray_continuations() -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(_client_frame(0x0, b"x"))


def test_websocket_request_detection() -> None:
    ok = {"connection": "keep-alive, Upgrade", "upgrade": "websocket", "sec-websocket-key": "k"}
    assert is_websocket_request(ok)
    assert not is_websocket_request({**ok, "upgrade": "tcp"})
    assert not is_websocket_request({k: v for k, v in ok.items() if k != "sec-websocket-key"})
