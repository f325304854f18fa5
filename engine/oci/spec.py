"""Build an OCI runtime-spec config.json (as a dict) from a container's settings.

Like moby's ``oci_linux.go``, the spec is a default (``default_spec``: what
dockerd writes for a container on a cgroup v1 host, checked field by field
against a reference daemon's config.json) changed by small options applied in
order (``with_*``: each a ``SpecOption``, a function that edits the spec).
``build_spec(SpecInput)`` is the typed front the container service uses: it
turns the input into options (``options_for``), then applies the input's
``extra_options`` (e.g. from start contributors) last.  Pure: nothing here
touches the host.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.oci.caps import CAPABILITIES, DEFAULT_CAPABILITIES, tweak
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

Spec = dict[str, Any]
SpecOption = Callable[[Spec], None]


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
    devices: tuple[dict[str, Any], ...] = ()      # OCI linux.devices (+ "access"), see engine.containers.devices
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
    extra_options: tuple[SpecOption, ...] = ()    # applied after everything above, in order


def _caps(inp: SpecInput) -> list[str]:
    if inp.privileged:
        return sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
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


# ------------------------------------------------------------------ the default and the options
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
        "mounts": _standard_mounts(SpecInput(container_id="", rootfs=rootfs, args=[])),
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


def with_process(args: list[str], env: list[str], cwd: str = "/", *, tty: bool = False,
                 oom_score_adj: int = 0) -> SpecOption:
    def opt(spec: Spec) -> None:
        p = spec["process"]
        p.update(args=list(args), env=list(env), cwd=cwd or "/", oomScoreAdj=oom_score_adj)
        if tty:
            p["terminal"] = True
    return opt


def with_user(uid: int, gid: int, additional_gids: Iterable[int] = ()) -> SpecOption:
    """The process's identity; a non-root process keeps only the bounding capability set
    (dockerd gives effective/permitted to root only: they would be lost at execve anyway)."""
    def opt(spec: Spec) -> None:
        user: dict[str, Any] = {"uid": uid, "gid": gid}
        gids = list(additional_gids)
        if gids:
            user["additionalGids"] = gids
        spec["process"]["user"] = user
        if uid != 0:
            caps = spec["process"]["capabilities"]
            caps.pop("effective", None)
            caps.pop("permitted", None)
    return opt


def with_capabilities(caps: list[str]) -> SpecOption:
    def opt(spec: Spec) -> None:
        capset = spec["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted"):
            if key in capset:
                capset[key] = list(caps)
    return opt


def with_no_new_privileges() -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["process"]["noNewPrivileges"] = True
    return opt


def with_rlimits(rlimits: Iterable[tuple[str, int, int]]) -> SpecOption:
    """("RLIMIT_NOFILE" or "nofile", soft, hard) entries."""
    def opt(spec: Spec) -> None:
        spec["process"]["rlimits"] = [{"type": _rlimit_name(n), "hard": int(hard), "soft": int(soft)}
                                      for n, soft, hard in rlimits]
    return opt


def with_readonly_rootfs() -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["root"]["readonly"] = True
    return opt


def with_hostname(hostname: str, domainname: str = "") -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["hostname"] = hostname
        if domainname:
            spec["domainname"] = domainname
    return opt


def with_namespaces(namespaces: Iterable[tuple[str, str | None]],
                    overrides: Iterable[tuple[str, str]] = ()) -> SpecOption:
    """(type, path or None) in order; an override joins a path, or shares the host's with "".
    Sharing the host's UTS namespace means the host's hostname; no network namespace of its
    own drops the sysctls dockerd sets for a private one."""
    def opt(spec: Spec) -> None:
        over = dict(overrides)
        ns = [(t, over.get(t, p)) for t, p in namespaces if over.get(t) != ""]
        spec["linux"]["namespaces"] = [{"type": t, "path": p} if p else {"type": t} for t, p in ns]
        types = {t for t, _ in ns}
        if over.get("uts") == "":
            spec["hostname"] = ""
        if "network" not in types:
            for key in DEFAULT_NET_SYSCTLS:
                spec["linux"].get("sysctl", {}).pop(key, None)
    return opt


def with_sysctls(sysctls: dict[str, str], *, replace: bool = False) -> SpecOption:
    """On top of what is there (``replace``: instead of it)."""
    def opt(spec: Spec) -> None:
        current = {} if replace else spec["linux"].get("sysctl", {})
        spec["linux"]["sysctl"] = {**current, **sysctls}
    return opt


def with_mounts(mounts: Iterable[Mount]) -> SpecOption:
    """Appended in order; one with a standard mount's destination replaces that one."""
    def opt(spec: Spec) -> None:
        extra: list[dict[str, Any]] = [{"destination": d, "type": t, "source": s, "options": list(o)}
                                       for d, t, s, o in mounts]
        dests = {m["destination"].rstrip("/") or "/" for m in extra}
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] not in dests] + extra
    return opt


def with_init(init_binary: str) -> SpecOption:
    """--init: docker-init from the host, read-only at /sbin/docker-init (after the other mounts)."""
    def opt(spec: Spec) -> None:
        spec["mounts"].append({"destination": "/sbin/docker-init", "type": "bind", "source": init_binary,
                               "options": ["bind", "ro"]})
    return opt


def with_cgroups_path(path: str) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["linux"]["cgroupsPath"] = path
    return opt


def with_resources(resources: dict[str, Any]) -> SpecOption:
    """OCI linux.resources, merged key by key into what is there (device rules are kept)."""
    def opt(spec: Spec) -> None:
        current = spec["linux"]["resources"]
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
    return opt


