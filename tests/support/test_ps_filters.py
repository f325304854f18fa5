"""`docker ps` filter rules (engine.containers.filters) on in-memory records, and the
cached summary encoding of GET /containers/json."""
from __future__ import annotations

import json

import pytest

from compat_server.listing import EncodedSummaries
from engine.containers import filters as F
from engine.errors import EngineError, InvalidParameter
from engine.types import ZERO_TIME, Container, ContainerConfig, ContainerState, HostConfig


def ctr(n: int, status: str = "running", *, exit_code: int = 0, started: bool = True, labels: dict | None = None,
        image: str = "sha256:aa") -> Container:
    running = status in ("running", "paused", "restarting")
    return Container(
        id=f"{n:02d}" + "c" * 62, name=f"c{n}", created=f"2026-01-01T00:00:{n:02d}.000000000Z", image_id=image,
        config=ContainerConfig(image="busybox", labels=dict(labels or {})), host_config=HostConfig(),
        path="true", args=(),
        state=ContainerState(status=status, exit_code=exit_code, pid=10 if running else 0,
                             started_at="2026-01-01T00:01:00Z" if started else ZERO_TIME),
    )


# newest first, like ContainerService.list()
FLEET = [ctr(5, "running", labels={"tier": "web"}), ctr(4, "exited", exit_code=3, labels={"tier": "db"}),
         ctr(3, "created", started=False), ctr(2, "exited", exit_code=0, image="sha256:bb"),
         ctr(1, "paused", labels={"tier": "web", "x": ""})]


def names(flt: dict, *, show_all: bool = True, limit: int = -1, facts=None) -> list[str]:  # type: ignore[no-untyped-def]
    plan = F.parse(flt, FLEET, lambda ref: {"sha256:aa"} if ref == "busybox" else set())
    return [c.name for c in F.select(plan, FLEET, show_all=show_all, limit=limit,
                                     facts=facts or (lambda c: F.Facts()))]


def test_default_all_limit() -> None:
    assert names({}, show_all=False) == ["c5", "c1"]
    assert names({}) == ["c5", "c4", "c3", "c2", "c1"]
    # a positive limit shows stopped containers too; a negative one is no limit
    assert names({}, show_all=False, limit=2) == ["c5", "c4"]
    assert names({}, show_all=False, limit=-5) == ["c5", "c1"]
    # a status filter implies all; exited does not
    assert names({"status": ["exited"]}, show_all=False) == ["c4", "c2"]
    assert names({"exited": ["3"]}, show_all=False) == []


@pytest.mark.parametrize("flt, expected", [
    ({"status": ["created", "paused"]}, ["c3", "c1"]),
    ({"exited": ["0"]}, ["c2"]),            # never-started c3 (exit code 0) is not "exited 0"
    ({"exited": ["3", "0"]}, ["c4", "c2"]),
    ({"label": ["tier"]}, ["c5", "c4", "c1"]),
    ({"label": ["tier=web", "x"]}, ["c1"]),
    ({"label": ["tier!=web"]}, []),          # no negation: key "tier!" does not exist
    ({"name": ["^c[12]$"]}, ["c2", "c1"]),
    ({"name": ["^/c5"]}, ["c5"]),            # names match with and without the slash
    ({"name": ["["]}, []),                   # a bad pattern matches nothing
    ({"id": ["04"]}, ["c4"]),
    ({"id": ["0"]}, []),                     # ambiguous prefix: nothing
    ({"ancestor": ["busybox"]}, ["c5", "c4", "c3", "c1"]),
    ({"ancestor": ["nope"]}, []),
    ({"before": ["c3"]}, ["c2", "c1"]),
    ({"since": ["c3"]}, ["c5", "c4"]),
    ({"before": ["/c4"], "since": ["c1"]}, ["c3", "c2"]),
    ({"is-task": ["false"]}, ["c5", "c4", "c3", "c2", "c1"]),
    ({"is-task": ["true"]}, []),
    ({"health": ["none"]}, ["c5", "c4", "c3", "c2", "c1"]),
    ({"health": ["healthy"]}, []),
    ({"isolation": ["default"]}, ["c5", "c4", "c3", "c2", "c1"]),
])
def test_filters(flt: dict, expected: list[str]) -> None:
    assert names(flt) == expected


