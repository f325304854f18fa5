"""Bodies that bypass h11: a route hands a big request or response body to another process that
reads or writes the client's socket itself (docker cp's helper), so 100 MB do not cross the
event loop, the HTTP parser and a pipe.

The ASGI scope of a request on a plain (unix or TCP) connection carries a ``RawAccess`` under
``scope["extensions"]["pydockerd.raw"]``; TLS connections have none (the bytes on the socket
are not the body).  The HTTP exchange stays ours: request head, response head, the last chunk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11

if TYPE_CHECKING:
    from .connection import Connection, _Cycle

EXTENSION = "pydockerd.raw"


@dataclass(frozen=True)
class TakenBody:
    prefix: bytes     # what had already been read off the socket after the request head
    chunked: bool     # Transfer-Encoding: chunked (else ``length`` bytes)
    length: int


class RawAccess:
    def __init__(self, conn: Connection, cycle: _Cycle) -> None:
        self._conn = conn
        self._cycle = cycle
        self._paused = False

    def fileno(self) -> int:
        """The client's socket (non-blocking; the receiver gets a duplicate through SCM_RIGHTS)."""
        stream: Any = self._conn.stream
        return int(stream.fileno())

    @property
    def response_chunked(self) -> bool:
        """A response without a length goes in chunked coding (HTTP/1.1) or until close (1.0)."""
        return self._conn.h11.their_http_version == b"1.1"

    async def take_body(self) -> TakenBody | None:
        """Stop here with the request body: whoever reads the socket now gets the bytes already
        received and the framing.  None when the body was touched already or there is none.
        The connection closes after this response (its input is no longer ours to parse)."""
        cycle, conn = self._cycle, self._conn
        if cycle.body_started or conn.h11.their_state is not h11.SEND_BODY or not conn.inbox.can_pause:
            return None
        headers = cycle.scope["headers"]
        chunked = any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers)
        length = next((int(v) for k, v in headers if k.lower() == b"content-length"), 0)
        if conn.h11.they_are_waiting_for_100_continue:
            await cycle.send_continue()
        cycle.body_started = cycle.body_done = cycle.body_taken = True
        prefix = conn.h11.trailing_data[0] + await conn.inbox.pause()
        self._paused = True
        return TakenBody(prefix, chunked, length)

    def body_done(self) -> None:
        """The other reader is done: we read the socket again (to see the client leave)."""
        if self._paused:
            self._paused = False
            self._conn.inbox.resume()

    def abort(self) -> None:
        """The body written by the other process is incomplete: the response cannot be ended
        properly, the connection is closed instead."""
        self._cycle.broken = True
