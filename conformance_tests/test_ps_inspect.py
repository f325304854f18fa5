"""`docker ps` flags and filters; container inspect shape."""
from __future__ import annotations

import json
import uuid

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok, wait_for_log

BUSYBOX = "busybox"


@pytest.fixture
def fleet(daemon: Daemon, busybox: str) -> dict[str, str]:
    """Three containers: running (label tier=web), exited 3 (tier=db), created; name -> id."""
    tag = uuid.uuid4().hex[:6]
    names = {"run": f"ps-run-{tag}", "ex": f"ps-ex-{tag}", "new": f"ps-new-{tag}"}
    ids = {}
    ids["run"] = ok(daemon.cli("run", "-d", "--name", names["run"], "-l", "tier=web", "-l", f"set={tag}",
                               BUSYBOX, "sh", "-c", "echo ready; while :; do sleep 0.05; done")).strip()
    proc = daemon.cli("run", "--name", names["ex"], "-l", "tier=db", "-l", f"set={tag}", BUSYBOX, "sh", "-c", "exit 3")
    assert proc.returncode == 3
    ids["ex"] = inspect(daemon, names["ex"])["Id"]
    ids["new"] = ok(daemon.cli("create", "--name", names["new"], "-l", f"set={tag}", BUSYBOX, "true")).strip()
    wait_for_log(daemon, names["run"], "ready")
    return {"tag": tag, "image": busybox, **{f"{k}_name": v for k, v in names.items()}, **ids}


def names_of(daemon: Daemon, *args: str) -> set[str]:
    return set(ok(daemon.cli("ps", *args, "--format", "{{.Names}}")).split())


def test_ps_default_shows_running_only(daemon: Daemon, fleet: dict[str, str]) -> None:
    shown = names_of(daemon)
    assert fleet["run_name"] in shown
    assert fleet["ex_name"] not in shown and fleet["new_name"] not in shown


def test_ps_all_quiet_no_trunc(daemon: Daemon, fleet: dict[str, str]) -> None:
    assert {fleet["run_name"], fleet["ex_name"], fleet["new_name"]} <= names_of(daemon, "-a")
    quiet = ok(daemon.cli("ps", "-aq")).split()
    assert {fleet["run"][:12], fleet["ex"][:12], fleet["new"][:12]} <= set(quiet)
    full = ok(daemon.cli("ps", "-aq", "--no-trunc")).split()
    assert {fleet["run"], fleet["ex"], fleet["new"]} <= set(full)
    table = ok(daemon.cli("ps", "-a"))
    header = table.splitlines()[0].split()
    assert header[:3] == ["CONTAINER", "ID", "IMAGE"] and "STATUS" in header and header[-1] == "NAMES"
    assert "Exited (3)" in table and "Created" in table and "Up " in table


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("status=exited", {"ex"}),
        ("status=created", {"new"}),
        ("status=running", {"run"}),
        ("exited=3", {"ex"}),
        ("label=tier=web", {"run"}),
        ("label=tier", {"run", "ex"}),
        ("ancestor=busybox", {"run", "ex", "new"}),
    ],
)
def test_ps_filters(daemon: Daemon, fleet: dict[str, str], flt: str, expected: set[str]) -> None:
    shown = names_of(daemon, "-a", "--filter", flt, "--filter", f"label=set={fleet['tag']}")
    assert shown == {fleet[f"{k}_name"] for k in expected}


def test_ps_filter_name_and_id(daemon: Daemon, fleet: dict[str, str]) -> None:
    assert names_of(daemon, "-a", "--filter", f"name={fleet['ex_name']}") == {fleet["ex_name"]}
    # name filters match substrings
    assert names_of(daemon, "-a", "--filter", f"name=ps-ex-{fleet['tag']}"[:-2]) == {fleet["ex_name"]}
    assert names_of(daemon, "-a", "--filter", f"id={fleet['new'][:10]}") == {fleet["new_name"]}


def test_ps_docker_py(client, fleet: dict[str, str]) -> None:
    running = {c.name for c in client.containers.list(filters={"label": f"set={fleet['tag']}"})}
    assert running == {fleet["run_name"]}
    everything = client.containers.list(all=True, filters={"label": f"set={fleet['tag']}"})
    assert {c.name for c in everything} == {fleet["run_name"], fleet["ex_name"], fleet["new_name"]}
    raw = client.api.containers(all=True, filters={"label": f"set={fleet['tag']}"})
    for c in raw:
        for key in ("Id", "Names", "Image", "ImageID", "Command", "Created", "State", "Status", "Ports",
                    "Labels", "HostConfig", "NetworkSettings", "Mounts"):
            assert key in c, key
        assert c["Names"][0].startswith("/")
    states = {c["Names"][0][1:]: c["State"] for c in raw}
    assert states == {fleet["run_name"]: "running", fleet["ex_name"]: "exited", fleet["new_name"]: "created"}


