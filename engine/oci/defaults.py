"""dockerd's default OCI spec: what it writes for a container that asked for nothing.

Checked field by field against a reference daemon's config.json on a cgroup v1 host (moby's
``pkg/oci/defaults.go`` plays this part there).  The options in ``engine.oci.options`` change it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.oci.caps import DEFAULT_CAPABILITIES
from engine.oci.seccomp import default_profile

# (destination, type, source, options) like ExtraMount
Mount = tuple[str, str, str, tuple[str, ...] | list[str]]

Spec = dict[str, Any]
SpecOption = Callable[[Spec], None]

OCI_VERSION = "1.0.2-dev"

# Newer Docker's list (20.10 lacks /proc/interrupts and /sys/devices/virtual/powercap).
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# (type, path) pairs; path None = a new namespace.  dockerd's order.
DEFAULT_NAMESPACES: tuple[tuple[str, str | None], ...] = (
    ("mount", None),
    ("network", None),
    ("uts", None),
    ("pid", None),
    ("ipc", None),
)

# Sysctls dockerd sets when the container has its own network namespace.
DEFAULT_NET_SYSCTLS: dict[str, str] = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}

DEFAULT_SHM_SIZE = 64 * 1024 * 1024

_DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]


def standard_mounts(*, shm_size: int | None = None, privileged: bool = False, writable_cgroups: bool | None = None,
                    shm_source: str | None = None) -> list[dict[str, Any]]:
    """/proc, /dev, /dev/pts, /sys, the cgroup tree, mqueue and /dev/shm, as dockerd mounts them."""
    shm = shm_size if shm_size else DEFAULT_SHM_SIZE
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    cg_rw = privileged if writable_cgroups is None else writable_cgroups
    cg_opts = (["rw"] if cg_rw else ["ro"]) + ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": cg_opts},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        *_shm_mount(shm_source, shm),
    ]


def _shm_mount(source: str | None, size: int) -> list[dict[str, Any]]:
    if source is None:
        return [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"]}]
    if source == "":
        return []  # --ipc none
    return [{"destination": "/dev/shm", "type": "bind", "source": source, "options": ["rbind", "rprivate"]}]


def default_spec(rootfs: str) -> Spec:
    """dockerd's spec for a container that asked for nothing: root, the default capabilities,
    new namespaces, its standard mounts, the default device rules, seccomp profile and
    masked/read-only paths."""
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": OCI_VERSION,
        "process": {"user": {"uid": 0, "gid": 0}, "args": [], "env": [], "cwd": "/",
                    "capabilities": {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)},
                    "oomScoreAdj": 0},
        "root": {"path": rootfs},
        "hostname": "",
        "mounts": standard_mounts(),
        "hooks": {},
        "linux": {
            "sysctl": dict(DEFAULT_NET_SYSCTLS),
            "resources": {"devices": [dict(d) for d in _DEFAULT_DEVICE_RULES], "memory": {"disableOOMKiller": False},
                          "cpu": {"shares": 0}, "blockIO": {"weight": 0}},
            "namespaces": [{"type": t} for t, _ in DEFAULT_NAMESPACES],
            "seccomp": default_profile(caps),
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }
