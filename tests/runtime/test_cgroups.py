"""Cgroup v1/v2 managers on a fake cgroupfs (plain directories)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.runtime import cgroups as cg

MOUNTINFO_HYBRID = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset
"""

MOUNTINFO_V2 = "26 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_parse_mountinfo_hybrid() -> None:
    v1, v2 = cg.parse_mountinfo(MOUNTINFO_HYBRID)
    assert v1 == {"name=systemd": "/sys/fs/cgroup/systemd", "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                  "memory": "/sys/fs/cgroup/memory", "cpuset": "/sys/fs/cgroup/cpuset"}
    assert v2 == "/sys/fs/cgroup/unified"
    assert isinstance(cg.manager_for("/x/y", MOUNTINFO_HYBRID), cg.CgroupV1)
    m = cg.manager_for("/x/y", MOUNTINFO_V2)
    assert isinstance(m, cg.CgroupV2) and m.dir == "/sys/fs/cgroup/x/y"
    assert cg.manager_for("/x", "") is None


def _fake_v1(tmp: Path) -> cg.CgroupV1:
    hier = {}
    for name in ("memory", "pids", "cpu,cpuacct", "cpuset", "devices"):
        d = tmp / name
        d.mkdir()
        hier[name] = str(d)
    (tmp / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp / "cpuset" / "cpuset.mems").write_text("0\n")
    return cg.CgroupV1(hier, "/pydockerd/abc")


IFACE_V1 = {
    "memory": ("memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes"),
    "pids": ("pids.max",),
    "cpu,cpuacct": ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "devices": ("devices.allow", "devices.deny"),
}


def _touch(d: Path, names: tuple[str, ...]) -> None:
    """A real cgroupfs creates interface files with the directory; the fake needs them made."""
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).touch()


def test_v1_create_apply_destroy(tmp_path: Path) -> None:
    m = _fake_v1(tmp_path)
    for h, names in IFACE_V1.items():
        _touch(tmp_path / h / "pydockerd", names if h == "cpuset" else ())
        _touch(tmp_path / h / "pydockerd" / "abc", names)
    m.create()
    # cpuset: empty cpus/mems are copied down level by level
    assert (tmp_path / "cpuset" / "pydockerd" / "abc" / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / "pydockerd" / "abc" / "cpuset.mems").read_text() == "0"
    mem = tmp_path / "memory" / "pydockerd" / "abc"
    m.apply(
        {
            "memory": {"limit": 1 << 20, "swap": 2 << 20, "reservation": 1 << 19},
            "pids": {"limit": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            ],
        }
    )
    assert (mem / "memory.limit_in_bytes").read_text() == str(1 << 20)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(2 << 20)
    assert (mem / "memory.soft_limit_in_bytes").read_text() == str(1 << 19)
    assert (tmp_path / "pids" / "pydockerd" / "abc" / "pids.max").read_text() == "10"
    cpu = tmp_path / "cpu,cpuacct" / "pydockerd" / "abc"
    assert (cpu / "cpu.shares").read_text() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"
    # devices.allow keeps only the last write on a plain file; the rule list is checked below
    assert (tmp_path / "devices" / "pydockerd" / "abc" / "devices.deny").read_text() == "a"
    assert sorted(m.procs_files()) == sorted(str(tmp_path / n / "pydockerd" / "abc" / "cgroup.procs")
                                             for n in ("memory", "pids", "cpu,cpuacct", "cpuset", "devices"))
    # a new process joins through `tasks`: same result for one thread, without the global lock
    assert sorted(m.join_files()) == sorted(str(tmp_path / n / "pydockerd" / "abc" / "tasks")
                                            for n in ("memory", "pids", "cpu,cpuacct", "cpuset", "devices"))
    assert (str(mem), "memory") in m.bind_sources()
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert m.oom_killed()
    # a real rmdir of a cgroup ignores interface files; remove the fake ones first
    for d in tmp_path.glob("*/pydockerd/abc"):
        for f in d.iterdir():
            f.unlink()
    m.destroy()
    assert not list(tmp_path.glob("*/pydockerd/abc"))
    assert (tmp_path / "memory" / "pydockerd").is_dir()  # the shared parent stays


