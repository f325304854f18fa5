"""EventBus (history replay, live feed, until, threads) and dockerd's /events filters."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from engine.errors import InvalidParameter
from engine.events.bus import Event, EventBus
from engine.events.filters import build_predicate, familiar_name


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def ev(type_: str = "container", action: str = "start", actor: str = "abc123", t: int = 0,
       **attrs: str) -> Event:
    return Event(type=type_, action=action, actor_id=actor, attributes=attrs, scope="local",
                 time_nano=t or time.time_ns())


# ------------------------------------------------------------------------------- bus
def test_live_only_without_since_or_until() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        bus.publish(ev(action="old"))
        got: list[str] = []
        sub = bus.subscribe(None, None, None)
        first = asyncio.ensure_future(sub.__anext__())
        await asyncio.sleep(0)          # the subscription registers on its first step
        while bus.subscriber_count() == 0:
            await asyncio.sleep(0)
        bus.publish(ev(action="new1"))
        bus.publish(ev(action="new2"))
        got.append((await first).action)
        got.append((await sub.__anext__()).action)
        await sub.aclose()
        assert bus.subscriber_count() == 0
        return got

    assert _run(main()) == ["new1", "new2"]


def test_since_replays_history_then_goes_live() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        bus.publish(ev(action="a", t=100))
        bus.publish(ev(action="b", t=200))
        bus.publish(ev(action="c", t=300))
        sub = bus.subscribe(200, None, None)
        got = [(await sub.__anext__()).action, (await sub.__anext__()).action]
        bus.publish(ev(action="d"))
        got.append((await sub.__anext__()).action)
        await sub.aclose()
        return got

    assert _run(main()) == ["b", "c", "d"]


def test_until_in_the_past_replays_and_ends() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        for i, a in enumerate("abcd"):
            bus.publish(ev(action=a, t=(i + 1) * 100))
        return [e.action async for e in bus.subscribe(None, 250, None)]

    assert _run(main()) == ["a", "b"]


def test_until_in_the_future_ends_on_time() -> None:
    async def main() -> tuple[list[str], float]:
        bus = EventBus()
        until = time.time_ns() + 150_000_000
        start = time.monotonic()
        sub = bus.subscribe(None, until, None)
        task = asyncio.ensure_future(_collect(sub))
        while bus.subscriber_count() == 0:
            await asyncio.sleep(0)
        bus.publish(ev(action="in-time"))
        got = await task
        return got, time.monotonic() - start

    got, took = _run(main())
    assert got == ["in-time"] and 0.1 < took < 5


async def _collect(sub: Any) -> list[str]:
    return [e.action async for e in sub]


def test_predicate_applies_to_replay_and_live() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        bus.publish(ev("image", "pull", t=10))
        bus.publish(ev("container", "create", t=20))
        sub = bus.subscribe(1, None, build_predicate({"type": ["container"]}))
        got = [(await sub.__anext__()).action]
        bus.publish(ev("image", "tag"))
        bus.publish(ev("container", "start"))
        got.append((await sub.__anext__()).action)
        await sub.aclose()
        return got

    assert _run(main()) == ["create", "start"]


def test_publish_from_threads_keeps_order_and_loses_nothing() -> None:
    async def main() -> list[int]:
        bus = EventBus()
        sub = bus.subscribe(None, None, None)
        first = asyncio.ensure_future(sub.__anext__())
        while bus.subscriber_count() == 0:
            await asyncio.sleep(0)

        def worker(base: int) -> None:
            for i in range(200):
                bus.publish(ev(action=str(base + i)))

        threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        got = [int((await first).action)]
        while len(got) < 800:
            got.append(int((await sub.__anext__()).action))
        # The live feed is exactly the history, in the same order.
        assert [int(e.action) for e in bus.history()[-800:]] == got
        await sub.aclose()
        return got

    got = _run(main())
    for k in range(4):
        mine = [g for g in got if k * 1000 <= g < (k + 1) * 1000]
        assert mine == list(range(k * 1000, k * 1000 + 200))


def test_history_is_bounded() -> None:
    bus = EventBus(history=3)
    for i in range(5):
        bus.publish(ev(action=str(i), t=i + 1))
    assert [e.action for e in bus.history()] == ["2", "3", "4"]


def test_close_ends_subscribers() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        task = asyncio.ensure_future(_collect(bus.subscribe(None, None, None)))
        while bus.subscriber_count() == 0:
            await asyncio.sleep(0)
        bus.publish(ev(action="x"))
        bus.close()
        bus.publish(ev(action="dropped"))
        return await task

    assert _run(main()) == ["x"]


# ---------------------------------------------------------------------------- filters
def test_unknown_filter_key() -> None:
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        build_predicate({"colour": ["red"]})


def test_type_event_scope() -> None:
    p = build_predicate({"type": ["container", "network"], "event": ["start", "connect"]})
    assert p(ev("container", "start"))
    assert p(ev("network", "connect"))
    assert not p(ev("container", "stop"))
    assert not p(ev("image", "start"))
    assert build_predicate({"scope": ["local"]})(ev())
    assert not build_predicate({"scope": ["swarm"]})(ev())


def test_event_with_detail_actions_is_prefix_matched() -> None:
    p = build_predicate({"event": ["health_status"]})
    assert p(ev(action="health_status: healthy"))
    assert not p(ev(action="start"))
    assert build_predicate({"event": ["exec_start"]})(ev(action="exec_start: sh -c true"))
    # Without those special values the match is exact.
    assert not build_predicate({"event": ["exec"]})(ev(action="exec_start: sh"))


def test_container_by_id_prefix_or_name() -> None:
    p = build_predicate({"container": ["web"]})
    assert p(ev(actor="0123abcd", name="web-1"))
    assert p(ev(actor="0123abcd", name="web"))
    assert not p(ev(actor="0123abcd", name="db"))
    assert build_predicate({"container": ["0123"]})(ev(actor="0123abcd", name="db"))
    # dockerd applies the container filter to every event type.
    assert not p(ev("image", "pull", actor="sha256:ff", name="busybox"))


def test_network_volume_daemon() -> None:
    assert build_predicate({"network": ["br"]})(ev("network", "create", actor="nid", name="bridge0"))
    assert not build_predicate({"network": ["br"]})(ev("network", "create", actor="nid", name="host"))
    assert build_predicate({"volume": ["data"]})(ev("volume", "mount", actor="data"))
    assert build_predicate({"daemon": ["DID"]})(ev("daemon", "reload", actor="DID1", name="host"))


def test_image_filter_matches_names_ids_and_containers() -> None:
    p = build_predicate({"image": ["busybox"]})
    assert p(ev("image", "pull", actor="busybox:latest", name="busybox:latest"))
    assert p(ev("image", "tag", actor="sha256:ff", name="docker.io/library/busybox:1.36"))
    assert p(ev("container", "create", actor="c1", image="busybox"))
    assert p(ev("container", "create", actor="c1", image="busybox@sha256:" + "a" * 64))
    assert not p(ev("container", "create", actor="c1", image="alpine"))
    assert build_predicate({"image": ["sha256:ff"]})(ev("image", "delete", actor="sha256:ff"))
    assert build_predicate({"image": ["busybox:1.36"]})(ev("container", "start", image="busybox:1.36"))
    assert not build_predicate({"image": ["busybox:1.36"]})(ev("container", "start", image="busybox:1.35"))


def test_labels_all_must_match() -> None:
    p = build_predicate({"label": ["app=web", "tier"]})
    assert p(ev(app="web", tier="front", name="x"))
    assert not p(ev(app="web"))
    assert not p(ev(app="db", tier="front"))


def test_empty_filters_match_everything() -> None:
    p = build_predicate({})
    assert p(ev()) and p(ev("image", "pull")) and p(ev("daemon", "reload"))
    assert build_predicate({"container": []})(ev())


def test_familiar_name() -> None:
    assert familiar_name("docker.io/library/busybox:latest") == "busybox"
    assert familiar_name("docker.io/foo/bar@sha256:" + "0" * 64) == "foo/bar"
    assert familiar_name("localhost:5000/x/y:1") == "localhost:5000/x/y"
    assert familiar_name("localhost:5000/x") == "localhost:5000/x"
    assert familiar_name("busybox") == "busybox"


def test_filters_select_what_dockerd_selects() -> None:
    """Real events of dockerd 20.10 (containers with labels, --rm with a volume, tag/untag) and,
    per filter, the subset dockerd itself returned for `/events?since&until&filters=`."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "fixtures" / "dockerd-20.10-events.json").read_text())

    def to_event(m: dict[str, Any]) -> Event:
        return Event(type=m["Type"], action=m["Action"], actor_id=m["Actor"]["ID"],
                     attributes=m["Actor"].get("Attributes") or {}, scope=m["scope"], time_nano=m["timeNano"])

    def key(m: dict[str, Any]) -> tuple[int, str, str]:
        return (m["timeNano"], m["Action"], m["Actor"]["ID"])

    everything = data["all"]
    assert len(everything) > 20
    for case in data["cases"]:
        predicate = build_predicate(case["filters"])
        ours = [key(m) for m in everything if predicate(to_event(m))]
        assert ours == [key(m) for m in case["events"]], case["filters"]


# ------------------------------------------------------------------- JSON encoding
def test_event_json_legacy_fields_by_type_and_version() -> None:
    from compat_server.routes.system import event_json
    t = 1_700_000_000_123_456_789
    c = event_json(ev(action="die", actor="cid", t=t, image="busybox", name="x", exitCode="0"), "1.41")
    assert (c["status"], c["id"], c["from"]) == ("die", "cid", "busybox")
    assert c["time"] == 1_700_000_000 and c["timeNano"] == t
    img = event_json(ev("image", "tag", "sha256:abc", t=t, name="a:1"), "1.41")
    assert (img["status"], img["id"]) == ("tag", "sha256:abc") and "from" not in img
    prune = event_json(ev("container", "prune", "", t=t, reclaimed="0"), "1.41")
    assert prune["status"] == "prune" and "id" not in prune and prune["Actor"]["ID"] == ""
    net = event_json(ev("network", "create", "nid", t=t, name="n", type="bridge"), "1.41")
    assert "status" not in net and "id" not in net
    new = event_json(ev(action="die", actor="cid", t=t, image="busybox"), "1.52")
    assert not {"status", "id", "from"} & set(new)
    assert set(new) == {"Type", "Action", "Actor", "scope", "time", "timeNano"}
