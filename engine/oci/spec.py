"""Build an OCI runtime-spec config.json (as a dict) from a container's settings.

A pure function over a frozen input, so it is trivially testable.  The
defaults are what dockerd 20.10 writes for a container on a cgroup v1 host
(checked field by field against a reference daemon's config.json).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.oci.caps import DEFAULT_CAPABILITIES, every_capability, process_capabilities, tweak
from engine.oci.seccomp import default_profile

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

# (destination, type, source, options) like ExtraMount
Mount = tuple[str, str, str, tuple[str, ...] | list[str]]


@dataclass(frozen=True)
class SpecInput:
    container_id: str
    rootfs: str                                   # absolute path of the mounted rootfs
    args: list[str]
    hostname: str = ""
    domainname: str = ""
    readonly_rootfs: bool = False
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    tty: bool = False
    extra_mounts: list[Mount] = field(default_factory=list)   # appended after the standard mounts
    cgroups_path: str = ""
    capabilities: tuple[str, ...] | None = None   # None = dockerd's default set
    cap_add: tuple[str, ...] = ()                 # applied on top ("ALL" allowed)
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    masked_paths: tuple[str, ...] | None = None    # None = dockerd's defaults ([] when privileged)
    readonly_paths: tuple[str, ...] | None = None
    rlimits: tuple[tuple[str, int, int], ...] = ()  # ("RLIMIT_NOFILE", soft, hard) or ("nofile", ...)
    namespaces: tuple[tuple[str, str | None], ...] = DEFAULT_NAMESPACES
    sysctls: dict[str, str] | None = None         # None = dockerd's defaults for a private netns
    shm_size: int | None = None                   # bytes; None = 64 MiB
    resources: dict[str, Any] | None = None       # OCI linux.resources (memory/pids/cpu...); devices added
    devices: tuple[dict[str, Any], ...] = ()      # OCI linux.devices (+ "access"), see engine.oci.devices
    oom_score_adj: int = 0
    seccomp: bool = True                          # False = --security-opt seccomp=unconfined
    seccomp_profile: dict[str, Any] | None = None  # a custom OCI linux.seccomp; None = our default
    # security and namespace options (engine/oci/hostopts.py)
    ns_overrides: tuple[tuple[str, str], ...] = ()  # (type, path to join); path "" = share the host's
    shm_source: str | None = None                 # None = a private tmpfs; "" = no /dev/shm; else bind it
    extra_sysctls: dict[str, str] = field(default_factory=dict)  # on top of the defaults
    device_rules: tuple[dict[str, Any], ...] = ()  # extra cgroup device rules (--device-cgroup-rule)
    extra_gids: tuple[int, ...] = ()              # --group-add
    init_binary: str = ""                         # --init: host path of docker-init, mounted read-only
    writable_cgroups: bool | None = None          # --security-opt writable-cgroups=...; None = privileged


def _caps(inp: SpecInput) -> list[str]:
    if inp.privileged:
        return every_capability()
    base = list(inp.capabilities) if inp.capabilities is not None else list(DEFAULT_CAPABILITIES)
    return tweak(base, inp.cap_add, inp.cap_drop)


def _rlimit_name(name: str) -> str:
    up = name.upper()
    return up if up.startswith("RLIMIT_") else "RLIMIT_" + up


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


def _standard_mounts(inp: SpecInput) -> list[dict[str, Any]]:
    shm = inp.shm_size if inp.shm_size else DEFAULT_SHM_SIZE
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if inp.privileged else ["ro"])
    cg_rw = inp.privileged if inp.writable_cgroups is None else inp.writable_cgroups
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
        *_shm_mount(inp, shm),
    ]


def _shm_mount(inp: SpecInput, size: int) -> list[dict[str, Any]]:
    if inp.shm_source is None:
        return [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"]}]
    if inp.shm_source == "":
        return []  # --ipc none
    return [{"destination": "/dev/shm", "type": "bind", "source": inp.shm_source, "options": ["rbind", "rprivate"]}]


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The config.json for ``inp`` (OCI runtime-spec 1.0)."""
    caps = _caps(inp)
    capabilities = process_capabilities(caps, inp.uid)

    user: dict[str, Any] = {"uid": inp.uid, "gid": inp.gid}
    gids = list(inp.additional_gids) + [g for g in inp.extra_gids if g not in inp.additional_gids]
    if gids:
        user["additionalGids"] = gids

    process: dict[str, Any] = {
        "user": user,
        "args": list(inp.args),
        "env": list(inp.env),
        "cwd": inp.cwd or "/",
        "capabilities": capabilities,
        "oomScoreAdj": inp.oom_score_adj,
    }
    if inp.tty:
        process = {"terminal": True, **process}
    if inp.no_new_privileges:
        process["noNewPrivileges"] = True
    if inp.rlimits:
        process["rlimits"] = [
            {"type": _rlimit_name(n), "hard": int(hard), "soft": int(soft)} for n, soft, hard in inp.rlimits
        ]

    extra_dests = {m[0].rstrip("/") or "/" for m in inp.extra_mounts}
    mounts = [m for m in _standard_mounts(inp) if m["destination"] not in extra_dests]
    for dest, typ, src, opts in inp.extra_mounts:
        mounts.append({"destination": dest, "type": typ, "source": src, "options": list(opts)})
    if inp.init_binary:
        mounts.append({"destination": "/sbin/docker-init", "type": "bind", "source": inp.init_binary,
                       "options": ["bind", "ro"]})

    root: dict[str, Any] = {"path": inp.rootfs}
    if inp.readonly_rootfs:
        root["readonly"] = True

    overrides = dict(inp.ns_overrides)
    ns_list = [(t, overrides.get(t, p)) for t, p in inp.namespaces if overrides.get(t) != ""]
    ns_types = {t for t, _ in ns_list}
    namespaces = [{"type": t, "path": p} if p else {"type": t} for t, p in ns_list]

    if inp.sysctls is not None:
        sysctl = dict(inp.sysctls)
    else:
        sysctl = dict(DEFAULT_NET_SYSCTLS) if "network" in ns_types else {}
    sysctl.update(inp.extra_sysctls)

    resources: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if inp.privileged else [dict(d) for d in _DEFAULT_DEVICE_RULES],
        "memory": {"disableOOMKiller": False},
        "cpu": {"shares": 0},
        "blockIO": {"weight": 0},
    }
    if not inp.privileged:
        for d in inp.devices:
            resources["devices"].append({"allow": True, "type": d.get("type", "c"), "major": d.get("major"),
                                         "minor": d.get("minor"), "access": d.get("access", "rwm")})
        resources["devices"].extend(dict(r) for r in inp.device_rules)
    for key, value in (inp.resources or {}).items():
        if isinstance(value, dict) and isinstance(resources.get(key), dict):
            resources[key] = {**resources[key], **value}
        else:
            resources[key] = value

    linux: dict[str, Any] = {}
    if sysctl:
        linux["sysctl"] = sysctl
    linux["resources"] = resources
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path
    linux["namespaces"] = namespaces
    if inp.devices:
        # "access" is the cgroup permission of --device, not an OCI device field
        linux["devices"] = [{k: v for k, v in d.items() if k != "access"} for d in inp.devices]
    if inp.seccomp and not inp.privileged:
        linux["seccomp"] = inp.seccomp_profile if inp.seccomp_profile is not None else default_profile(caps)
    if not inp.privileged:
        linux["maskedPaths"] = list(inp.masked_paths if inp.masked_paths is not None else DEFAULT_MASKED_PATHS)
        linux["readonlyPaths"] = list(inp.readonly_paths if inp.readonly_paths is not None else DEFAULT_READONLY_PATHS)
    else:
        if inp.masked_paths:
            linux["maskedPaths"] = list(inp.masked_paths)
        if inp.readonly_paths:
            linux["readonlyPaths"] = list(inp.readonly_paths)

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": root,
        "hostname": inp.hostname if overrides.get("uts") != "" else "",  # --uts=host: the host's name
    }
    if inp.domainname:
        spec["domainname"] = inp.domainname
    spec["mounts"] = mounts
    spec["hooks"] = {}
    spec["linux"] = linux
    return spec