def test_device_rules() -> None:
    rules = cg.device_rules([{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                             {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}])
    assert rules[:3] == [(False, "a"), (True, "c 1:3 rwm"), (False, "c 10:229 rwm")]
    assert (True, "c 136:* rwm") in rules  # ptys always allowed, as runc does
    assert cg.device_rules([]) == []


def test_v2_create_apply(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    m = cg.CgroupV2(str(tmp_path), "/pydockerd/abc")
    m.create()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    d = tmp_path / "pydockerd" / "abc"
    assert d.is_dir()
    _touch(d, ("memory.max", "memory.swap.max", "pids.max", "cpu.weight", "cpu.max"))
    m.apply({"memory": {"limit": 1 << 20, "swap": 3 << 20}, "pids": {"limit": -1},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000}})
    assert (d / "memory.max").read_text() == str(1 << 20)
    assert (d / "memory.swap.max").read_text() == str(2 << 20)
    assert (d / "pids.max").read_text() == "max"
    assert (d / "cpu.weight").read_text() == str(cg.shares_to_weight(1024))
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert m.procs_files() == [str(d / "cgroup.procs")]
    assert m.join_files() == [str(d / "cgroup.procs")]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not m.oom_killed()
    for f in d.iterdir():
        f.unlink()
    m.destroy()
    assert not d.exists()
    st = cg.to_state(m)
    assert isinstance(cg.from_state(st), cg.CgroupV2)


def test_shares_to_weight() -> None:
    assert cg.shares_to_weight(2) == 1
    assert cg.shares_to_weight(262144) == 10000
    assert cg.shares_to_weight(1024) == 39


def test_v1_freeze_pids_stats_on_fake(tmp_path: Path) -> None:
    hier = {}
    for name in ("freezer", "memory", "cpuacct", "pids"):
        (tmp_path / name / "p" / "c").mkdir(parents=True)
        hier[name] = str(tmp_path / name)
    m = cg.CgroupV1(hier, "/p/c")
    d = {n: tmp_path / n / "p" / "c" for n in hier}
    (d["freezer"] / "freezer.state").write_text("")
    m.freeze(True)   # a plain file reads back what was written: FROZEN
    assert (d["freezer"] / "freezer.state").read_text() == "FROZEN"
    m.freeze(False)
    assert (d["freezer"] / "freezer.state").read_text() == "THAWED"
    (d["pids"] / "cgroup.procs").write_text("10\n11\n")
    (d["pids"] / "pids.current").write_text("2\n")
    (d["pids"] / "pids.max").write_text("max\n")
    (d["memory"] / "memory.usage_in_bytes").write_text("4096\n")
    (d["memory"] / "memory.stat").write_text("cache 1\nrss 2\n")
    (d["cpuacct"] / "cpuacct.usage").write_text("5000\n")
    (d["cpuacct"] / "cpuacct.usage_percpu").write_text("3000 2000\n")
    (d["cpuacct"] / "cpuacct.stat").write_text("user 3\nsystem 1\n")
    assert m.pids() == [10, 11]
    st = m.stats()
    assert st["memory_stats"]["usage"] == 4096 and st["memory_stats"]["stats"] == {"cache": 1, "rss": 2}
    assert st["cpu_stats"]["cpu_usage"] == {"total_usage": 5000, "percpu_usage": [3000, 2000],
                                            "usage_in_usermode": 30_000_000, "usage_in_kernelmode": 10_000_000}
    assert st["pids_stats"] == {"current": 2}


def test_v2_freeze_and_stats_on_fake(tmp_path: Path) -> None:
    m = cg.CgroupV2(str(tmp_path), "/p/c")
    d = tmp_path / "p" / "c"
    d.mkdir(parents=True)
    (d / "cgroup.freeze").write_text("")
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    m.freeze(True)
    assert (d / "cgroup.freeze").read_text() == "1"
    (d / "memory.current").write_text("100\n")
    (d / "memory.max").write_text("max\n")
    (d / "cpu.stat").write_text("usage_usec 7\nuser_usec 5\nsystem_usec 2\n")
    st = m.stats()
    assert st["memory_stats"]["usage"] == 100 and "limit" not in st["memory_stats"]
    assert st["cpu_stats"]["cpu_usage"]["total_usage"] == 7000


def test_remembered_mounts_spare_every_later_manager_reading_mountinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cg, "_remembered", cg.parse_mountinfo(MOUNTINFO_V2))
    assert isinstance(cg.manager_for("/x/y"), cg.CgroupV2)  # not this host's (hybrid) mounts
    assert isinstance(cg.manager_for("/x/y", MOUNTINFO_HYBRID), cg.CgroupV1)  # an explicit text still wins
