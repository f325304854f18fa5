"""Facts about the host and the daemon, for /info and /version."""
from __future__ import annotations

import os
import platform
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostFacts:
    kernel_version: str
    operating_system: str
    os_version: str
    os_type: str
    architecture: str
    ncpu: int
    mem_total: int
    cgroup_version: str
    cgroup_driver: str
    hostname: str
    memory_limit: bool
    swap_limit: bool
    cpu_cfs_period: bool
    cpu_cfs_quota: bool
    cpu_shares: bool
    cpuset: bool
    pids_limit: bool
    kernel_memory_tcp: bool
    oom_kill_disable: bool
    ipv4_forwarding: bool


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def cgroup_version() -> str:
    """'2' when /sys/fs/cgroup is a pure cgroup2 mount, else '1' (v1 or hybrid)."""
    try:
        st = os.statvfs("/sys/fs/cgroup")
        del st
    except OSError:
        return "1"
    for line in _read("/proc/self/mountinfo").splitlines():
        parts = line.split(" - ")
        if len(parts) != 2:
            continue
        mount_point = parts[0].split()[4]
        fstype = parts[1].split()[0]
        if mount_point == "/sys/fs/cgroup":
            return "2" if fstype == "cgroup2" else "1"
    return "1"


def arch_name() -> str:
    machine = platform.machine()
    return {"aarch64": "aarch64", "arm64": "aarch64"}.get(machine, machine)


def go_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x"}.get(platform.machine(), platform.machine())


def host_facts() -> HostFacts:
    osr = os_release()
    mem_total = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = int(line.split()[1]) * 1024
            break
    cg = cgroup_version()
    if cg == "1":
        memory = os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        swap = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        cfs = os.path.exists("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        shares = os.path.exists("/sys/fs/cgroup/cpu/cpu.shares")
        cpuset = os.path.exists("/sys/fs/cgroup/cpuset/cpuset.cpus")
        pids = os.path.exists("/sys/fs/cgroup/pids")
        oom = os.path.exists("/sys/fs/cgroup/memory/memory.oom_control")
        kmem_tcp = os.path.exists("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes")
    else:
        controllers = _read("/sys/fs/cgroup/cgroup.controllers").split()
        memory = swap = "memory" in controllers
        cfs = shares = "cpu" in controllers
        cpuset = "cpuset" in controllers
        pids = "pids" in controllers
        oom = False
        kmem_tcp = False
    return HostFacts(
        kernel_version=platform.release(),
        operating_system=osr.get("PRETTY_NAME", "Linux"),
        os_version=osr.get("VERSION_ID", ""),
        os_type="linux",
        architecture=arch_name(),
        ncpu=os.cpu_count() or 1,
        mem_total=mem_total,
        cgroup_version=cg,
        cgroup_driver="cgroupfs",
        hostname=platform.node(),
        memory_limit=memory,
        swap_limit=swap,
        cpu_cfs_period=cfs,
        cpu_cfs_quota=cfs,
        cpu_shares=shares,
        cpuset=cpuset,
        pids_limit=pids,
        kernel_memory_tcp=kmem_tcp,
        oom_kill_disable=oom,
        ipv4_forwarding=_read("/proc/sys/net/ipv4/ip_forward").strip() == "1",
    )


def daemon_id(data_root: Path) -> str:
    """A stable identifier for this daemon, kept in the data root."""
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = str(uuid.uuid4())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(ident + "\n")
        os.replace(tmp, path)
        return ident


def source_commit(checkout: Path) -> str:
    """The short commit id of the git checkout the daemon runs from ("unknown" when it is not one):
    `docker version`'s "Git commit". Read from the files, no git binary needed."""
    try:
        dot_git = checkout / ".git"
        if dot_git.is_file():  # a worktree: "gitdir: <path>"
            gitdir = Path(dot_git.read_text().split(":", 1)[1].strip())
            gitdir = gitdir if gitdir.is_absolute() else checkout / gitdir
        elif dot_git.is_dir():
            gitdir = dot_git
        else:
            return "unknown"
        head = (gitdir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:7] or "unknown"
        ref = head[4:].strip()
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
        for base in (gitdir, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()[:7] or "unknown"
        if (common / "packed-refs").is_file():
            for line in (common / "packed-refs").read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha[:7]
    except (OSError, IndexError):
        pass
    return "unknown"
