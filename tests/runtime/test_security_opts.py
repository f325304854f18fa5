"""HostConfig security/namespace options -> SpecInput -> config.json (engine/oci/hostopts.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.containers import hostaccess
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.oci import hostopts
from engine.oci.seccomp import Target, default_document, default_profile, to_oci
from engine.oci.spec import SpecInput, build_spec
from engine.types import HostConfig


def _peers(known: dict[str, hostopts.Peer]) -> hostopts.Peers:
    def look(ref: str) -> hostopts.Peer:
        if ref not in known:
            raise NotFound(f"No such container: {ref}")
        return known[ref]
    return look


NO_PEERS = _peers({})


def _spec(hc: HostConfig, peers: hostopts.Peers = NO_PEERS, group_file: str = "", cdir: str = "/nonexistent") -> dict:
    opts = hostopts.spec_options(hc, ["sh"], peers, group_file, cdir, hostaccess.HOST)
    args = opts.pop("args", ["sh"])
    # what the container service adds itself
    own = {"privileged": hc.privileged, "cap_add": tuple(hc.cap_add), "cap_drop": tuple(hc.cap_drop)}
    return build_spec(SpecInput(container_id="c" * 64, rootfs="/r", args=args, hostname="h", **own, **opts))


def _ns(spec: dict) -> dict[str, str | None]:
    return {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}


# ------------------------------------------------------------- security opts
@pytest.mark.parametrize("opts,want", [
    (["no-new-privileges"], hostopts.SecurityOpts(no_new_privileges=True)),
    (["no-new-privileges=false"], hostopts.SecurityOpts()),
    (["no-new-privileges:true"], hostopts.SecurityOpts(no_new_privileges=True)),
    (["seccomp=unconfined", "apparmor=docker-default"], hostopts.SecurityOpts(seccomp="unconfined",
                                                                             apparmor="docker-default")),
    (["label=disable", "label:user:u"], hostopts.SecurityOpts(labels=("disable", "user:u"))),
    (["systempaths=unconfined"], hostopts.SecurityOpts(unconfined_paths=True)),
    (["writable-cgroups=1"], hostopts.SecurityOpts(writable_cgroups=True)),
])
def test_parse_security_opts(opts: list[str], want: hostopts.SecurityOpts) -> None:
    assert hostopts.parse_security_opts(opts) == want


@pytest.mark.parametrize("opt,message", [
    ("foo", 'invalid --security-opt 1: "foo"'),
    ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("systempaths=confined", 'invalid --security-opt 2: "systempaths=confined"'),
])
def test_bad_security_opts(opt: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as ei:
        hostopts.check_create(HostConfig(security_opt=(opt,)), False, NO_PEERS)
    assert ei.value.message == message


@pytest.mark.parametrize("hc,message", [
    (HostConfig(ipc_mode="bogus"), "invalid IPC mode: bogus"),
    (HostConfig(ipc_mode="container:"), "invalid IPC mode: container:"),
    (HostConfig(pid_mode="private"), "invalid PID mode: private"),
    (HostConfig(uts_mode="container:x"), "invalid UTS mode: container:x"),
    (HostConfig(userns_mode="bogus"), "invalid USER mode: bogus"),
    (HostConfig(ipc_mode="container:nope"), "No such container: nope"),
    (HostConfig(pid_mode="container:nope"), "No such container: nope"),
    (HostConfig(device_cgroup_rules=("c 1:3",)), "invalid device cgroup format 'c 1:3'"),
])
def test_create_time_errors(hc: HostConfig, message: str) -> None:
    with pytest.raises(InvalidParameter) as ei:
        hostopts.check_create(hc, False, NO_PEERS)
    assert ei.value.message == message


def test_uts_host_conflicts_with_hostname() -> None:
    hostopts.check_create(HostConfig(uts_mode="host"), False, NO_PEERS)
    with pytest.raises(InvalidParameter) as ei:
        hostopts.check_create(HostConfig(uts_mode="host"), True, NO_PEERS)
    assert ei.value.message == "conflicting options: hostname and the UTS mode"


# ------------------------------------------------------------------ seccomp
def test_seccomp_choices() -> None:
    assert _spec(HostConfig())["linux"]["seccomp"] == default_profile(
        list(_spec(HostConfig())["process"]["capabilities"]["bounding"]))
    assert "seccomp" not in _spec(HostConfig(security_opt=("seccomp=unconfined",)))["linux"]
    assert _spec(HostConfig(security_opt=("seccomp=builtin",)))["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    custom = {"defaultAction": "SCMP_ACT_LOG", "syscalls": [
        {"name": "mount", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["umount2"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    got = _spec(HostConfig(security_opt=("seccomp=" + json.dumps(custom),)))["linux"]["seccomp"]
    assert got["defaultAction"] == "SCMP_ACT_LOG"
    assert [r["names"] for r in got["syscalls"]] == [["umount2"]]   # resolved against the default caps
    admin = _spec(HostConfig(cap_add=("SYS_ADMIN",), security_opt=("seccomp=" + json.dumps(custom),)))
    assert [r["names"] for r in admin["linux"]["seccomp"]["syscalls"]] == [["mount"]]


def test_seccomp_profile_errors_are_start_errors() -> None:
    for text, message in (
        ("notjson", "Decoding seccomp profile failed: invalid character 'o' in literal null (expecting 'u')"),
        ("xyz", "Decoding seccomp profile failed: invalid character 'x' looking for beginning of value"),
        ('{"defaultAction": ', "Decoding seccomp profile failed: unexpected end of JSON input"),
        ('"str"', "Decoding seccomp profile failed: json: cannot unmarshal string into Go value of type "
                  "seccomp.Seccomp"),
        ('{"syscalls": {}}', "Decoding seccomp profile failed: json: cannot unmarshal object into Go struct "
                             "field Seccomp.syscalls of type []*seccomp.Syscall"),
    ):
        hc = HostConfig(security_opt=("seccomp=" + text,))
        hostopts.check_create(hc, False, NO_PEERS)  # accepted at create, like dockerd
        with pytest.raises(EngineError) as ei:
            _spec(hc)
        assert type(ei.value) is EngineError and ei.value.message == message


def test_arch_map_and_architectures_exclusive() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]}
    with pytest.raises(EngineError) as ei:
        _spec(HostConfig(security_opt=("seccomp=" + json.dumps(doc),)))
    assert "use either 'architectures' or 'archMap'" in ei.value.message


def test_default_profile_conditions() -> None:
    doc = default_document()
    old_kernel = to_oci(doc, Target(("CAP_CHOWN",), "x86_64", (4, 4)))
    new_kernel = to_oci(doc, Target(("CAP_CHOWN",), "x86_64", (6, 1)))
    flat = lambda p: {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}  # noqa: E731
    assert "ptrace" not in flat(old_kernel) and "ptrace" in flat(new_kernel)   # minKernel 4.8
    assert "arch_prctl" in flat(new_kernel) and "s390_runtime_instr" not in flat(new_kernel)
    arm = to_oci(doc, Target(("CAP_CHOWN",), "aarch64", (6, 1)))
    assert "arch_prctl" not in flat(arm) and "set_tls" in flat(arm)
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert new_kernel["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_systempaths_unconfined_and_privileged() -> None:
    s = _spec(HostConfig(security_opt=("systempaths=unconfined",)))
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    s = _spec(HostConfig(masked_paths=(), readonly_paths=("/proc/x",)))
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == ["/proc/x"]
    p = _spec(HostConfig(privileged=True))
    assert "seccomp" not in p["linux"] and "maskedPaths" not in p["linux"]
    assert p["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in p["linux"]["devices"])


# --------------------------------------------------------------- namespaces
def test_ipc_modes(tmp_path: Path) -> None:
    assert "ipc" not in _ns(_spec(HostConfig(ipc_mode="host")))
    host = _spec(HostConfig(ipc_mode="host"))
    assert [m for m in host["mounts"] if m["destination"] == "/dev/shm"] == [
        {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]}]
    none = _spec(HostConfig(ipc_mode="none"))
    assert _ns(none)["ipc"] is None and not [m for m in none["mounts"] if m["destination"] == "/dev/shm"]
    donor = hostopts.Peer("d" * 64, 4242, "shareable", str(tmp_path / "donor"))
    joined = _spec(HostConfig(ipc_mode="container:donor"), _peers({"donor": donor}))
    assert _ns(joined)["ipc"] == "/proc/4242/ns/ipc"
    assert [m["source"] for m in joined["mounts"] if m["destination"] == "/dev/shm"] == [
        str(tmp_path / "donor" / "mounts" / "shm")]


def test_ipc_join_errors() -> None:
    private = hostopts.Peer("p" * 64, 4242, "private")
    with pytest.raises(InvalidParameter) as ei:
        _spec(HostConfig(ipc_mode="container:p"), _peers({"p": private}))
    assert ei.value.message == ("failed to join IPC namespace: container p: non-shareable IPC "
                                "(hint: use IpcMode:shareable for the donor container)")
    stopped = hostopts.Peer("s" * 64, 0, "shareable")
    for mode, what in (("ipc_mode", "IPC"), ("pid_mode", "PID")):
        with pytest.raises(Conflict) as ei:
            _spec(HostConfig(**{mode: "container:s"}), _peers({"s": stopped}))
        assert ei.value.message == f"failed to join {what} namespace: container s is not running"
        # removed between create and start
        with pytest.raises(InvalidParameter) as ei:
            _spec(HostConfig(**{mode: "container:gone"}))
        assert ei.value.message == f"failed to join {what} namespace: No such container: gone"


def test_pid_and_uts_modes() -> None:
    assert "pid" not in _ns(_spec(HostConfig(pid_mode="host")))
    other = hostopts.Peer("o" * 64, 77, "private")
    assert _ns(_spec(HostConfig(pid_mode="container:o"), _peers({"o": other})))["pid"] == "/proc/77/ns/pid"
    s = _spec(HostConfig(uts_mode="host"))
    assert "uts" not in _ns(s) and {"mount", "network", "pid", "ipc"} <= set(_ns(s))
    assert s["hostname"] == "" and _spec(HostConfig())["hostname"] == "h"


def test_shareable_shm_is_a_host_tmpfs(tmp_path: Path) -> None:
    cdir = tmp_path / "c"
    try:
        hc = HostConfig(ipc_mode="shareable", shm_size=1 << 20)
        s = _spec(hc, cdir=str(cdir))
        shm = cdir / "mounts" / "shm"
        assert [m["source"] for m in s["mounts"] if m["destination"] == "/dev/shm"] == [str(shm)]
        assert not shm.exists()                  # the spec options mount nothing: the bundle step does
        assert hostopts.shareable_shm_size(hc) == 1 << 20
        assert hostopts.shareable_shm_size(HostConfig()) is None
        assert hostaccess.mount_shareable_shm(str(cdir), 1 << 20) == str(shm)
        line = next(ln for ln in Path("/proc/self/mounts").read_text().splitlines() if ln.split()[1] == str(shm))
        assert line.split()[2] == "tmpfs" and "size=1024k" in line
    finally:
        hostaccess.release_shm(str(cdir))
    assert not any(ln.split()[1] == str(cdir / "mounts" / "shm")
                   for ln in Path("/proc/self/mounts").read_text().splitlines())


# ------------------------------------------------------- sysctls, devices...
def test_sysctls_on_top_of_defaults() -> None:
    s = _spec(HostConfig(sysctls={"kernel.shmmax": "1", "net.ipv4.ip_unprivileged_port_start": "1024"}))
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "1024",
                                    "net.ipv4.ping_group_range": "0 2147483647", "kernel.shmmax": "1"}


def test_devices_and_rules() -> None:
    s = _spec(HostConfig(devices=(("/dev/null", "/dev/mynull", "rz"),), device_cgroup_rules=("c 240:* rm", "a *:* r")))
    assert [(d["path"], d["type"], d["major"], d["minor"]) for d in s["linux"]["devices"]] == [
        ("/dev/mynull", "c", 1, 3)
    ]
    rules = s["linux"]["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in rules
    assert rules[-3:] == [{"allow": True, "type": "c", "major": 240, "access": "rm"},
                          {"allow": True, "type": "c", "access": "r"}, {"allow": True, "type": "b", "access": "r"}]
    # a directory: every device node below it, mapped under the container path
    d = _spec(HostConfig(devices=(("/dev/", "/dev/host", "r"),)))["linux"]["devices"]
    paths = {x["path"] for x in d}
    assert "/dev/host/null" in paths and all(p.startswith("/dev/host/") for p in paths)
    with pytest.raises(EngineError) as ei:
        _spec(HostConfig(devices=(("/nonexistent", "", "rwm"),)))
    assert ei.value.message == ('error gathering device information while adding custom device "/nonexistent": '
                                "no such file or directory")


def test_group_add() -> None:
    group_file = "root:x:0:\naudio:x:29:\nstaff:x:50:\n"
    s = _spec(HostConfig(group_add=("audio", "1234", "staff")), group_file=group_file)
    assert s["process"]["user"]["additionalGids"] == [29, 1234, 50]
    with pytest.raises(EngineError) as ei:
        _spec(HostConfig(group_add=("video",)), group_file=group_file)
    assert ei.value.message == "Unable to find group video: no matching entries in group file"


def test_init() -> None:
    s = _spec(HostConfig(init=True))
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    mount = [m for m in s["mounts"] if m["destination"] == "/sbin/docker-init"]
    assert len(mount) == 1 and mount[0]["options"] == ["bind", "ro"] and Path(mount[0]["source"]).is_file()
    assert _spec(replace(HostConfig(), init=False))["process"]["args"] == ["sh"]


def test_writable_cgroups() -> None:
    def cg(hc: HostConfig) -> list[str]:
        return next(m["options"] for m in _spec(hc)["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert cg(HostConfig())[0] == "ro" and cg(HostConfig(privileged=True))[0] == "rw"
    assert cg(HostConfig(security_opt=("writable-cgroups=true",)))[0] == "rw"
    assert cg(HostConfig(privileged=True, security_opt=("writable-cgroups=false",)))[0] == "ro"


def test_init_refuses_sysctls_outside_own_namespaces() -> None:
    from engine.runtime.init import sysctl_refused as _sysctl_refused

    own = {"mount": None, "network": None, "uts": None, "ipc": None, "pid": None}
    for key in ("net.ipv4.ip_forward", "kernel.shmmax", "fs.mqueue.msg_max", "kernel.domainname"):
        assert _sysctl_refused(key, own) == ""
    assert _sysctl_refused("net.ipv4.ip_forward", {"mount": None}) == \
        'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'
    assert _sysctl_refused("kernel.msgmax", {"mount": None}) == \
        'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace'
    assert _sysctl_refused("kernel.panic", own) == 'sysctl "kernel.panic" is not in a separate kernel namespace'


def test_host_config_fields_survive_the_database_round_trip() -> None:
    from engine.types import Container, ContainerConfig, container_from_jsonable, to_jsonable

    hc = HostConfig(devices=(("/dev/null", "/dev/x", "rw"),), device_cgroup_rules=("c 1:3 r",), group_add=("audio",),
                    ipc_mode="shareable", pid_mode="host", uts_mode="host", userns_mode="host",
                    sysctls={"kernel.shmmax": "1"}, masked_paths=(), readonly_paths=("/proc/x",), init=True)
    c = Container(id="c" * 64, name="n", created="t", image_id="sha256:x", config=ContainerConfig(image="i"),
                  host_config=hc, path="sh", args=())
    back = container_from_jsonable(json.loads(json.dumps(to_jsonable(c))))
    assert back.host_config == hc


@pytest.mark.parametrize("add,drop,want", [
    ((), (), "default"),
    (("CHOWN",), ("chown",), "default"),                       # drop, then add: kept
    (("NET_ADMIN",), ("ALL",), ["CAP_NET_ADMIN"]),
    (("ALL",), ("CAP_CHOWN",), "all-but-chown"),
    (("ALL",), ("ALL",), "all"),
    (("cap_net_admin", "NET_ADMIN"), ("KILL",), "default-kill+net_admin"),
])
def test_cap_add_drop_rules(add: tuple[str, ...], drop: tuple[str, ...], want: object) -> None:
    from engine.oci.caps import CAPABILITIES, DEFAULT_CAPABILITIES

    everything = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
    expected = {
        "default": list(DEFAULT_CAPABILITIES),
        "all": everything,
        "all-but-chown": [c for c in everything if c != "CAP_CHOWN"],
        "default-kill+net_admin": [c for c in DEFAULT_CAPABILITIES if c != "CAP_KILL"] + ["CAP_NET_ADMIN"],
    }.get(want, want) if isinstance(want, str) else want
    caps = _spec(HostConfig(cap_add=add, cap_drop=drop))["process"]["capabilities"]["bounding"]
    assert sorted(caps) == sorted(expected)  # type: ignore[arg-type]
