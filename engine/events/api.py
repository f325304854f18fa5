"""The event bus's contract (dockerd's ``/events`` semantics, see bus.py).

``EventBus`` (bus.py) is the implementation the daemon runs;
``engine.testing.events.RecordingEventBus`` is a single-threaded fake that
keeps every event.  Both run tests/contracts/test_events_contract.py.
Services publish through ``EventPublisher`` (``engine.engine.Events``).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from .bus import Event

Predicate = Callable[[Event], bool]


@runtime_checkable
class EventBusAPI(Protocol):
    def publish(self, event: Event) -> None:
        """Record and deliver; never blocks.  Dropped after ``close``."""
        ...

    def history(self) -> list[Event]:
        """Recorded events, oldest first."""
        ...

    def subscriber_count(self) -> int: ...

    def close(self) -> None:
        """End every subscription."""
        ...

    def subscribe(self, since_ns: int | None, until_ns: int | None,
                  predicate: Predicate | None = None) -> AsyncIterator[Event]:
        """Without since/until: live events only, from the subscription on.  With
        either: the history in [since, until] first.  ``until`` in the past ends the
        stream after the replay; in the future, when that time comes."""
        ...


@runtime_checkable
class EventPublisher(Protocol):
    """What the engine's services call to say what happened."""

    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None: ...
