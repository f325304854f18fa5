"""The daemon's event bus: publish from anywhere, subscribe with history replay (since/until).

Semantics follow dockerd's `/events`:
- with neither `since` nor `until`, a subscriber sees only events published after it subscribed;
- with either, the buffered history in [since, until] is replayed first (oldest first);
- with `until` in the past the subscription ends after the replay; with `until` in the
  future it ends when that time comes (or at the first live event after it).
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    type: str                   # "container" / "image" / "network" / "volume" / "daemon" / ...
    action: str                 # "create", "start", "die", "exec_start: sh -c ...", "health_status: healthy"...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict, hash=False)
    scope: str = "local"
    time_nano: int = 0

    def __post_init__(self) -> None:
        if not self.time_nano:
            object.__setattr__(self, "time_nano", time.time_ns())


Predicate = Callable[[Event], bool]

_CLOSED = object()


class _Subscriber:
    __slots__ = ("loop", "predicate", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, predicate: Predicate) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.predicate = predicate

    def deliver(self, item: object) -> None:
        """Hand an event to this subscriber from any thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(item)
        elif not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            except RuntimeError:    # the loop closed between the check and the call
                pass


class EventBus:
    """Fan-out of engine events with a bounded history (dockerd keeps the last 256; we keep more)."""

    def __init__(self, history: int = 1024) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscribers: list[_Subscriber] = []
        # One lock orders history appends against subscriptions, so a subscriber's replay
        # and its live feed neither overlap nor leave a gap.
        self._lock = threading.Lock()
        self._closed = False

    def publish(self, event: Event) -> None:
        """Record and broadcast an event.  Non-blocking; safe from any thread."""
        with self._lock:
            if self._closed:
                return
            self._history.append(event)
            subscribers = list(self._subscribers)
            # Deliver under the lock so every subscriber sees events in history order.
            for sub in subscribers:
                sub.deliver(event)

    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (daemon shutdown); later publishes are dropped."""
        with self._lock:
            self._closed = True
            for sub in self._subscribers:
                sub.deliver(_CLOSED)

    async def subscribe(self, since_ns: int | None, until_ns: int | None,
                        predicate: Predicate | None = None) -> AsyncIterator[Event]:
        """Replay matching history in [since, until] (when either is given), then live events."""
        pred: Predicate = predicate or (lambda _e: True)
        sub = _Subscriber(asyncio.get_running_loop(), pred)
        with self._lock:
            replay: list[Event] = []
            if since_ns is not None or until_ns is not None:
                lo = since_ns or 0
                replay = [e for e in self._history
                          if e.time_nano >= lo and (until_ns is None or e.time_nano <= until_ns)]
            only_past = until_ns is not None and until_ns < time.time_ns()
            live = not only_past and not self._closed
            if live:
                self._subscribers.append(sub)
        try:
            for e in replay:
                if pred(e):
                    yield e
            if not live:
                return
            while True:
                if until_ns is None:
                    item = await sub.queue.get()
                else:
                    remaining = (until_ns - time.time_ns()) / 1e9
                    if remaining <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(sub.queue.get(), remaining)
                    except TimeoutError:
                        return
                if item is _CLOSED:
                    return
                assert isinstance(item, Event)
                if until_ns is not None and item.time_nano > until_ns:
                    return
                if pred(item):
                    yield item
        finally:
            with self._lock:
                if sub in self._subscribers:
                    self._subscribers.remove(sub)