def test_facts_filters() -> None:
    facts = {
        "c5": F.Facts(networks={"bridge": "abcdef"}, ports=((80, 8080, "tcp"),), health="healthy",
                      mounts=(("vol1", "/var/lib/x", "/data"),)),
        "c4": F.Facts(networks={"mynet": "123456"}, ports=((53, 0, "udp"),),
                      mounts=(("", "/host/dir", "/mnt"),)),
    }
    get = lambda c: facts.get(c.name, F.Facts())  # noqa: E731
    assert names({"network": ["bridge"]}, facts=get) == ["c5"]
    assert names({"network": ["1234"]}, facts=get) == ["c4"]      # network id prefix
    assert names({"publish": ["8080"]}, facts=get) == ["c5"]
    assert names({"publish": ["80"]}, facts=get) == []            # publish is the host port
    assert names({"expose": ["80"]}, facts=get) == ["c5"]
    assert names({"expose": ["50-60/udp"]}, facts=get) == ["c4"]
    assert names({"expose": ["53"]}, facts=get) == []             # tcp by default
    assert names({"health": ["healthy", "starting"]}, facts=get) == ["c5"]
    assert names({"volume": ["vol1"]}, facts=get) == ["c5"]
    assert names({"volume": ["/mnt"]}, facts=get) == ["c4"]
    assert names({"volume": ["/host/dir"]}, facts=get) == ["c4"]  # unnamed mounts by source
    assert names({"volume": ["/var/lib/x"]}, facts=get) == []     # named ones by name only


@pytest.mark.parametrize("flt, err, message", [
    ({"foo": ["1"]}, InvalidParameter, "invalid filter 'foo'"),
    ({"status": ["bogus"]}, InvalidParameter, "invalid filter 'status=bogus'"),
    ({"is-task": ["maybe"]}, InvalidParameter, "invalid filter 'is-task=[maybe]'"),
    ({"health": ["bad"]}, InvalidParameter, "Unrecognised filter value for health: bad"),
    ({"exited": ["x"]}, EngineError, 'strconv.Atoi: parsing "x": invalid syntax'),
    ({"before": ["nope"]}, EngineError, "no such container nope"),
    ({"since": ["05"]}, EngineError, "no such container 05"),   # a prefix is not enough here
    ({"publish": ["80:80"]}, EngineError, "filter for 'publish' should not contain ':': 80:80"),
    ({"publish": ["abc"]}, EngineError,
     'error while looking up for publish abc: strconv.ParseUint: parsing "abc": invalid syntax'),
    ({"expose": ["80-x"]}, EngineError,
     'error while looking up for expose 80-x: strconv.ParseUint: parsing "x": invalid syntax'),
    ({"publish": ["90-80"]}, EngineError,
     "error while looking up for publish 90-80: Invalid range specified for the Port: 90-80"),
    ({"publish": ["70000"]}, EngineError,
     'error while looking up for publish 70000: strconv.ParseUint: parsing "70000": value out of range'),
    ({"publish": [""]}, EngineError, "error while looking up for publish : Empty string specified for ports."),
])
def test_errors(flt: dict, err: type, message: str) -> None:
    with pytest.raises(err) as info:
        names(flt)
    assert type(info.value) is err
    assert info.value.message == message


def test_encoded_summaries_reuse_and_refresh() -> None:
    enc = EncodedSummaries()
    a = {"Id": "a", "Names": ["/a"], "State": "running", "Status": "Up 1 second", "Labels": {"k": "<v>"}}
    b = {"Id": "b", "Status": "Created"}
    first = enc.encode([a, b])
    assert json.loads(first) == [a, b]
    assert b"\\u003cv\\u003e" in first                    # Go's HTML escaping kept
    a2 = dict(a, Status="Up 2 seconds")
    assert json.loads(enc.encode([a2, b])) == [a2, b]      # the clock-driven field is always fresh
    a3 = dict(a2, State="paused", Status="Up 2 seconds (Paused)")
    assert json.loads(enc.encode([a3])) == [a3]             # any other change re-encodes
    assert enc.encode([]) == b"[]\n"
