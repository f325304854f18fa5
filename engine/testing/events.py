"""A single-threaded event bus that keeps every event (the ``EventBusAPI`` Protocol).

Unlike ``EventBus`` it has no bounded history and no thread hand-off: a test
can read ``events`` at any time to see everything that was published."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from ..events.api import Predicate
from ..events.bus import Event

_CLOSED = None


class RecordingEventBus:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._closed = False

    def publish(self, event: Event) -> None:
        if self._closed:
            return
        self.events.append(event)
        for q in self._queues:
            q.put_nowait(event)

    def history(self) -> list[Event]:
        return list(self.events)

    def subscriber_count(self) -> int:
        return len(self._queues)

    def close(self) -> None:
        self._closed = True
        for q in self._queues:
            q.put_nowait(_CLOSED)

    async def subscribe(self, since_ns: int | None, until_ns: int | None,
                        predicate: Predicate | None = None) -> AsyncIterator[Event]:
        pred = predicate or (lambda _e: True)
        replay = []
        if since_ns is not None or until_ns is not None:
            replay = [e for e in self.events if e.time_nano >= (since_ns or 0)
                      and (until_ns is None or e.time_nano <= until_ns)]
        live = not self._closed and not (until_ns is not None and until_ns < time.time_ns())
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        if live:
            self._queues.append(q)
        try:
            for e in replay:
                if pred(e):
                    yield e
            while live:
                timeout = None if until_ns is None else (until_ns - time.time_ns()) / 1e9
                if timeout is not None and timeout <= 0:
                    return
                try:
                    item = await asyncio.wait_for(q.get(), timeout)
                except TimeoutError:
                    return
                if item is None or (until_ns is not None and item.time_nano > until_ns):
                    return
                if pred(item):
                    yield item
        finally:
            if q in self._queues:
                self._queues.remove(q)
