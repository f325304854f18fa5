"""Detach keys: the sequence on a terminal's stdin that ends an attach and leaves the container running.

dockerd watches the input of a terminal attach (container attach, exec, websocket attach) for
the keys the client asked for (``detachKeys``; the CLI sends its ``--detach-keys`` or
config.json's ``detachKeys``), ctrl-p,ctrl-q by default.
"""
from __future__ import annotations

import asyncio
from typing import Any

from engine.containers.exec import parse_detach_keys
from engine.errors import EngineError

from .errors import BadRequest

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p,ctrl-q


def detach_keys(query: dict[str, list[str]]) -> bytes:
    """The attach's ``detachKeys`` (the CLI sends its --detach-keys or config.json's detachKeys)."""
    spec = (query.get("detachKeys") or [""])[-1]
    if not spec:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(spec)
    except EngineError:
        raise BadRequest(f"Invalid detach keys ({spec}) provided") from None


class DetachScanner:
    """Finds the detach sequence in a terminal's input, holding back a partial match.

    Input passes through except the sequence itself; bytes held as a possible start of it
    are let through when the sequence does not follow (as dockerd's escape proxy does).
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.detached = asyncio.Event()
        self._held = b""

    def scan(self, data: bytes) -> bytes:
        if not self.keys:
            return data
        out = bytearray()
        for b in data:
            self._held += bytes([b])
            if self.keys.startswith(self._held):
                if self._held == self.keys:
                    self._held = b""
                    self.detached.set()
                    return bytes(out)
                continue
            out += self._held
            self._held = b""
        return bytes(out)


class Detaching:
    """A container attach whose stdin is watched for the detach keys."""

    def __init__(self, att: Any, keys: bytes) -> None:
        self.att = att
        self._scanner = DetachScanner(keys)
        self.detached = self._scanner.detached

    async def read(self) -> Any:
        frame = await self.att.read()
        return None if self.detached.is_set() else frame

    async def write(self, data: bytes) -> None:
        if self.detached.is_set():
            return
        data = self._scanner.scan(data)
        if data:
            await self.att.write(data)

    async def close_stdin(self) -> None:
        if not self.detached.is_set():
            await self.att.close_stdin()
