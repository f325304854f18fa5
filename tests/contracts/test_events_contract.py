"""The EventBusAPI contract (engine/events/api.py): the daemon's EventBus and the recording fake."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from engine.events.api import EventBusAPI
from engine.events.bus import Event, EventBus
from engine.testing.events import RecordingEventBus

T = TypeVar("T")


@pytest.fixture(params=["bus", "recording"])
def bus(request: pytest.FixtureRequest) -> EventBusAPI:
    return EventBus() if request.param == "bus" else RecordingEventBus()


def run(coro: Awaitable[T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, 10)
    return asyncio.run(guarded())


def ev(action: str, t: int = 0, actor: str = "c1") -> Event:
    return Event(type="container", action=action, actor_id=actor, time_nano=t or time.time_ns())


async def subscribed(bus: EventBusAPI, count: int) -> None:
    while bus.subscriber_count() < count:
        await asyncio.sleep(0)


def test_implements_the_protocol(bus: EventBusAPI) -> None:
    assert isinstance(bus, EventBusAPI)


def test_live_subscribers_see_only_what_comes_after(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        bus.publish(ev("before"))
        sub = bus.subscribe(None, None)
        first = asyncio.ensure_future(sub.__anext__())
        await subscribed(bus, 1)
        bus.publish(ev("a"))
        bus.publish(ev("b"))
        got = [(await first).action, (await sub.__anext__()).action]
        await sub.aclose()          # type: ignore[attr-defined]
        assert bus.subscriber_count() == 0
        return got
    assert run(go()) == ["a", "b"]


def test_since_replays_the_history_then_goes_live(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        for i, action in enumerate(("a", "b", "c"), start=1):
            bus.publish(ev(action, t=i * 100))
        sub = bus.subscribe(200, None)
        got = [(await sub.__anext__()).action, (await sub.__anext__()).action]
        bus.publish(ev("d"))
        got.append((await sub.__anext__()).action)
        await sub.aclose()          # type: ignore[attr-defined]
        return got
    assert run(go()) == ["b", "c", "d"]


def test_until_in_the_past_ends_after_the_replay(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        for i, action in enumerate(("a", "b", "c"), start=1):
            bus.publish(ev(action, t=i * 100))
        return [e.action async for e in bus.subscribe(None, 250)]
    assert run(go()) == ["a", "b"]


def test_until_in_the_future_ends_when_it_comes(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        return [e.action async for e in bus.subscribe(None, time.time_ns() + 50_000_000)]
    assert run(go()) == []


def test_predicate_filters_replay_and_live(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        bus.publish(ev("x", t=100, actor="c1"))
        bus.publish(ev("y", t=200, actor="c2"))
        sub = bus.subscribe(1, None, lambda e: e.actor_id == "c2")
        got = [(await sub.__anext__()).action]
        bus.publish(ev("z1", actor="c1"))
        bus.publish(ev("z2", actor="c2"))
        got.append((await sub.__anext__()).action)
        await sub.aclose()          # type: ignore[attr-defined]
        return got
    assert run(go()) == ["y", "z2"]


def test_close_ends_subscriptions_and_drops_later_events(bus: EventBusAPI) -> None:
    async def go() -> list[str]:
        sub = bus.subscribe(None, None)
        first = asyncio.ensure_future(sub.__anext__())
        await subscribed(bus, 1)
        bus.publish(ev("last"))
        got = [(await first).action]
        bus.close()
        got += [e.action async for e in sub]
        bus.publish(ev("dropped"))
        assert [e.action for e in bus.history()] == ["last"]
        return got
    assert run(go()) == ["last"]
