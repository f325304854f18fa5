"""build_spec against what dockerd 20.10 writes (reference config.json fields)."""
from __future__ import annotations

from engine.oci.caps import DEFAULT_CAPABILITIES
from engine.oci.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, SpecInput, build_spec


def _inp(**kw: object) -> SpecInput:
    base = {"container_id": "c" * 64, "rootfs": "/r/rootfs", "args": ["sleep", "1000"], "hostname": "e6ac8bdb2307",
                "env": ["PATH=/usr/bin", "HOSTNAME=e6ac8bdb2307"], "cgroups_path": "/docker/" + "c" * 64}
    base.update(kw)
    return SpecInput(**base)  # type: ignore[arg-type]


def test_root_defaults_match_reference() -> None:
    s = build_spec(_inp())
    assert s["ociVersion"] == "1.0.2-dev"
    p = s["process"]
    assert "terminal" not in p
    assert p["user"] == {"uid": 0, "gid": 0}
    assert p["cwd"] == "/"
    assert p["oomScoreAdj"] == 0
    caps = p["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert "inheritable" not in caps and "ambient" not in caps
    assert s["root"] == {"path": "/r/rootfs"}
    assert s["hostname"] == "e6ac8bdb2307"
    assert [(m["destination"], m["type"], m["source"]) for m in s["mounts"]] == [
        ("/proc", "proc", "proc"), ("/dev", "tmpfs", "tmpfs"), ("/dev/pts", "devpts", "devpts"),
        ("/sys", "sysfs", "sysfs"), ("/sys/fs/cgroup", "cgroup", "cgroup"), ("/dev/mqueue", "mqueue", "mqueue"),
        ("/dev/shm", "tmpfs", "shm")]
    opts = {m["destination"]: m["options"] for m in s["mounts"]}
    assert opts["/dev"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert opts["/dev/pts"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    assert opts["/sys"] == ["nosuid", "noexec", "nodev", "ro"]
    assert opts["/sys/fs/cgroup"] == ["ro", "nosuid", "noexec", "nodev"]
    assert opts["/dev/shm"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    lx = s["linux"]
    assert lx["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
    assert lx["cgroupsPath"] == "/docker/" + "c" * 64
    assert lx["namespaces"] == [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]
    assert lx["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert lx["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in lx["resources"]["devices"]
    assert lx["resources"]["memory"] == {"disableOOMKiller": False}


def test_non_root_user_gets_bounding_only() -> None:
    s = build_spec(_inp(uid=1000, gid=1000, additional_gids=[1000, 2000]))
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}
    assert list(s["process"]["capabilities"]) == ["bounding"]


def test_tty_readonly_domainname_rlimits_nnp() -> None:
    s = build_spec(_inp(tty=True, readonly_rootfs=True, domainname="example.com", no_new_privileges=True,
                        rlimits=(("nofile", 100, 200),)))
    assert next(iter(s["process"])) == "terminal" and s["process"]["terminal"] is True
    assert s["root"]["readonly"] is True
    assert s["domainname"] == "example.com"
    assert s["process"]["noNewPrivileges"] is True
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]


def test_extra_mounts_append_and_replace_defaults() -> None:
    s = build_spec(_inp(shm_size=1024, extra_mounts=[
        ("/etc/hosts", "bind", "/data/hosts", ("rbind", "rprivate")),
        ("/dev/mqueue", "bind", "/dev/mqueue", ("rbind",)),
    ]))
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.count("/dev/mqueue") == 1
    assert dests[-2:] == ["/etc/hosts", "/dev/mqueue"]
    assert s["mounts"][-2] == {"destination": "/etc/hosts", "type": "bind", "source": "/data/hosts",
                               "options": ["rbind", "rprivate"]}
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert "size=1024" in shm["options"]


def test_capability_add_drop() -> None:
    caps = build_spec(_inp(cap_add=("net_admin",), cap_drop=("CAP_CHOWN", "kill")))["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["bounding"]
    assert "CAP_CHOWN" not in caps["bounding"] and "CAP_KILL" not in caps["bounding"]
    caps = build_spec(_inp(cap_drop=("ALL",), cap_add=("CHOWN",)))["process"]["capabilities"]
    assert caps["bounding"] == ["CAP_CHOWN"]


def test_privileged() -> None:
    s = build_spec(_inp(privileged=True))
    assert "CAP_SYS_ADMIN" in s["process"]["capabilities"]["bounding"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysm = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysm["options"]


def test_namespace_paths_and_host_network() -> None:
    s = build_spec(_inp(namespaces=(("mount", None), ("network", "/run/netns/x"), ("uts", None), ("pid", None))))
    assert {"type": "network", "path": "/run/netns/x"} in s["linux"]["namespaces"]
    s = build_spec(_inp(namespaces=(("mount", None), ("uts", None), ("pid", None), ("ipc", None))))
    assert "sysctl" not in s["linux"]


def test_resources_merge() -> None:
    s = build_spec(_inp(resources={"memory": {"limit": 1 << 20}, "pids": {"limit": 10}}))
    r = s["linux"]["resources"]
    assert r["memory"] == {"disableOOMKiller": False, "limit": 1 << 20}
    assert r["pids"] == {"limit": 10}


def test_devices_are_created_and_allowed() -> None:
    from engine.containers.devices import device_from_path, host_devices
    d = device_from_path("/dev/null", "/dev/mynull", "rw")
    assert d["type"] == "c" and (d["major"], d["minor"]) == (1, 3)
    s = build_spec(_inp(devices=(d,)))
    assert s["linux"]["devices"] == [{k: v for k, v in d.items() if k != "access"}]
    assert s["linux"]["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": 1,
        "minor": 3,
        "access": "rw",
    }
    assert any(x["path"] == "/dev/null" for x in host_devices())
    import pytest

    from engine.errors import InvalidParameter
    with pytest.raises(InvalidParameter):
        device_from_path("/etc/passwd")


def _allowed(seccomp: dict) -> set[str]:
    return {n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def test_seccomp_in_spec() -> None:
    s = build_spec(_inp())
    sc = s["linux"]["seccomp"]
    assert (sc["defaultAction"], sc["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert "read" in _allowed(sc) and "keyctl" not in _allowed(sc) and "mount" not in _allowed(sc)
    assert not any("includes" in r or "excludes" in r for r in sc["syscalls"])  # resolved per container
    assert "seccomp" not in build_spec(_inp(seccomp=False))["linux"]
    assert "seccomp" not in build_spec(_inp(privileged=True))["linux"]
    custom = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    assert build_spec(_inp(seccomp_profile=custom))["linux"]["seccomp"] is custom
    admin = build_spec(_inp(cap_add=("SYS_ADMIN",)))["linux"]["seccomp"]
    assert "mount" in _allowed(admin) and "clone3" in _allowed(admin)
    assert not any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO" for r in admin["syscalls"])
