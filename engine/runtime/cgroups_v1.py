"""cgroup v1: one directory per mounted hierarchy, and the device rules of the devices controller.

Only the stdlib is used: the shim imports this module.
"""
from __future__ import annotations

import errno
import os

from engine.runtime.cgroupfs import (
    CgroupValueError,
    as_int,
    kill_pids,
    read,
    read_int,
    read_kv,
    read_pids,
    rmdir_retry,
    wait_for,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any


# OCI blockIO keys -> the v1 blkio file / the v2 io.max key
_V1_BLKIO_FILES = {
    "weightDevice": "blkio.weight_device",
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}
class CgroupV1:
    """One directory per mounted v1 hierarchy, at ``<mount>/<cgroups_path>``."""

    version = 1

    def __init__(self, hierarchies: dict[str, str], cgroups_path: str) -> None:
        self.cgroups_path = "/" + cgroups_path.strip("/")
        self.dirs: dict[str, str] = {
            name: os.path.join(mnt, self.cgroups_path.lstrip("/")) for name, mnt in hierarchies.items()
        }
        self.mounts = dict(hierarchies)

    def _dir(self, controller: str) -> str | None:
        for name, d in self.dirs.items():
            if controller in name.split(","):
                return d
        return None

    def create(self) -> None:
        for name, _d in self.dirs.items():
            mnt = self.mounts[name]
            # create level by level: cpuset needs cpus/mems copied down before use
            rel = self.cgroups_path.strip("/").split("/")
            cur = mnt
            for part in rel:
                parent, cur = cur, os.path.join(cur, part)
                try:
                    os.mkdir(cur, 0o755)
                except FileExistsError:
                    pass
                if "cpuset" in name.split(","):
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        mine = os.path.join(cur, f)
                        try:
                            if not read(mine).strip():
                                write(mine, read(os.path.join(parent, f)).strip() or "\n")
                        except OSError:
                            pass

    def apply(self, resources: dict[str, Any] | None) -> None:
        r = resources or {}
        mem = r.get("memory") or {}
        md = self._dir("memory")
        if md:
            limit = as_int(mem.get("limit"))
            swap = as_int(mem.get("swap"))
            if limit and limit > 0:
                memsw = os.path.join(md, "memory.memsw.limit_in_bytes")
                ordered = [("memory.limit_in_bytes", limit)]
                if swap is not None and swap != 0 and os.path.exists(memsw):
                    # The kernel keeps memory <= memory+swap at every step: raising
                    # both means memsw first, lowering both means memory first.
                    cur = read_int(memsw)
                    pair = ("memory.memsw.limit_in_bytes", swap)
                    ordered = [pair, *ordered] if (swap < 0 or (cur is not None and swap > cur)) else [*ordered, pair]
                for name, value in ordered:
                    write(os.path.join(md, name), str(value))
            res = as_int(mem.get("reservation"))
            if res and res > 0:
                write(os.path.join(md, "memory.soft_limit_in_bytes"), str(res))
            if mem.get("disableOOMKiller"):
                write(os.path.join(md, "memory.oom_control"), "1")
            sw = as_int(mem.get("swappiness"))
            if sw is not None and 0 <= sw <= 100:
                write(os.path.join(md, "memory.swappiness"), str(sw))
        pids = (r.get("pids") or {}).get("limit")
        pd = self._dir("pids")
        if pd and isinstance(pids, int) and pids != 0:
            write(os.path.join(pd, "pids.max"), "max" if pids < 0 else str(pids))
        cpu = r.get("cpu") or {}
        cd = self._dir("cpu")
        if cd:
            shares = as_int(cpu.get("shares"))
            if shares:
                write(os.path.join(cd, "cpu.shares"), str(shares))
                # the kernel clamps the value to its range: runc reads it back and refuses
                got = int(read(os.path.join(cd, "cpu.shares")).strip() or shares)
                if got != shares:
                    bound = "maximum" if shares > got else "minimum"
                    raise CgroupValueError(f"the {bound} allowed cpu-shares is {got}")
            period = as_int(cpu.get("period"))
            if period:
                write(os.path.join(cd, "cpu.cfs_period_us"), str(period))
            quota = as_int(cpu.get("quota"))
            if quota:
                write(os.path.join(cd, "cpu.cfs_quota_us"), str(quota))
        sd = self._dir("cpuset")
        if sd:
            if cpu.get("cpus"):
                write(os.path.join(sd, "cpuset.cpus"), str(cpu["cpus"]))
            if cpu.get("mems"):
                write(os.path.join(sd, "cpuset.mems"), str(cpu["mems"]))
        bd = self._dir("blkio")
        bio = r.get("blockIO") or {}
        weight = as_int(bio.get("weight"))
        if bd and weight:
            write(os.path.join(bd, "blkio.weight"), str(weight))
        if bd:
            # one "major:minor value" line per write; the kernel keeps a rule per device
            for key, fname in _V1_BLKIO_FILES.items():
                field = "weight" if key == "weightDevice" else "rate"
                for dev in bio.get(key) or []:
                    write(os.path.join(bd, fname), f"{dev['major']}:{dev['minor']} {dev[field]}")
        dd = self._dir("devices")
        if dd and r.get("devices") is not None:
            for rule in device_rules(r.get("devices") or []):
                allow, text = rule
                write(os.path.join(dd, "devices.allow" if allow else "devices.deny"), text)

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def join_files(self) -> list[str]:
        """Where a freshly forked, single-threaded process writes "0" to move itself in.

        ``tasks`` moves only the writing thread, which lets the kernel skip the
        global threadgroup lock that ``cgroup.procs`` takes: that lock waits for
        an RCU grace period, 8-15 ms per join here, paid by every start and exec."""
        return [os.path.join(d, "tasks") for d in self.dirs.values()]

    def bind_sources(self) -> list[tuple[str, str]]:
        """(host dir, name under /sys/fs/cgroup) for the container's read-only view."""
        out = []
        for name, d in self.dirs.items():
            out.append((d, os.path.basename(self.mounts[name])))
        return out

    def oom_killed(self) -> bool:
        md = self._dir("memory")
        if not md:
            return False
        try:
            for line in read(os.path.join(md, "memory.oom_control")).splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and v.strip().isdigit():
                    return int(v) > 0
        except OSError:
            pass
        return False

    def freeze(self, frozen: bool) -> None:
        d = self._dir("freezer")
        if d is None:
            raise OSError(errno.ENOTSUP, "the freezer cgroup controller is not mounted")
        state = os.path.join(d, "freezer.state")
        write(state, "FROZEN" if frozen else "THAWED")
        if frozen:
            # FREEZING -> FROZEN happens asynchronously in the kernel
            wait_for(lambda: read(state).strip() == "FROZEN", f"freezing {d}")

    def pids(self) -> list[int]:
        d = self._dir("pids") or self._dir("memory") or next(iter(self.dirs.values()), None)
        return read_pids(d)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        md = self._dir("memory")
        if md:
            mem: dict[str, Any] = {"stats": read_kv(os.path.join(md, "memory.stat"))}
            for key, f in (("usage", "memory.usage_in_bytes"), ("max_usage", "memory.max_usage_in_bytes"),
                           ("limit", "memory.limit_in_bytes"), ("failcnt", "memory.failcnt")):
                v = read_int(os.path.join(md, f))
                if v is not None:
                    mem[key] = v
            out["memory_stats"] = mem
        ad = self._dir("cpuacct")
        if ad:
            usage: dict[str, Any] = {"total_usage": read_int(os.path.join(ad, "cpuacct.usage")) or 0}
            try:
                usage["percpu_usage"] = [int(x) for x in read(os.path.join(ad, "cpuacct.usage_percpu")).split()]
            except (OSError, ValueError):
                pass
            st = read_kv(os.path.join(ad, "cpuacct.stat"))
            # cpuacct.stat is in USER_HZ ticks; Docker reports nanoseconds
            usage["usage_in_usermode"] = st.get("user", 0) * 10_000_000
            usage["usage_in_kernelmode"] = st.get("system", 0) * 10_000_000
            out["cpu_stats"] = {"cpu_usage": usage}
        cd = self._dir("cpu")
        if cd and "cpu_stats" in out:
            t = read_kv(os.path.join(cd, "cpu.stat"))
            out["cpu_stats"]["throttling_data"] = {"periods": t.get("nr_periods", 0),
                                                   "throttled_periods": t.get("nr_throttled", 0),
                                                   "throttled_time": t.get("throttled_time", 0)}
        pd = self._dir("pids")
        if pd:
            cur = read_int(os.path.join(pd, "pids.current"))
            lim = read_int(os.path.join(pd, "pids.max"))
            out["pids_stats"] = {"current": cur or 0, **({"limit": lim} if lim else {})}
        return out

    def kill_all(self) -> None:
        kill_pids(self.pids())

    def destroy(self) -> None:
        errors: list[OSError] = []
        for d in self.dirs.values():
            try:
                rmdir_retry(d)
            except OSError as e:
                errors.append(e)
        if errors:
            raise errors[0]


# runc allows these to every container on top of the spec's rules, so ttys and
# /dev/* basics work under a "deny all" device policy.
_DEFAULT_ALLOWED = [
    ("c", "*", "*", "m"), ("b", "*", "*", "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), ("c", 136, "*", "rwm"),
]


def device_rules(devices: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    """OCI linux.resources.devices -> [(allow, "type major:minor access")] for v1."""
    out: list[tuple[bool, str]] = []
    for d in devices:
        typ = d.get("type") or "a"
        major = d.get("major")
        minor = d.get("minor")
        access = d.get("access") or "rwm"
        if typ == "a":
            text = "a"
        else:
            maj = "*" if major is None or major < 0 else major
            mnr = "*" if minor is None or minor < 0 else minor
            text = f"{typ} {maj}:{mnr} {access}"
        out.append((bool(d.get("allow")), text))
    if out:
        for typ, ma, mi, acc in _DEFAULT_ALLOWED:
            out.append((True, f"{typ} {ma}:{mi} {acc}"))
    return out
