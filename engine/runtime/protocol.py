"""Framing of the shim socket (shared by the shim and its asyncio client).

Every message both ways is one frame::

    +------+-------------------+-----------------+
    | kind | length (u32, BE)  | payload[length] |
    +------+-------------------+-----------------+

kind 0 CTRL   JSON object (requests, replies, events)
kind 1 STDOUT container output (shim -> client)
kind 2 STDERR container output (shim -> client)
kind 3 STDIN  bytes for the container's stdin (client -> shim)

Stdlib only (struct/json): the shim imports it.
"""
from __future__ import annotations

import json
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

HEADER = struct.Struct(">BI")
CTRL, STDOUT, STDERR, STDIN = 0, 1, 2, 3
MAX_FRAME = 16 * 1024 * 1024


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def ctrl(obj: dict[str, Any]) -> bytes:
    return frame(CTRL, json.dumps(obj, separators=(",", ":")).encode())


class FrameError(Exception):
    pass


def parse_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete frame off the front of ``buf`` (mutates it)."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    n = len(buf)
    while n - pos >= HEADER.size:
        kind, length = HEADER.unpack_from(buf, pos)
        if length > MAX_FRAME or kind > STDIN:
            raise FrameError(f"bad frame kind={kind} length={length}")
        if n - pos - HEADER.size < length:
            break
        start = pos + HEADER.size
        out.append((kind, bytes(buf[start:start + length])))
        pos = start + length
    if pos:
        del buf[:pos]
    return out