def with_devices(devices: Iterable[dict[str, Any]], *, allow: bool = True) -> SpecOption:
    """Device nodes (OCI linux.devices plus the cgroup permission under "access"); ``allow``:
    add a cgroup rule for each (a privileged container allows every device already)."""
    def opt(spec: Spec) -> None:
        devs = list(devices)
        if allow:
            spec["linux"]["resources"]["devices"].extend(
                {"allow": True, "type": d.get("type", "c"), "major": d.get("major"), "minor": d.get("minor"),
                 "access": d.get("access", "rwm")} for d in devs)
        if devs:
            spec["linux"]["devices"] = [{k: v for k, v in d.items() if k != "access"} for d in devs]
    return opt


def with_device_rules(rules: Iterable[dict[str, Any]]) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["linux"]["resources"]["devices"].extend(dict(r) for r in rules)
    return opt


def with_seccomp(profile: dict[str, Any] | None) -> SpecOption:
    """A profile, or None for none at all (unconfined, privileged)."""
    def opt(spec: Spec) -> None:
        if profile is None:
            spec["linux"].pop("seccomp", None)
        else:
            spec["linux"]["seccomp"] = profile
    return opt


def with_paths(masked: Iterable[str] | None, readonly: Iterable[str] | None) -> SpecOption:
    """Masked and read-only paths; None or empty leaves the list out."""
    def opt(spec: Spec) -> None:
        for key, paths in (("maskedPaths", masked), ("readonlyPaths", readonly)):
            if paths is None:
                spec["linux"].pop(key, None)
            else:
                spec["linux"][key] = list(paths)
    return opt


def with_privileged(devices: Iterable[dict[str, Any]] = ()) -> SpecOption:
    """--privileged: every capability, every device allowed, no seccomp, no masked paths,
    read-write /sys and cgroups."""
    caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)

    def opt(spec: Spec) -> None:
        with_capabilities(caps)(spec)
        spec["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        spec["linux"].pop("seccomp", None)
        spec["linux"].pop("maskedPaths", None)
        spec["linux"].pop("readonlyPaths", None)
        with_devices(devices, allow=False)(spec)
    return opt


def apply(spec: Spec, options: Iterable[SpecOption]) -> Spec:
    for option in options:
        option(spec)
    return _canonical(spec)


# dockerd's key order in config.json (the options may add keys in any order)
_KEY_ORDER = {
    "": ("ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "linux"),
    "process": ("terminal", "user", "args", "env", "cwd", "capabilities", "oomScoreAdj", "noNewPrivileges",
                "rlimits"),
    "linux": ("sysctl", "resources", "cgroupsPath", "namespaces", "devices", "seccomp", "maskedPaths",
              "readonlyPaths"),
}


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _canonical(spec: Spec) -> Spec:
    out = _ordered(spec, _KEY_ORDER[""])
    out["process"] = _ordered(out["process"], _KEY_ORDER["process"])
    linux = _ordered(out["linux"], _KEY_ORDER["linux"])
    if not linux.get("sysctl"):
        linux.pop("sysctl", None)
    out["linux"] = linux
    return out


# ------------------------------------------------------------------ the typed front
def options_for(inp: SpecInput) -> list[SpecOption]:
    """The options that make ``inp``'s spec out of ``default_spec``, in the order they apply."""
    caps = _caps(inp)
    opts: list[SpecOption] = [
        with_process(inp.args, inp.env, inp.cwd, tty=inp.tty, oom_score_adj=inp.oom_score_adj),
        with_capabilities(caps),
        with_user(inp.uid, inp.gid, list(inp.additional_gids)
                  + [g for g in inp.extra_gids if g not in inp.additional_gids]),
    ]
    if inp.no_new_privileges:
        opts.append(with_no_new_privileges())
    if inp.rlimits:
        opts.append(with_rlimits(inp.rlimits))
    if inp.readonly_rootfs:
        opts.append(with_readonly_rootfs())
    opts.append(with_hostname(inp.hostname, inp.domainname))
    opts.append(with_namespaces(inp.namespaces, inp.ns_overrides))
    if inp.sysctls is not None:
        opts.append(with_sysctls(inp.sysctls, replace=True))
    if inp.extra_sysctls:
        opts.append(with_sysctls(inp.extra_sysctls))
    opts.append(_with_standard_mounts(inp))
    opts.append(with_mounts(inp.extra_mounts))
    if inp.init_binary:
        opts.append(with_init(inp.init_binary))
    if inp.cgroups_path:
        opts.append(with_cgroups_path(inp.cgroups_path))
    if inp.privileged:
        opts.append(with_privileged(inp.devices))
        if inp.masked_paths or inp.readonly_paths:
            opts.append(with_paths(inp.masked_paths or None, inp.readonly_paths or None))
    else:
        opts.append(with_devices(inp.devices))
        opts.append(with_device_rules(inp.device_rules))
        opts.append(with_seccomp(None if not inp.seccomp else
                                 inp.seccomp_profile if inp.seccomp_profile is not None else default_profile(caps)))
        opts.append(with_paths(inp.masked_paths if inp.masked_paths is not None else DEFAULT_MASKED_PATHS,
                               inp.readonly_paths if inp.readonly_paths is not None else DEFAULT_READONLY_PATHS))
    if inp.resources:
        opts.append(with_resources(inp.resources))
    opts.extend(inp.extra_options)
    return opts


def _with_standard_mounts(inp: SpecInput) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["mounts"] = _standard_mounts(inp)
    return opt


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The config.json for ``inp`` (OCI runtime-spec 1.0)."""
    return apply(default_spec(inp.rootfs), options_for(inp))
