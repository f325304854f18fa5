"""cgroup v2: one directory in the unified hierarchy.

Only the stdlib is used: the shim imports this module.
"""
from __future__ import annotations

import os

from engine.runtime.cgroupfs import as_int, kill_pids, read, read_int, read_kv, read_pids, rmdir_retry, wait_for, write

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any


_V2_IO_MAX_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


class CgroupV2:
    """One directory in the unified hierarchy, controllers enabled on the way down."""

    version = 2

    def __init__(self, mount: str, cgroups_path: str) -> None:
        self.mount = mount
        self.cgroups_path = "/" + cgroups_path.strip("/")
        self.dir = os.path.join(mount, self.cgroups_path.lstrip("/"))

    def create(self) -> None:
        try:
            available = read(os.path.join(self.mount, "cgroup.controllers")).split()
        except OSError:
            available = []
        cur = self.mount
        for part in self.cgroups_path.strip("/").split("/"):
            if available:
                # enable in the parent so the child gets the interface files
                try:
                    write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in available))
                except OSError:
                    pass
            cur = os.path.join(cur, part)
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                pass
            try:
                available = read(os.path.join(cur, "cgroup.controllers")).split()
            except OSError:
                available = []

    def apply(self, resources: dict[str, Any] | None) -> None:
        r = resources or {}
        d = self.dir
        mem = r.get("memory") or {}
        limit = as_int(mem.get("limit"))
        if limit and limit > 0:
            write(os.path.join(d, "memory.max"), str(limit))
            swap = as_int(mem.get("swap"))
            if swap is not None and swap != 0:
                # v1 "memsw" is memory+swap; v2 counts swap alone.
                write(os.path.join(d, "memory.swap.max"), "max" if swap < 0 else str(max(swap - limit, 0)))
        res = as_int(mem.get("reservation"))
        if res and res > 0:
            write(os.path.join(d, "memory.low"), str(res))
        pids = (r.get("pids") or {}).get("limit")
        if isinstance(pids, int) and pids != 0:
            write(os.path.join(d, "pids.max"), "max" if pids < 0 else str(pids))
        cpu = r.get("cpu") or {}
        shares = as_int(cpu.get("shares"))
        if shares:
            write(os.path.join(d, "cpu.weight"), str(shares_to_weight(shares)))
        quota = as_int(cpu.get("quota"))
        period = as_int(cpu.get("period"))
        if quota or period:
            q = "max" if not quota or quota < 0 else str(quota)
            write(os.path.join(d, "cpu.max"), f"{q} {period or 100000}")
        if cpu.get("cpus"):
            write(os.path.join(d, "cpuset.cpus"), str(cpu["cpus"]))
        if cpu.get("mems"):
            write(os.path.join(d, "cpuset.mems"), str(cpu["mems"]))
        bio = r.get("blockIO") or {}
        weight = as_int(bio.get("weight"))
        weight_file = os.path.join(d, "io.bfq.weight") if os.path.exists(os.path.join(d, "io.bfq.weight")) \
            else os.path.join(d, "io.weight")
        if weight:
            write(weight_file, str(weight))
        for dev in bio.get("weightDevice") or []:
            write(weight_file, f"{dev['major']}:{dev['minor']} {dev['weight']}")
        # io.max takes every limit of a device on one line
        limits: dict[str, list[str]] = {}
        for key, word in _V2_IO_MAX_KEYS.items():
            for dev in bio.get(key) or []:
                limits.setdefault(f"{dev['major']}:{dev['minor']}", []).append(f"{word}={dev['rate']}")
        for devno, parts in limits.items():
            write(os.path.join(d, "io.max"), f"{devno} {' '.join(parts)}")
        # v2 device control needs eBPF programs: not implemented (documented gap).

    def procs_files(self) -> list[str]:
        return [os.path.join(self.dir, "cgroup.procs")]

    def join_files(self) -> list[str]:
        return self.procs_files()   # v2: cgroup.threads is only for threaded subtrees

    def bind_sources(self) -> list[tuple[str, str]]:
        return []

    def oom_killed(self) -> bool:
        try:
            for line in read(os.path.join(self.dir, "memory.events")).splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and v.strip().isdigit():
                    return int(v) > 0
        except OSError:
            pass
        return False

    def freeze(self, frozen: bool) -> None:
        write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
        if frozen:
            events = os.path.join(self.dir, "cgroup.events")
            wait_for(lambda: read_kv(events).get("frozen") == 1, f"freezing {self.dir}")

    def pids(self) -> list[int]:
        return read_pids(self.dir)

    def stats(self) -> dict[str, Any]:
        d = self.dir
        mem: dict[str, Any] = {"stats": read_kv(os.path.join(d, "memory.stat"))}
        usage = read_int(os.path.join(d, "memory.current"))
        if usage is not None:
            mem["usage"] = usage
        limit = read_int(os.path.join(d, "memory.max"))
        if limit is not None:
            mem["limit"] = limit
        cpu = read_kv(os.path.join(d, "cpu.stat"))
        out: dict[str, Any] = {
            "memory_stats": mem,
            "cpu_stats": {
                "cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000,
                              "usage_in_usermode": cpu.get("user_usec", 0) * 1000,
                              "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000},
                "throttling_data": {"periods": cpu.get("nr_periods", 0),
                                    "throttled_periods": cpu.get("nr_throttled", 0),
                                    "throttled_time": cpu.get("throttled_usec", 0) * 1000},
            },
        }
        cur = read_int(os.path.join(d, "pids.current"))
        if cur is not None:
            lim = read_int(os.path.join(d, "pids.max"))
            out["pids_stats"] = {"current": cur, **({"limit": lim} if lim else {})}
        return out

    def kill_all(self) -> None:
        try:
            write(os.path.join(self.dir, "cgroup.kill"), "1")  # kernel >= 5.14
        except OSError:
            kill_pids(self.pids())

    def destroy(self) -> None:
        rmdir_retry(self.dir)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (the conversion runc and the kernel docs use)."""
    shares = max(2, min(shares, 262144))
    return 1 + ((shares - 2) * 9999) // 262142
