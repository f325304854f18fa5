"""`docker events`: past events by time window, and a live stream (what compose watches)."""
from __future__ import annotations

import json
import time

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import StreamReader, cli_popen, ok, since_now, stop_proc, until_now

BUSYBOX = "busybox"


def _now() -> str:
    return f"{time.time() - 1:.0f}"  # a second back: event times are whole seconds in this filter


def test_past_container_events(daemon: Daemon, busybox: str, name: str) -> None:
    since = _now()
    ok(daemon.cli("run", "--rm", "--name", name, "-l", "evt=1", BUSYBOX, "true"))
    until = f"{time.time() + 1:.0f}"
    out = ok(daemon.cli("events", "--since", since, "--until", until, "--filter", f"container={name}",
                        "--format", "{{json .}}"))
    events = [json.loads(line) for line in out.splitlines()]
    actions = [e["Action"] for e in events]
    assert actions == ["create", "attach", "start", "die", "destroy"]
    for e in events:
        assert e["Type"] == "container" and e["scope"] == "local"
        assert e["Actor"]["Attributes"]["name"] == name
        assert e["Actor"]["Attributes"]["image"] == BUSYBOX
        assert e["Actor"]["Attributes"]["evt"] == "1", "container labels are event attributes"
        assert isinstance(e["timeNano"], int) and e["time"] == e["timeNano"] // 10**9
    die = events[3]
    assert die["Actor"]["Attributes"]["exitCode"] == "0"


def test_live_events_stream(daemon: Daemon, busybox: str, name: str) -> None:
    # --since makes the stream start in the past, so nothing is lost before it is connected.
    follower = cli_popen(daemon, "events", "--since", _now(), "--filter", f"container={name}",
                         "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}")
    try:
        reader = StreamReader(follower)
        ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", "while :; do sleep 0.05; done"))
        reader.read_until("start")
        ok(daemon.cli("kill", name))
        out = reader.read_until("die 137")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        assert lines[:2] == ["create", "start"]
        assert "kill" in lines[2] and lines[-1] == "die 137"
    finally:
        stop_proc(follower)


def test_events_docker_py_decode(client, busybox: str, name: str) -> None:
    since = int(time.time()) - 1
    client.containers.create(BUSYBOX, ["true"], name=name)
    until = int(time.time()) + 1
    events = list(client.events(since=since, until=until, decode=True, filters={"container": name}))
    assert [e["Action"] for e in events] == ["create"]
    assert events[0]["Actor"]["Attributes"]["name"] == name


# Newer Docker adds these attributes; dockerd 20.10 does not have them.
NEWER_ATTRIBUTES = {"die": {"execDuration"}}
BASE = {"image", "name", "k"}


def _session_events(daemon: Daemon, since: str, cid: str) -> list[tuple[str, str, frozenset[str]]]:
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(),
                        "--filter", f"container={cid}", "--format", "{{json .}}"))
    got = []
    for line in out.splitlines():
        e = json.loads(line)
        keys = set(e["Actor"]["Attributes"]) - NEWER_ATTRIBUTES.get(e["Action"], set())
        assert e["Actor"]["ID"] == cid and e["scope"] == "local"
        got.append((e["Type"], e["Action"], frozenset(keys)))
    return got


def test_scripted_session_emits_dockerds_events(daemon: Daemon, busybox: str, name: str) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = ok(daemon.cli("create", "-t", "--name", name, "-l", "k=v", BUSYBOX, "sh", "-c",
                        'trap "exit 0" TERM; while :; do sleep 0.05; done')).strip()
    ok(daemon.cli("start", name))
    assert daemon.cli("exec", name, "sh", "-c", "exit 3").returncode == 3
    resp = daemon.raw("POST", f"/containers/{cid}/resize?h=20&w=70")
    assert resp.status == 200
    ok(daemon.cli("rename", name, name + "-2"))
    ok(daemon.cli("kill", "-s", "USR1", cid))
    ok(daemon.cli("restart", "-t", "5", cid))
    ok(daemon.cli("stop", cid))
    ok(daemon.cli("rm", cid))
    c = "container"
    expected = [
        (c, "create", BASE), (c, "start", BASE),
        (c, "exec_create: sh -c exit 3", BASE | {"execID"}), (c, "exec_start: sh -c exit 3", BASE | {"execID"}),
        (c, "exec_die", BASE | {"execID", "exitCode"}),
        (c, "resize", BASE | {"height", "width"}),
        (c, "rename", BASE | {"oldName"}),
        (c, "kill", BASE | {"signal"}),
        (c, "kill", BASE | {"signal"}), (c, "die", BASE | {"exitCode"}), (c, "stop", BASE), (c, "start", BASE),
        (c, "restart", BASE),
        (c, "kill", BASE | {"signal"}), (c, "die", BASE | {"exitCode"}), (c, "stop", BASE),
        (c, "destroy", BASE),
    ]
    assert _session_events(daemon, since, cid) == [(t, a, frozenset(k)) for t, a, k in expected]
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(), "--filter", f"container={cid}",
                        "--format", "{{json .}}"))
    attrs = [(e["Action"], e["Actor"]["Attributes"]) for e in map(json.loads, out.splitlines())]
    kills = [a["signal"] for act, a in attrs if act == "kill"]
    assert kills == ["10", "15", "15"]
    assert [a["exitCode"] for act, a in attrs if act in ("die", "exec_die")] == ["3", "0", "0"]
    assert [a["oldName"] for act, a in attrs if act == "rename"] == [f"/{name}"]
    assert [(a["height"], a["width"]) for act, a in attrs if act == "resize"] == [("20", "70")]
    assert all(a["name"] == (name if i < 6 else name + "-2") for i, (_, a) in enumerate(attrs))


