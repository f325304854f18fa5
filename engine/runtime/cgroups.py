"""Per-container cgroups through the cgroup file system (v1 and v2).

The shim creates the container's cgroups before the init runs, the init moves
itself in (writing "0" to ``cgroup.procs``), and the shim removes them after
the container exited.  Both versions work on any directory tree, so unit tests
drive them against a fake cgroupfs in a temp dir.

Only the stdlib's os/errno/time are used: the shim imports this module.
"""
from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"


def parse_mountinfo(text: str) -> tuple[dict[str, str], str | None]:
    """/proc/self/mountinfo -> ({v1 hierarchy name: mount point}, v2 mount point or None).

    A v1 hierarchy is named after its controllers ("cpu,cpuacct", "memory",
    "name=systemd"); co-mounted controllers share one entry.
    """
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields = pre.split()
        after = post.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        mnt = fields[4].replace("\\040", " ")
        fstype = after[0]
        if fstype == "cgroup2":
            if v2 is None or mnt == CGROUP_ROOT:
                v2 = mnt
        elif fstype == "cgroup":
            ctrls = [
                o
                for o in after[2].split(",")
                if o not in ("rw", "ro")
                and not o.startswith(
                    (
                        "relatime",
                        "noatime",
                        "nosuid",
                        "nodev",
                        "noexec",
                        "clone_children",
                        "release_agent",
                        "xattr",
                        "nsdelegate",
                        "noprefix",
                        "cpuset_v2_mode",
                    )
                )
            ]
            name = ",".join(ctrls)
            if name and name not in v1:
                v1[name] = mnt
    return v1, v2


