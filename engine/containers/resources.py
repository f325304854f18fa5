"""Container resource limits: dockerd's validation, the OCI mapping, live updates and stats.

The checks and their words follow dockerd on Linux: a create with an absurd
limit fails with 400 before anything is made; a limit the host cannot enforce
(blkio weight without the controller file) is dropped with dockerd's warning.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from ..errors import Conflict, EngineError, InvalidParameter
from ..types import Resources

MIN_MEMORY = 6 * 1024 * 1024          # dockerd's linuxMinMemory
CPU_PERIOD_DEFAULT = 100_000           # what --cpus is expressed in (µs)


@dataclass(frozen=True)
class HostLimits:
    """What the host offers; read once per check (tests pass their own)."""

    ncpu: int
    cpus: str                 # "0-1"
    mems: str                 # "0"
    swap_limit: bool          # memory.memsw.* present (v1) / memory.swap.max (v2)
    blkio_weight: bool
    blkio_weight_device: bool = False
    cpu_cfs: bool = True
    cpu_shares: bool = True

    @classmethod
    def probe(cls) -> HostLimits:
        def read(path: str, default: str) -> str:
            try:
                with open(path) as f:
                    return f.read().strip() or default
            except OSError:
                return default

        v1_mem = "/sys/fs/cgroup/memory"
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.isdir(v1_mem):
            swap = os.path.exists(os.path.join(v1_mem, "memory.memsw.limit_in_bytes"))
            blkio = os.path.exists("/sys/fs/cgroup/blkio/blkio.weight") or os.path.exists(
                "/sys/fs/cgroup/blkio/blkio.bfq.weight")
            blkio_dev = os.path.exists("/sys/fs/cgroup/blkio/blkio.weight_device")
        else:
            swap = os.path.exists(v2)
            blkio = blkio_dev = "io" in read(v2, "").split()
        return cls(
            ncpu=os.cpu_count() or 1,
            cpus=read("/sys/devices/system/cpu/online", "0"),
            mems=read("/sys/devices/system/node/online", "0"),
            swap_limit=swap,
            blkio_weight=blkio,
            blkio_weight_device=blkio_dev,
        )


def parse_cpuset(text: str) -> set[int]:
    """ "0-2,4" -> {0, 1, 2, 4}; ValueError on anything else (Go's parser words)."""
    out: set[int] = set()
    if text == "":
        return out
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"invalid format: {part}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"invalid range: {part}")
        out.update(range(lo, hi + 1))
    return out


def _check_cpuset(value: str, available: str, what: str, requested_words: str) -> None:
    if not value:
        return
    try:
        want = parse_cpuset(value)
    except ValueError as e:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
    try:
        have = parse_cpuset(available)
    except ValueError:
        return
    if not want <= have:
        raise InvalidParameter(
            f"Requested {requested_words} are not available - requested {value}, available: {available}"
        )


def normalize(r: Resources) -> Resources:
    """dockerd's adjustments at create: swap defaults to twice the memory, a
    non-positive pids limit means unlimited."""
    if r.memory > 0 and r.memory_swap == 0:
        r = replace(r, memory_swap=r.memory * 2)
    if r.pids_limit is not None and r.pids_limit <= 0:
        r = replace(r, pids_limit=None)
    return r


def validate(r: Resources, host: HostLimits, *, update: bool = False) -> tuple[Resources, list[str]]:
    """Check ``r`` as dockerd does; returns what will be applied and dockerd's warnings."""
    warnings: list[str] = []
    if r.memory != 0 and r.memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if not update:
        if r.memory_swap > 0 and r.memory == 0:
            raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
        if r.memory > 0 and r.memory_swap > 0 and r.memory_swap < r.memory:
            raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if r.memory > 0 and r.memory_swap != 0 and not host.swap_limit:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        r = replace(r, memory_swap=-1)
    if r.memory_swappiness is not None and r.memory_swappiness != -1 and not 0 <= r.memory_swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {r.memory_swappiness}, valid memory swappiness range is 0-100")
    if r.memory_reservation != 0 and r.memory_reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if r.memory > 0 and r.memory_reservation > 0 and r.memory < r.memory_reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if r.kernel_memory:
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
    if r.nano_cpus > 0 and r.cpu_period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if r.nano_cpus > 0 and r.cpu_quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if r.nano_cpus < 0 or r.nano_cpus > host.ncpu * 1_000_000_000:
        raise InvalidParameter(
            f"Range of CPUs is from 0.01 to {host.ncpu}.00, as there are only {host.ncpu} CPUs available"
        )
    if r.cpu_period != 0 and not 1000 <= r.cpu_period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if r.cpu_quota > 0 and r.cpu_quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    _check_cpuset(r.cpuset_cpus, host.cpus, "cpus", "CPUs")
    _check_cpuset(r.cpuset_mems, host.mems, "mems", "memory nodes")
    if r.blkio_weight > 0:
        if not host.blkio_weight:
            warnings.append(
                "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
            )
            r = replace(r, blkio_weight=0)
        elif not 10 <= r.blkio_weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if r.blkio_weight_device:
        if not host.blkio_weight_device:
            warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
                            "Weight-device discarded.")
            r = replace(r, blkio_weight_device=())
        else:
            for path, w in r.blkio_weight_device:
                if not 10 <= w <= 1000:
                    raise InvalidParameter(f"invalid weight for device: {path}:{w}")
    if not -1000 <= r.oom_score_adj <= 1000:
        raise InvalidParameter(f"Invalid value {r.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    return r, warnings


def to_oci(r: Resources) -> dict[str, Any]:
    """Docker resources -> OCI ``linux.resources`` (without devices)."""
    memory: dict[str, Any] = {}
    if r.memory > 0:
        memory["limit"] = r.memory
    if r.memory_swap != 0 and r.memory > 0:
        memory["swap"] = r.memory_swap
    if r.memory_reservation > 0:
        memory["reservation"] = r.memory_reservation
    if r.memory_swappiness is not None and 0 <= r.memory_swappiness <= 100:
        memory["swappiness"] = r.memory_swappiness
    memory["disableOOMKiller"] = bool(r.oom_kill_disable)
    cpu: dict[str, Any] = {}
    if r.cpu_shares > 0:
        cpu["shares"] = r.cpu_shares
    if r.nano_cpus > 0:
        cpu["period"] = CPU_PERIOD_DEFAULT
        cpu["quota"] = r.nano_cpus * CPU_PERIOD_DEFAULT // 1_000_000_000
    else:
        if r.cpu_period > 0:
            cpu["period"] = r.cpu_period
        if r.cpu_quota != 0:
            cpu["quota"] = r.cpu_quota
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    out: dict[str, Any] = {"memory": memory, "cpu": cpu}
    if r.pids_limit is not None and r.pids_limit > 0:
        out["pids"] = {"limit": r.pids_limit}
    if r.blkio_weight > 0:
        out["blockIO"] = {"weight": r.blkio_weight}
    return out


# Resources attribute -> OCI linux.resources.blockIO key (rate devices)
THROTTLES = {
    "device_read_bps": "throttleReadBpsDevice",
    "device_write_bps": "throttleWriteBpsDevice",
    "device_read_iops": "throttleReadIOPSDevice",
    "device_write_iops": "throttleWriteIOPSDevice",
}


def block_io_devices(r: Resources) -> dict[str, Any]:
    """Per-device weights and throttles as OCI ``blockIO`` entries.  The paths are
    resolved to device numbers when the container starts, as dockerd does: a path
    that does not exist fails the start with stat's words."""
    def devno(path: str) -> tuple[int, int]:
        try:
            st = os.stat(path)
        except OSError as e:
            raise EngineError(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
        return os.major(st.st_rdev), os.minor(st.st_rdev)

    out: dict[str, Any] = {}
    if r.blkio_weight_device:
        out["weightDevice"] = [
            dict(zip(("major", "minor"), devno(p), strict=True), weight=w) for p, w in r.blkio_weight_device
        ]
    for attr, key in THROTTLES.items():
        entries = getattr(r, attr)
        if entries:
            out[key] = [dict(zip(("major", "minor"), devno(p), strict=True), rate=v) for p, v in entries]
    return out


def with_block_io(r: Resources) -> dict[str, Any]:
    """``to_oci`` plus the per-device block I/O entries (start time only: it stats devices)."""
    out = to_oci(r)
    devices = block_io_devices(r)
    if devices:
        out["blockIO"] = {**out.get("blockIO", {}), **devices}
    return out


def rlimits(r: Resources) -> tuple[tuple[str, int, int], ...]:
    return tuple((f"RLIMIT_{name.upper()}", soft, hard) for name, soft, hard in r.ulimits)


# Docker's update body fields -> Resources attribute; 0/"" mean "leave as is".
UPDATABLE = {
    "memory", "memory_swap", "memory_reservation", "kernel_memory", "cpu_shares", "cpu_period", "cpu_quota",
    "nano_cpus", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight",
}


def merge_update(cur: Resources, patch: dict[str, Any], cid: str) -> Resources:
    """Apply a ``docker update`` body (already decoded into Resources field names)
    to ``cur`` the way dockerd does, with its conflict checks."""
    def fail(msg: str) -> Conflict:
        return Conflict(f"Cannot update container {cid}: {msg}")

    new = cur
    mem = int(patch.get("memory") or 0)
    swap = int(patch.get("memory_swap") or 0)
    if mem != 0:
        if mem > new.memory_swap and swap == 0:
            raise fail("Memory limit should be smaller than already set memoryswap limit, "
                       "update the memoryswap at the same time")
        new = replace(new, memory=mem)
    if swap != 0:
        new = replace(new, memory_swap=swap)
    if new.memory > 0 and new.memory_swap > 0 and new.memory_swap < new.memory:
        raise fail("Minimum memoryswap limit should be larger than memory limit, see usage")
    for key in ("memory_reservation", "kernel_memory", "cpu_shares", "blkio_weight"):
        v = int(patch.get(key) or 0)
        if v:
            changed: dict[str, Any] = {key: v}
            new = replace(new, **changed)
    nano = int(patch.get("nano_cpus") or 0)
    period = int(patch.get("cpu_period") or 0)
    quota = int(patch.get("cpu_quota") or 0)
    if nano:
        if (period or new.cpu_period) or (quota or new.cpu_quota):
            if period or quota:
                raise fail("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
            # Switching to --cpus replaces an earlier period/quota.
            new = replace(new, cpu_period=0, cpu_quota=0)
        new = replace(new, nano_cpus=nano)
    if period or quota:
        if new.nano_cpus:
            raise fail(
                "Conflicting options: CPU Quota or CPU Period cannot be updated as NanoCPUs has already been set"
            )
        new = replace(new, cpu_period=period or new.cpu_period, cpu_quota=quota or new.cpu_quota)
    for key in ("cpuset_cpus", "cpuset_mems"):
        if patch.get(key):
            cpuset: dict[str, Any] = {key: str(patch[key])}
            new = replace(new, **cpuset)
    if patch.get("pids_limit") is not None:
        p = int(patch["pids_limit"])
        # 0 leaves the limit alone, a negative one lifts it
        if p < 0:
            new = replace(new, pids_limit=None)
        elif p > 0:
            new = replace(new, pids_limit=p)
    return new


def update_oci(r: Resources) -> dict[str, Any]:
    """The OCI resources to write to a live cgroup after an update: unlike at
    start, a lifted limit must be written as unlimited (-1)."""
    out = to_oci(r)
    out["memory"].pop("disableOOMKiller", None)
    out.setdefault("pids", {"limit": -1})
    if r.nano_cpus <= 0 and r.cpu_quota == 0:
        out["cpu"]["quota"] = -1
    return out


def _system_cpu_usage() -> int:
    """Host CPU time in ns from /proc/stat's first line, as dockerd reports it."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu "):
                    ticks = sum(int(x) for x in line.split()[1:8])
                    return ticks * (1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100))
    except (OSError, ValueError):
        pass
    return 0


BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
              "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
              "io_time_recursive", "sectors_recursive")

ZERO_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty_stats(name: str, cid: str) -> dict[str, Any]:
    """dockerd's answer for a container that is not running."""
    import copy

    return {
        "read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {},
        "blkio_stats": dict.fromkeys(BLKIO_KEYS), "num_procs": 0, "storage_stats": {},
        "cpu_stats": copy.deepcopy(ZERO_CPU), "precpu_stats": copy.deepcopy(ZERO_CPU),
        "memory_stats": {}, "name": "/" + name, "id": cid,
    }


def net_dev(pid: int) -> dict[str, dict[str, int]]:
    """Interface counters of a process's network namespace, without lo (dockerd
    reports only the container's own interfaces)."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = rest.split()
        if name == "lo" or len(v) < 16:
            continue
        n = [int(x) for x in v]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                     "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def sample(raw: dict[str, Any], pid: int, read_at: str) -> dict[str, Any]:
    """One stats sample in Docker's shape from the shim's raw cgroup counters."""
    cpu = dict(raw.get("cpu_stats") or ZERO_CPU)
    cpu.setdefault("throttling_data", dict(ZERO_CPU["throttling_data"]))
    cpu["system_cpu_usage"] = _system_cpu_usage()
    cpu["online_cpus"] = os.cpu_count() or 1
    mem = dict(raw.get("memory_stats") or {})
    s: dict[str, Any] = {
        "read": read_at,
        "pids_stats": raw.get("pids_stats") or {},
        "blkio_stats": {k: (raw.get("blkio_stats") or {}).get(k, []) for k in BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "memory_stats": mem,
    }
    nets = net_dev(pid) if pid else {}
    if nets:
        s["networks"] = nets
    return s