def test_healthcheck_probe_events(daemon: Daemon, busybox: str, name: str) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = ok(
        daemon.cli(
            "run",
            "-d",
            "--name",
            name,
            "-l",
            "k=v",
            "--health-cmd",
            "exit 0",
            "--health-interval",
            "100ms",
            BUSYBOX,
            "sh",
            "-c",
            "while :; do sleep 0.05; done",
        )
    ).strip()

    def healthy() -> bool:
        return any(a == "health_status: healthy" for _, a, _ in _session_events(daemon, since, cid))
    from conformance_tests.harness import wait_until
    wait_until(healthy, 20, "health_status: healthy")
    got = _session_events(daemon, since, cid)
    assert ("container", "exec_create: /bin/sh -c exit 0", frozenset(BASE | {"execID"})) in got
    ok(daemon.cli("exec", name, "true"))
    got = _session_events(daemon, since, cid)
    # dockerd: entrypoint, a space, the arguments -- a trailing space when there are none
    assert ("container", "exec_create: true ", frozenset(BASE | {"execID"})) in got
    assert ("container", "exec_start: true ", frozenset(BASE | {"execID"})) in got
    assert ("container", "exec_start: /bin/sh -c exit 0", frozenset(BASE | {"execID"})) in got
    assert ("container", "exec_die", frozenset(BASE | {"execID", "exitCode"})) in got
    assert ("container", "health_status: healthy", frozenset(BASE)) in got
    filtered = ok(daemon.cli("events", "--since", since, "--until", until_now(), "--filter", f"container={cid}",
                             "--filter", "event=health_status", "--format", "{{.Action}}")).split("\n")
    assert [f for f in filtered if f] == ["health_status: healthy"]


def test_image_events_name_the_image_id(daemon: Daemon, busybox: str) -> None:
    since = f"{time.time() - 1:.3f}"
    image_id = inspect_id = ok(daemon.cli("image", "inspect", "--format", "{{.Id}}", BUSYBOX)).strip()
    ok(daemon.cli("tag", BUSYBOX, "evtest-tag:1"))
    ok(daemon.cli("rmi", "evtest-tag:1"))
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(), "--filter", "type=image",
                        "--format", "{{json .}}"))
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in events] == [
        ("tag", image_id, "evtest-tag:1"), ("untag", image_id, inspect_id)]
    for e in events:
        assert e["Type"] == "image" and e["scope"] == "local"


def test_relative_since_until_replays_and_exits(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, "-l", "evt-rel=1", BUSYBOX, "true")).strip()
    ok(daemon.cli("start", name))
    assert ok(daemon.cli("wait", name)).strip() == "0"
    # The CLI turns durations into whole-second timestamps (now - d): "0s" would cut off this
    # second's events, so the window ends one second ahead (the stream waits for it, then ends).
    out = ok(daemon.cli("events", "--since", "1m", "--until", "-1s", "--filter", "label=evt-rel=1",
                        "--format", "{{.Actor.ID}} {{.Action}}", timeout=30))
    assert out.splitlines() == [f"{cid} create", f"{cid} start", f"{cid} die"]


def test_filters_select_like_dockerd(daemon: Daemon, busybox: str, name: str) -> None:
    since = since_now()
    cid = ok(daemon.cli("create", "--name", name, "-l", "evt-f=yes", BUSYBOX, "true")).strip()
    ok(daemon.cli("tag", BUSYBOX, "evt-filter:1"))
    ok(daemon.cli("rmi", "evt-filter:1"))
    ok(daemon.cli("rm", name))
    until = until_now()

    def actions(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        out = ok(daemon.cli("events", "--since", since, "--until", until, *args, "--format", "{{.Type}}:{{.Action}}"))
        return out.splitlines()
    assert actions(f"container={cid[:12]}") == ["container:create", "container:destroy"]
    assert actions(f"container={name}", "event=destroy") == ["container:destroy"]
    assert actions("label=evt-f=yes") == ["container:create", "container:destroy"]
    assert actions("label=evt-f=no") == []
    assert actions("type=image", "event=tag", "event=untag") == ["image:tag", "image:untag"]
    image_id = ok(daemon.cli("image", "inspect", "--format", "{{.Id}}", BUSYBOX)).strip()
    assert actions("type=image", f"image={image_id}") == ["image:tag", "image:untag"]
    assert actions("type=image", "image=evt-filter:1") == ["image:tag"]    # untag is named by the ID
    assert actions("type=image", f"image={BUSYBOX}") == []
    assert actions("type=network") == [] and actions("type=volume") == []
    assert actions("scope=swarm") == []
    assert "container:create" in actions(f"image={BUSYBOX}", f"container={name}")


@pytest.mark.reference_differs("dockerd 20.10 accepts unknown event filters")
def test_unknown_filter_is_refused(daemon: Daemon) -> None:
    proc = daemon.cli("events", "--since", "1s", "--until", "0s", "--filter", "bogus=1")
    assert proc.returncode != 0
    assert "invalid filter 'bogus'" in proc.stderr


def test_since_after_until_is_refused(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/events?since=20&until=10")
    assert resp.status == 400
    assert resp.json()["message"] == "`since` time (20) cannot be after `until` time (10)"
