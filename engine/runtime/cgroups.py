"""Per-container cgroups through the cgroup file system (v1 and v2).

The shim creates the container's cgroups before the init runs, the init moves
itself in (writing "0" to ``cgroup.procs``), and the shim removes them after
the container exited.  Both versions work on any directory tree, so unit tests
drive them against a fake cgroupfs in a temp dir.

The version-specific managers are ``cgroups_v1.CgroupV1`` and
``cgroups_v2.CgroupV2``; the file helpers both use are in ``cgroupfs``.  This
module finds the host's mounts and picks the manager.

Only the stdlib is used: the shim imports this module.
"""
from __future__ import annotations

from engine.runtime.cgroupfs import CgroupValueError
from engine.runtime.cgroups_v1 import CgroupV1, device_rules
from engine.runtime.cgroups_v2 import CgroupV2, shares_to_weight

__all__ = ["CGROUP_ROOT", "CgroupV1", "CgroupV2", "CgroupValueError", "device_rules", "from_state",
           "manager_for", "parse_mountinfo", "remember_mounts", "shares_to_weight", "to_state"]

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


# The host's cgroup mounts as read once by remember_mounts() (the shim parent does, so that
# no shim reads and parses /proc/self/mountinfo: thousands of lines with many containers).
_remembered: tuple[dict[str, str], str | None] | None = None


def remember_mounts() -> None:
    """Read the cgroup mounts now and use them for every later ``manager_for``."""
    global _remembered
    with open("/proc/self/mountinfo") as f:
        _remembered = parse_mountinfo(f.read())


def manager_for(cgroups_path: str, mountinfo: str | None = None) -> CgroupV1 | CgroupV2 | None:
    """The manager for this host: v2 when /sys/fs/cgroup is unified, else v1 (hybrid's
    empty unified mount is ignored).  None when no cgroup file system is mounted."""
    if mountinfo is None and _remembered is not None:
        v1, v2 = _remembered
    else:
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