class CgroupValueError(OSError):
    """The kernel did not take a value as given (runc: "error setting cgroup config")."""


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _rmdir_retry(path: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup; EBUSY means tasks are still leaving it, so retry briefly."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _read_int(path: str) -> int | None:
    try:
        return int(_read(path).strip())
    except (OSError, ValueError):
        return None  # missing file, or "max"


def _read_kv(path: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat, cgroup.events) -> dict."""
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except OSError:
        return out
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def _read_pids(d: str | None) -> list[int]:
    if not d:
        return []
    try:
        return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _wait_for(cond: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not cond():
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, f"timed out {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


# OCI blockIO keys -> the v1 blkio file / the v2 io.max key
_V1_BLKIO_FILES = {
    "weightDevice": "blkio.weight_device",
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}
_V2_IO_MAX_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
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
                            if not _read(mine).strip():
                                _write(mine, _read(os.path.join(parent, f)).strip() or "\n")
                        except OSError:
                            pass

    def apply(self, resources: dict[str, Any] | None) -> None:
        r = resources or {}
        mem = r.get("memory") or {}
        md = self._dir("memory")
        if md:
            limit = _int(mem.get("limit"))
            swap = _int(mem.get("swap"))
            if limit and limit > 0:
                memsw = os.path.join(md, "memory.memsw.limit_in_bytes")
                ordered = [("memory.limit_in_bytes", limit)]
                if swap is not None and swap != 0 and os.path.exists(memsw):
                    # The kernel keeps memory <= memory+swap at every step: raising
                    # both means memsw first, lowering both means memory first.
                    cur = _read_int(memsw)
                    pair = ("memory.memsw.limit_in_bytes", swap)
                    ordered = [pair, *ordered] if (swap < 0 or (cur is not None and swap > cur)) else [*ordered, pair]
                for name, value in ordered:
                    _write(os.path.join(md, name), str(value))
            res = _int(mem.get("reservation"))
            if res and res > 0:
                _write(os.path.join(md, "memory.soft_limit_in_bytes"), str(res))
            if mem.get("disableOOMKiller"):
                _write(os.path.join(md, "memory.oom_control"), "1")
            sw = _int(mem.get("swappiness"))
            if sw is not None and 0 <= sw <= 100:
                _write(os.path.join(md, "memory.swappiness"), str(sw))
        pids = (r.get("pids") or {}).get("limit")
        pd = self._dir("pids")
        if pd and isinstance(pids, int) and pids != 0:
            _write(os.path.join(pd, "pids.max"), "max" if pids < 0 else str(pids))
        cpu = r.get("cpu") or {}
        cd = self._dir("cpu")
        if cd:
            shares = _int(cpu.get("shares"))
            if shares:
                _write(os.path.join(cd, "cpu.shares"), str(shares))
                # the kernel clamps the value to its range: runc reads it back and refuses
                got = int(_read(os.path.join(cd, "cpu.shares")).strip() or shares)
                if got != shares:
                    bound = "maximum" if shares > got else "minimum"
                    raise CgroupValueError(f"the {bound} allowed cpu-shares is {got}")
            period = _int(cpu.get("period"))
            if period:
                _write(os.path.join(cd, "cpu.cfs_period_us"), str(period))
            quota = _int(cpu.get("quota"))
            if quota:
                _write(os.path.join(cd, "cpu.cfs_quota_us"), str(quota))
        sd = self._dir("cpuset")
        if sd:
            if cpu.get("cpus"):
                _write(os.path.join(sd, "cpuset.cpus"), str(cpu["cpus"]))
            if cpu.get("mems"):
                _write(os.path.join(sd, "cpuset.mems"), str(cpu["mems"]))
        bd = self._dir("blkio")
        bio = r.get("blockIO") or {}
        weight = _int(bio.get("weight"))
        if bd and weight:
            _write(os.path.join(bd, "blkio.weight"), str(weight))
        if bd:
            # one "major:minor value" line per write; the kernel keeps a rule per device
            for key, fname in _V1_BLKIO_FILES.items():
                field = "weight" if key == "weightDevice" else "rate"
                for dev in bio.get(key) or []:
                    _write(os.path.join(bd, fname), f"{dev['major']}:{dev['minor']} {dev[field]}")
        dd = self._dir("devices")
        if dd and r.get("devices") is not None:
            for rule in device_rules(r.get("devices") or []):
                allow, text = rule
                _write(os.path.join(dd, "devices.allow" if allow else "devices.deny"), text)

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
            for line in _read(os.path.join(md, "memory.oom_control")).splitlines():
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
        _write(state, "FROZEN" if frozen else "THAWED")
        if frozen:
            # FREEZING -> FROZEN happens asynchronously in the kernel
            _wait_for(lambda: _read(state).strip() == "FROZEN", f"freezing {d}")

    def pids(self) -> list[int]:
        d = self._dir("pids") or self._dir("memory") or next(iter(self.dirs.values()), None)
        return _read_pids(d)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        md = self._dir("memory")
        if md:
            mem: dict[str, Any] = {"stats": _read_kv(os.path.join(md, "memory.stat"))}
            for key, f in (("usage", "memory.usage_in_bytes"), ("max_usage", "memory.max_usage_in_bytes"),
                           ("limit", "memory.limit_in_bytes"), ("failcnt", "memory.failcnt")):
                v = _read_int(os.path.join(md, f))
                if v is not None:
                    mem[key] = v
            out["memory_stats"] = mem
        ad = self._dir("cpuacct")
        if ad:
            usage: dict[str, Any] = {"total_usage": _read_int(os.path.join(ad, "cpuacct.usage")) or 0}
            try:
                usage["percpu_usage"] = [int(x) for x in _read(os.path.join(ad, "cpuacct.usage_percpu")).split()]
            except (OSError, ValueError):
                pass
            st = _read_kv(os.path.join(ad, "cpuacct.stat"))
            # cpuacct.stat is in USER_HZ ticks; Docker reports nanoseconds
            usage["usage_in_usermode"] = st.get("user", 0) * 10_000_000
            usage["usage_in_kernelmode"] = st.get("system", 0) * 10_000_000
            out["cpu_stats"] = {"cpu_usage": usage}
        cd = self._dir("cpu")
        if cd and "cpu_stats" in out:
            t = _read_kv(os.path.join(cd, "cpu.stat"))
            out["cpu_stats"]["throttling_data"] = {"periods": t.get("nr_periods", 0),
                                                   "throttled_periods": t.get("nr_throttled", 0),
                                                   "throttled_time": t.get("throttled_time", 0)}
        pd = self._dir("pids")
        if pd:
            cur = _read_int(os.path.join(pd, "pids.current"))
            lim = _read_int(os.path.join(pd, "pids.max"))
            out["pids_stats"] = {"current": cur or 0, **({"limit": lim} if lim else {})}
        return out

    def kill_all(self) -> None:
        _kill_pids(self.pids())

    def destroy(self) -> None:
        errors: list[OSError] = []
        for d in self.dirs.values():
            try:
                _rmdir_retry(d)
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


class CgroupV2:
    """One directory in the unified hierarchy, controllers enabled on the way down."""

    version = 2

    def __init__(self, mount: str, cgroups_path: str) -> None:
        self.mount = mount
        self.cgroups_path = "/" + cgroups_path.strip("/")
        self.dir = os.path.join(mount, self.cgroups_path.lstrip("/"))

    def create(self) -> None:
        try:
            available = _read(os.path.join(self.mount, "cgroup.controllers")).split()
        except OSError:
            available = []
        cur = self.mount
        for part in self.cgroups_path.strip("/").split("/"):
            if available:
                # enable in the parent so the child gets the interface files
                try:
                    _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in available))
                except OSError:
                    pass
            cur = os.path.join(cur, part)
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                pass
            try:
                available = _read(os.path.join(cur, "cgroup.controllers")).split()
            except OSError:
                available = []

    def apply(self, resources: dict[str, Any] | None) -> None:
        r = resources or {}
        d = self.dir
        mem = r.get("memory") or {}
        limit = _int(mem.get("limit"))
        if limit and limit > 0:
            _write(os.path.join(d, "memory.max"), str(limit))
            swap = _int(mem.get("swap"))
            if swap is not None and swap != 0:
                # v1 "memsw" is memory+swap; v2 counts swap alone.
                _write(os.path.join(d, "memory.swap.max"), "max" if swap < 0 else str(max(swap - limit, 0)))
        res = _int(mem.get("reservation"))
        if res and res > 0:
            _write(os.path.join(d, "memory.low"), str(res))
        pids = (r.get("pids") or {}).get("limit")
        if isinstance(pids, int) and pids != 0:
            _write(os.path.join(d, "pids.max"), "max" if pids < 0 else str(pids))
        cpu = r.get("cpu") or {}
        shares = _int(cpu.get("shares"))
        if shares:
            _write(os.path.join(d, "cpu.weight"), str(shares_to_weight(shares)))
        quota = _int(cpu.get("quota"))
        period = _int(cpu.get("period"))
        if quota or period:
            q = "max" if not quota or quota < 0 else str(quota)
            _write(os.path.join(d, "cpu.max"), f"{q} {period or 100000}")
        if cpu.get("cpus"):
            _write(os.path.join(d, "cpuset.cpus"), str(cpu["cpus"]))
        if cpu.get("mems"):
            _write(os.path.join(d, "cpuset.mems"), str(cpu["mems"]))
        bio = r.get("blockIO") or {}
        weight = _int(bio.get("weight"))
        weight_file = os.path.join(d, "io.bfq.weight") if os.path.exists(os.path.join(d, "io.bfq.weight")) \
            else os.path.join(d, "io.weight")
        if weight:
            _write(weight_file, str(weight))
        for dev in bio.get("weightDevice") or []:
            _write(weight_file, f"{dev['major']}:{dev['minor']} {dev['weight']}")
        # io.max takes every limit of a device on one line
        limits: dict[str, list[str]] = {}
        for key, word in _V2_IO_MAX_KEYS.items():
            for dev in bio.get(key) or []:
                limits.setdefault(f"{dev['major']}:{dev['minor']}", []).append(f"{word}={dev['rate']}")
        for devno, parts in limits.items():
            _write(os.path.join(d, "io.max"), f"{devno} {' '.join(parts)}")
        # v2 device control needs eBPF programs: not implemented (documented gap).

    def procs_files(self) -> list[str]:
        return [os.path.join(self.dir, "cgroup.procs")]

    def join_files(self) -> list[str]:
        return self.procs_files()   # v2: cgroup.threads is only for threaded subtrees

    def bind_sources(self) -> list[tuple[str, str]]:
        return []

    def oom_killed(self) -> bool:
        try:
            for line in _read(os.path.join(self.dir, "memory.events")).splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill" and v.strip().isdigit():
                    return int(v) > 0
        except OSError:
            pass
        return False

    def freeze(self, frozen: bool) -> None:
        _write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
        if frozen:
            events = os.path.join(self.dir, "cgroup.events")
            _wait_for(lambda: _read_kv(events).get("frozen") == 1, f"freezing {self.dir}")

    def pids(self) -> list[int]:
        return _read_pids(self.dir)

    def stats(self) -> dict[str, Any]:
        d = self.dir
        mem: dict[str, Any] = {"stats": _read_kv(os.path.join(d, "memory.stat"))}
        usage = _read_int(os.path.join(d, "memory.current"))
        if usage is not None:
            mem["usage"] = usage
        limit = _read_int(os.path.join(d, "memory.max"))
        if limit is not None:
            mem["limit"] = limit
        cpu = _read_kv(os.path.join(d, "cpu.stat"))
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
        cur = _read_int(os.path.join(d, "pids.current"))
        if cur is not None:
            lim = _read_int(os.path.join(d, "pids.max"))
            out["pids_stats"] = {"current": cur, **({"limit": lim} if lim else {})}
        return out

    def kill_all(self) -> None:
        try:
            _write(os.path.join(self.dir, "cgroup.kill"), "1")  # kernel >= 5.14
        except OSError:
            _kill_pids(self.pids())

    def destroy(self) -> None:
        _rmdir_retry(self.dir)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (the conversion runc and the kernel docs use)."""
    shares = max(2, min(shares, 262144))
    return 1 + ((shares - 2) * 9999) // 262142


def manager_for(cgroups_path: str, mountinfo: str | None = None) -> CgroupV1 | CgroupV2 | None:
    """The manager for this host: v2 when /sys/fs/cgroup is unified, else v1 (hybrid's
    empty unified mount is ignored).  None when no cgroup file system is mounted."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    v1, v2 = parse_mountinfo(mountinfo)
    if v2 == CGROUP_ROOT or (v2 and not v1):
        return CgroupV2(v2, cgroups_path)
    if v1:
        return CgroupV1(v1, cgroups_path)
    return None


def from_state(state: dict[str, Any]) -> CgroupV1 | CgroupV2:
    """Rebuild a manager from ``to_state`` output (used by the shim's cleanup)."""
    if state["version"] == 2:
        return CgroupV2(state["mount"], state["path"])
    return CgroupV1(state["mounts"], state["path"])


def to_state(m: CgroupV1 | CgroupV2) -> dict[str, Any]:
    if isinstance(m, CgroupV2):
        return {"version": 2, "mount": m.mount, "path": m.cgroups_path}
    return {"version": 1, "mounts": m.mounts, "path": m.cgroups_path}