def test_inspect_shape(daemon: Daemon, fleet: dict[str, str], busybox: str) -> None:
    info = inspect(daemon, fleet["run_name"])
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel",
                "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"):
        assert key in info, key
    st = info["State"]
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
                "StartedAt", "FinishedAt"):
        assert key in st, key
    assert st["Status"] == "running" and st["Running"] is True and st["Pid"] > 0
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    cfg = info["Config"]
    for key in ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
                "OnBuild", "Labels"):
        assert key in cfg, key
    assert cfg["Image"] == "busybox"
    assert info["Image"] == busybox
    assert cfg["Labels"]["tier"] == "web"
    hc = info["HostConfig"]
    for key in ("Binds", "NetworkMode", "RestartPolicy", "AutoRemove", "LogConfig", "Privileged", "Memory",
                "CpuShares", "PortBindings", "CapAdd", "CapDrop", "ReadonlyRootfs"):
        assert key in hc, key
    assert hc["LogConfig"]["Type"] == "json-file"
    ns = info["NetworkSettings"]
    for key in ("Ports", "SandboxKey", "Networks"):
        assert key in ns, key
    assert info["Mounts"] == []
    assert info["Name"] == f"/{fleet['run_name']}"


def test_inspect_exited_state(daemon: Daemon, fleet: dict[str, str]) -> None:
    st = inspect(daemon, fleet["ex_name"])["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 3 and st["Pid"] == 0 and st["Running"] is False
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"
    created = inspect(daemon, fleet["new_name"])["State"]
    assert created["Status"] == "created" and created["StartedAt"] == "0001-01-01T00:00:00Z"


def test_inspect_unknown(daemon: Daemon) -> None:
    proc = daemon.cli("container", "inspect", "no-such-ctr-x")
    assert proc.returncode == 1
    assert "No such container: no-such-ctr-x" in proc.stderr


# ------------------------------------------------------------------ filters at full fidelity
def api_names(daemon: Daemon, query: str) -> list[str]:
    resp = daemon.raw("GET", f"/containers/json?{query}")
    assert resp.status == 200, resp.body
    return [c["Names"][0][1:] for c in resp.json()]


def q(filters: dict, **params: str) -> str:  # type: ignore[type-arg]
    from urllib.parse import urlencode
    return urlencode({"filters": json.dumps(filters), **params})


def test_ps_before_since_limit(daemon: Daemon, fleet: dict[str, str]) -> None:
    """Created in order run, ex, new: before/since walk the list newest first."""
    mine = {"label": [f"set={fleet['tag']}"]}
    assert api_names(daemon, q({**mine, "before": [fleet["new_name"]]}, all="1")) == [fleet["ex_name"],
                                                                                        fleet["run_name"]]
    assert api_names(daemon, q({**mine, "since": [fleet["run_name"]]}, all="1")) == [fleet["new_name"],
                                                                                       fleet["ex_name"]]
    assert api_names(daemon, q({**mine, "before": [fleet["new"]], "since": [fleet["run"]]}, all="1")) == [
        fleet["ex_name"]]
    # a positive limit shows stopped containers without all=1, newest first
    assert api_names(daemon, q(mine, limit="2")) == [fleet["new_name"], fleet["ex_name"]]
    assert api_names(daemon, q(mine, limit="-3")) == [fleet["run_name"]]
    # the CLI's -n/--last and -l
    last = ok(daemon.cli("ps", "-n", "1", "--filter", f"label=set={fleet['tag']}", "--format", "{{.Names}}"))
    assert last.split() == [fleet["new_name"]]


def test_ps_status_implies_all_exited_does_not(daemon: Daemon, fleet: dict[str, str]) -> None:
    mine = {"label": [f"set={fleet['tag']}"]}
    assert api_names(daemon, q({**mine, "status": ["exited"]})) == [fleet["ex_name"]]
    assert api_names(daemon, q({**mine, "exited": ["3"]})) == []
    assert api_names(daemon, q({**mine, "exited": ["3"]}, all="1")) == [fleet["ex_name"]]
    # never started: not "exited 0"
    assert api_names(daemon, q({**mine, "exited": ["0"]}, all="1")) == []


def test_ps_name_id_label_rules(daemon: Daemon, fleet: dict[str, str]) -> None:
    mine = {"label": [f"set={fleet['tag']}"]}
    assert api_names(daemon, q({**mine, "name": [f"^{fleet['ex_name']}$"]}, all="1")) == [fleet["ex_name"]]
    assert api_names(daemon, q({**mine, "name": [f"^/{fleet['ex_name']}$"]}, all="1")) == [fleet["ex_name"]]
    assert api_names(daemon, q({**mine, "name": ["["]}, all="1")) == []
    assert api_names(daemon, q({**mine, "id": [fleet["run"][:12]]}, all="1")) == [fleet["run_name"]]
    assert api_names(daemon, q({**mine, "id": [fleet["run"][3:15]]}, all="1")) == []   # a prefix, not a substring
    assert api_names(daemon, q({**mine, "label": ["tier=web"]}, all="1")) == [fleet["run_name"]]
    assert api_names(daemon, q({**mine, "label": ["tier!=web"]}, all="1")) == []
    # the old map form of filters
    assert api_names(daemon, q({"label": {f"set={fleet['tag']}": True}, "status": {"created": True}})) == [
        fleet["new_name"]]


def test_ps_health_task_network_volume_ports(daemon: Daemon, fleet: dict[str, str]) -> None:
    mine = {"label": [f"set={fleet['tag']}"]}
    everyone = [fleet["new_name"], fleet["ex_name"], fleet["run_name"]]
    assert api_names(daemon, q({**mine, "health": ["none"]}, all="1")) == everyone
    assert api_names(daemon, q({**mine, "health": ["healthy", "starting"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "is-task": ["false"]}, all="1")) == everyone
    assert api_names(daemon, q({**mine, "is-task": ["true"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "network": ["bridge"]}, all="1")) == everyone
    assert api_names(daemon, q({**mine, "network": ["no-such-net"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "volume": ["/nowhere"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "publish": ["8080"], "expose": ["80-90/udp"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "ancestor": ["no-such-image:x"]}, all="1")) == []
    assert api_names(daemon, q({**mine, "ancestor": [fleet["image"][:19]]}, all="1")) == everyone


@pytest.mark.parametrize(
    "filters, status, message",
    [
        ({"foo": ["1"]}, 400, "invalid filter 'foo'"),
        ({"status": ["bogus"]}, 400, "invalid filter 'status=bogus'"),
        ({"is-task": ["maybe"]}, 400, "invalid filter 'is-task=[maybe]'"),
        ({"health": ["bad"]}, 400, "Unrecognised filter value for health: bad"),
        ({"exited": ["x"]}, 500, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"before": ["no-such-ctr"]}, 500, "no such container no-such-ctr"),
        ({"since": ["no-such-ctr"]}, 500, "no such container no-such-ctr"),
        ({"publish": ["80:80"]}, 500, "filter for 'publish' should not contain ':': 80:80"),
        (
            {"expose": ["abc"]},
            500,
            'error while looking up for expose abc: strconv.ParseUint: parsing "abc": invalid syntax',
        ),
        (
            {"publish": ["90-80"]},
            500,
            "error while looking up for publish 90-80: Invalid range specified for the Port: 90-80",
        ),
        (
            {"publish": ["70000"]},
            500,
            'error while looking up for publish 70000: strconv.ParseUint: parsing "70000": value out of range',
        ),
        ({"publish": [""]}, 500, "error while looking up for publish : Empty string specified for ports."),
    ],
)
def test_ps_filter_errors(daemon: Daemon, filters: dict, status: int, message: str) -> None:  # type: ignore[type-arg]
    resp = daemon.raw("GET", f"/containers/json?{q(filters, all='1')}")
    assert resp.status == status
    # dockerd 20.10 capitalises "Invalid filter"; newer Docker does not
    assert resp.message.lower() == message.lower()


def test_ps_bad_limit(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/containers/json?limit=abc")
    assert resp.status == 500 and resp.message == 'strconv.Atoi: parsing "abc": invalid syntax'


def test_ps_and_inspect_sizes(daemon: Daemon, busybox: str, name: str, client) -> None:  # type: ignore[no-untyped-def]
    ok(daemon.cli("run", "--name", name, BUSYBOX, "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=300"))
    image_size = inspect(daemon, busybox, "image")["Size"]
    raw = client.api.containers(all=True, size=True, filters={"name": f"^{name}$"})
    assert len(raw) == 1
    rw, rootfs = raw[0]["SizeRw"], raw[0]["SizeRootFs"]
    assert 300 * 1024 <= rw < 400 * 1024
    assert rootfs == rw + image_size
    info = json.loads(ok(daemon.cli("inspect", "-s", name)))[0]
    assert info["SizeRw"] == rw and info["SizeRootFs"] == rootfs
    assert "SizeRw" not in inspect(daemon, name)
    table = ok(daemon.cli("ps", "-a", "-s", "--filter", f"name=^{name}$", "--format", "{{.Size}}"))
    assert "virtual" in table
    plain = client.api.containers(all=True, filters={"name": f"^{name}$"})
    assert "SizeRw" not in plain[0] and "SizeRootFs" not in plain[0]


def test_inspect_cli_templates(daemon: Daemon, fleet: dict[str, str]) -> None:
    """The --format templates scripts use work on the shapes we return."""
    def fmt(template: str, ref: str) -> str:
        return ok(daemon.cli("inspect", "-f", template, ref)).rstrip("\n")
    run, new = fleet["run_name"], fleet["new_name"]
    assert fmt("{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}", run) == "running true 0"
    assert fmt("{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}} {{.State.FinishedAt}}", new) == \
        "created 0 0001-01-01T00:00:00Z 0001-01-01T00:00:00Z"
    assert fmt("{{.NetworkSettings.IPAddress}}", new) == ""
    assert fmt("{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{$v.NetworkID}}{{end}}", new).startswith("bridge:")
    assert fmt("{{json .NetworkSettings.Ports}}", run) == "{}"
    assert fmt("{{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.LogConfig.Type}}", new) \
        == "<nil> no json-file"
    assert fmt("{{json .Mounts}} {{.Driver}} {{.Platform}} {{.GraphDriver.Name}}", new) == \
        "[] overlay2 linux overlay2"
    assert fmt("{{.Config.Image}} {{json .Config.Cmd}} {{index .Config.Labels \"tier\"}}", run) == \
        'busybox ["sh","-c","echo ready; while :; do sleep 0.05; done"] web'
    assert fmt("{{.Name}} {{.RestartCount}} {{len .Id}}", new) == f"/{new} 0 64"
    for path in ("LogPath", "HostsPath", "ResolvConfPath", "HostnamePath"):
        assert fmt("{{." + path + "}}", run).startswith("/")


def test_inspect_pids_limit(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "--pids-limit", "50", BUSYBOX, "true"))
    assert inspect(daemon, name)["HostConfig"]["PidsLimit"] == 50
    ok(daemon.cli("create", "--name", name + "-u", "--pids-limit", "-1", BUSYBOX, "true"))
    assert inspect(daemon, name + "-u")["HostConfig"]["PidsLimit"] is None


def test_ps_cli_templates(daemon: Daemon, fleet: dict[str, str]) -> None:
    rows = ok(daemon.cli("ps", "-a", "--no-trunc", "--filter", f"label=set={fleet['tag']}", "--format",
                         "{{.Names}}|{{.Command}}|{{.Networks}}|{{.Mounts}}|{{.Ports}}|{{.State}}|{{.Image}}|"
                         "{{.Label \"tier\"}}|{{.RunningFor}}"))
    by_name = {line.split("|")[0]: line.split("|") for line in rows.splitlines()}
    run = by_name[fleet["run_name"]]
    assert run[1] == '"sh -c \'echo ready; while :; do sleep 0.05; done\'"'
    assert run[2] == "bridge" and run[3] == "" and run[4] == ""
    assert run[5] == "running" and run[6] == "busybox" and run[7] == "web"
    assert run[8].endswith(" ago")
    assert by_name[fleet["ex_name"]][5] == "exited" and by_name[fleet["new_name"]][5] == "created"
    assert by_name[fleet["new_name"]][1] == '"true"'


def test_ps_filters_docker_py(client, fleet: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    mine = {"label": f"set={fleet['tag']}"}

    def names(**kw) -> list[str]:  # type: ignore[no-untyped-def]
        return [c.name for c in client.containers.list(**kw)]
    assert names(all=True, filters={**mine, "status": "exited"}) == [fleet["ex_name"]]
    assert names(all=True, filters={**mine, "exited": 3}) == [fleet["ex_name"]]
    # docker-py sends before/since as bare query parameters, which dockerd ignores (only filters count)
    everyone = [fleet["new_name"], fleet["ex_name"], fleet["run_name"]]
    assert names(all=True, before=fleet["new_name"], filters=mine) == everyone
    assert names(all=True, since=fleet["run_name"], filters=mine) == everyone
    assert names(all=True, filters={**mine, "before": fleet["new_name"]}) == [fleet["ex_name"], fleet["run_name"]]
    assert names(limit=1, filters=mine) == [fleet["new_name"]]
    assert names(all=True, filters={**mine, "ancestor": "busybox", "name": fleet["run_name"]}) == [fleet["run_name"]]
    import docker.errors
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.list(filters={"status": "bogus"})
    assert info.value.status_code == 400
