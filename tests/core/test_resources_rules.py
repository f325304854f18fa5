"""Resource limit rules: dockerd's validation and adjustments, the OCI mapping,
docker update merging, and what an update writes to a v1/v2 cgroupfs (fake dirs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.containers import resources as res
from engine.errors import Conflict, InvalidParameter
from engine.runtime import cgroups as cg
from engine.runtime import cgroups_v1 as cgv1
from engine.types import Resources

HOST = res.HostLimits(ncpu=2, cpus="0-1", mems="0", swap_limit=True, blkio_weight=True)
MB = 1 << 20


@pytest.mark.parametrize(
    "r, message",
    [
        (Resources(memory=1024), "Minimum memory limit allowed is 6MB"),
        (
            Resources(memory=8 * MB, memory_swap=4 * MB),
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            Resources(memory_swap=8 * MB),
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (Resources(memory_swappiness=101), "Invalid value: 101, valid memory swappiness range is 0-100"),
        (Resources(memory_reservation=1024), "Minimum memory reservation allowed is 6MB"),
        (
            Resources(memory=8 * MB, memory_reservation=16 * MB),
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (Resources(nano_cpus=-1), "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        (Resources(nano_cpus=3 * 10**9), "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        (
            Resources(nano_cpus=10**9, cpu_period=50000),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            Resources(nano_cpus=10**9, cpu_quota=50000),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            Resources(cpu_period=999),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            Resources(cpu_period=1_000_001),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (Resources(cpu_quota=999), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (Resources(cpuset_cpus="2"), "Requested CPUs are not available - requested 2, available: 0-1"),
        (Resources(cpuset_cpus="1-0"), "Invalid value 1-0 for cpuset cpus: invalid range: 1-0"),
        (Resources(cpuset_mems="0,1"), "Requested memory nodes are not available - requested 0,1, available: 0"),
        (Resources(blkio_weight=5), "Range of blkio weight is from 10 to 1000"),
        (Resources(oom_score_adj=-1001), "Invalid value -1001, range for oom score adj is [-1000, 1000]"),
    ],
)
def test_validation_words(r: Resources, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        res.validate(r, HOST)
    assert str(e.value) == message


def test_valid_limits_pass_unchanged() -> None:
    r = Resources(memory=32 * MB, memory_swap=-1, cpu_quota=-1, cpuset_cpus="0-1", cpuset_mems="0", blkio_weight=500)
    assert res.validate(r, HOST) == (r, [])


def test_host_without_swap_accounting_or_blkio_weight_warns_and_drops() -> None:
    host = res.HostLimits(ncpu=2, cpus="0-1", mems="0", swap_limit=False, blkio_weight=False)
    r, warnings = res.validate(Resources(memory=32 * MB, memory_swap=64 * MB, blkio_weight=300), host)
    assert r.memory_swap == -1 and r.blkio_weight == 0
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted."
        " Memory limited without swap.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
    ]


def test_normalize_defaults() -> None:
    assert res.normalize(Resources(memory=32 * MB)).memory_swap == 64 * MB
    assert res.normalize(Resources(memory=32 * MB, memory_swap=-1)).memory_swap == -1
    assert res.normalize(Resources(pids_limit=-1)).pids_limit is None
    assert res.normalize(Resources(pids_limit=0)).pids_limit is None
    assert res.normalize(Resources(pids_limit=5)).pids_limit == 5


def test_oci_mapping() -> None:
    oci = res.to_oci(Resources(memory=32 * MB, memory_swap=64 * MB, memory_reservation=16 * MB, memory_swappiness=10,
                               nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="0", pids_limit=9,
                               blkio_weight=300, oom_kill_disable=True))
    assert oci == {
        "memory": {"limit": 32 * MB, "swap": 64 * MB, "reservation": 16 * MB, "swappiness": 10,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0"},
        "pids": {"limit": 9},
        "blockIO": {"weight": 300},
    }
    assert res.to_oci(Resources()) == {"memory": {"disableOOMKiller": False}, "cpu": {}}
    assert res.rlimits(Resources(ulimits=(("nofile", 10, 20),))) == (("RLIMIT_NOFILE", 10, 20),)


def test_update_merge_rules() -> None:
    cur = Resources(memory=32 * MB, memory_swap=64 * MB, cpu_shares=100, pids_limit=5)
    with pytest.raises(Conflict) as e:
        res.merge_update(cur, {"memory": 100 * MB}, "cid")
    assert str(e.value) == ("Cannot update container cid: Memory limit should be smaller than already set memoryswap "
                            "limit, update the memoryswap at the same time")
    new = res.merge_update(cur, {"memory": 100 * MB, "memory_swap": 200 * MB, "nano_cpus": 10**9}, "cid")
    assert (new.memory, new.memory_swap, new.nano_cpus, new.cpu_shares, new.pids_limit) == \
        (100 * MB, 200 * MB, 10**9, 100, 5)
    assert res.merge_update(cur, {"pids_limit": -1}, "cid").pids_limit is None
    assert res.merge_update(cur, {"pids_limit": 0}, "cid").pids_limit == 5, "0 leaves the limit alone"
    with pytest.raises(Conflict):
        res.merge_update(Resources(nano_cpus=10**9), {"cpu_quota": 50000}, "cid")


def test_update_lifts_limits_on_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    m = cg.CgroupV2(str(tmp_path), "/pyd/abc")
    m.create()
    d = tmp_path / "pyd" / "abc"
    for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight"):
        (d / f).write_text("")  # the kernel's interface files (a real cgroupfs makes them)
    m.apply(res.update_oci(Resources(memory=64 * MB, memory_swap=-1)))
    assert (d / "memory.max").read_text() == str(64 * MB)
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "pids.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max 100000"
    m.apply(res.update_oci(Resources(nano_cpus=500_000_000, pids_limit=7)))
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "pids.max").read_text() == "7"


def test_v1_memory_and_swap_written_in_a_kernel_safe_order(tmp_path: Path) -> None:
    mem = tmp_path / "memory"
    (mem / "pyd" / "abc").mkdir(parents=True)
    d = mem / "pyd" / "abc"
    (d / "memory.memsw.limit_in_bytes").write_text(str(64 * MB))
    (d / "memory.limit_in_bytes").write_text(str(32 * MB))
    (d / "memory.oom_control").write_text("oom_kill_disable 0\n")
    m = cg.CgroupV1({"memory": str(mem)}, "/pyd/abc")
    order: list[str] = []
    real_write = cgv1.write

    def spy(path: str, value: str) -> None:
        order.append(Path(path).name)
        real_write(path, value)

    cgv1.write = spy
    try:
        m.apply({"memory": {"limit": 100 * MB, "swap": 200 * MB}})  # raising: memsw first
        assert order[:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        order.clear()
        m.apply({"memory": {"limit": 8 * MB, "swap": 16 * MB}})     # lowering: memory first
        assert order[:2] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    finally:
        cgv1.write = real_write
    assert (d / "memory.limit_in_bytes").read_text() == str(8 * MB)


def test_cpuset_parser() -> None:
    assert res.parse_cpuset("0-2,4") == {0, 1, 2, 4}
    assert res.parse_cpuset("") == set()
    with pytest.raises(ValueError):
        res.parse_cpuset("a")


def test_block_io_devices_resolved_and_written(tmp_path: Path) -> None:
    import os

    st = os.stat("/dev/null")
    r = Resources(device_read_bps=(("/dev/null", 1 << 20),), device_write_iops=(("/dev/null", 50),),
                  blkio_weight_device=(("/dev/null", 300),))
    bio = res.with_block_io(r)["blockIO"]
    dev = {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}
    assert bio == {"weightDevice": [{**dev, "weight": 300}], "throttleReadBpsDevice": [{**dev, "rate": 1 << 20}],
                   "throttleWriteIOPSDevice": [{**dev, "rate": 50}]}
    with pytest.raises(Exception) as e:
        res.with_block_io(Resources(device_read_bps=(("/dev/no-such-device", 1),)))
    assert str(e.value) == "stat /dev/no-such-device: no such file or directory"
    # v1: one file per kind; v2: one io.max line per device with every limit
    blk = tmp_path / "blkio"
    (blk / "c").mkdir(parents=True)
    for f in ("blkio.throttle.read_bps_device", "blkio.throttle.write_iops_device", "blkio.weight_device"):
        (blk / "c" / f).write_text("")
    cg.CgroupV1({"blkio": str(blk)}, "/c").apply({"blockIO": bio})
    n = f"{dev['major']}:{dev['minor']}"
    assert (blk / "c" / "blkio.throttle.read_bps_device").read_text() == f"{n} {1 << 20}"
    assert (blk / "c" / "blkio.throttle.write_iops_device").read_text() == f"{n} 50"
    assert (blk / "c" / "blkio.weight_device").read_text() == f"{n} 300"
    v2 = tmp_path / "v2"
    (v2 / "c").mkdir(parents=True)
    for f in ("io.max", "io.weight"):
        (v2 / "c" / f).write_text("")
    cg.CgroupV2(str(v2), "/c").apply({"blockIO": bio})
    assert (v2 / "c" / "io.max").read_text() == f"{n} rbps={1 << 20} wiops=50"
    assert (v2 / "c" / "io.weight").read_text() == f"{n} 300"


def test_weight_device_needs_the_controller_file() -> None:
    host = res.HostLimits(ncpu=2, cpus="0-1", mems="0", swap_limit=True, blkio_weight=False, blkio_weight_device=False)
    r, warnings = res.validate(Resources(blkio_weight_device=(("/dev/vda", 300),)), host)
    assert r.blkio_weight_device == () and warnings == [
        "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."]
    ok_host = res.HostLimits(ncpu=2, cpus="0-1", mems="0", swap_limit=True, blkio_weight=True, blkio_weight_device=True)
    with pytest.raises(InvalidParameter) as e:
        res.validate(Resources(blkio_weight_device=(("/dev/vda", 5),)), ok_host)
    assert str(e.value) == "invalid weight for device: /dev/vda:5"
