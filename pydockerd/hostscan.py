"""What a daemon can leave on the host, found and removed: processes, mounts, cgroups, links, chains.

Shared by the private daemons of :mod:`pydockerd.private` (the pytest plugin) and the project's
conformance harness, which also runs private reference dockerds with the same scans.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
HEX = frozenset("0123456789abcdef")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` (an exception counts as not yet) until true; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the condition is not met yet; poll again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)  # polling a condition with a deadline, not a synchronisation sleep


# ---- processes
def cmdline_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_mentioning(*needles: str) -> list[int]:
    """Pids whose command line contains every needle (never this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = cmdline_of(int(entry.name))
        if cmdline and all(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


# ---- mounts
def mounts_under(prefix: str) -> list[str]:
    """Mount points below `prefix`."""
    prefix = prefix.rstrip("/") + "/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point.startswith(prefix):
            out.append(mount_point)
    return out


def unmount_all_under(prefix: str) -> None:
    """Deepest first, lazily, so a busy mount cannot block a teardown."""
    for mount_point in sorted(set(mounts_under(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)


# ---- files
def container_ids_under(root: Path, depth: int = 6) -> set[str]:
    """Names of 64-hex directories below `root` (container ids in any daemon's root layout)."""
    found: set[str] = set()
    if not root.is_dir():
        return found
    base = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).parts) - base >= depth:
            dirnames[:] = []
        for d in dirnames:
            if len(d) == 64 and HEX.issuperset(d):
                found.add(d)
    return found


# ---- cgroups
def cgroup_hierarchies() -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]  # unified (v2) only
    return [h for h in CGROUP_ROOT.iterdir() if h.is_dir() and not h.is_symlink()]


def cgroups_of(ids: Iterable[str]) -> list[Path]:
    """Every cgroup dir (any hierarchy, a few levels deep) whose name contains one of `ids`."""
    wanted = [i for i in ids if len(i) >= 12]
    found: list[Path] = []
    if not wanted:
        return found
    for hierarchy in cgroup_hierarchies():
        for dirpath, dirnames, _ in os.walk(hierarchy):
            if len(Path(dirpath).relative_to(hierarchy).parts) >= 4:
                dirnames[:] = []
                continue
            found.extend(Path(dirpath) / d for d in dirnames if any(i in d for i in wanted))
    return found


def cgroups_under(parent: str) -> list[Path]:
    """Every cgroup below `parent` (relative to each hierarchy's root), deepest first."""
    found: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        base = hierarchy / parent
        if parent and base.is_dir():
            found.extend(Path(dp) / d for dp, dirs, _ in os.walk(base) for d in dirs)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def remove_cgroups(ids: Iterable[str]) -> None:
    """rmdir (bottom-up) every cgroup dir whose name contains one of `ids`."""
    for victim in sorted(cgroups_of(ids), key=lambda p: len(p.parts), reverse=True):
        for sub in sorted(victim.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                rmdir_quiet(sub)
        rmdir_quiet(victim)


def remove_cgroup_parent(parent: str) -> None:
    """Remove a daemon's own cgroup parent and everything below it, in every hierarchy."""
    if not parent:
        return
    for cg in cgroups_under(parent):
        rmdir_quiet(cg)
    for hierarchy in cgroup_hierarchies():
        rmdir_quiet(hierarchy / parent)


# ---- links
def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ports_of(bridge: str) -> list[str]:
    """The interfaces (veths) enslaved to `bridge`."""
    base = Path("/sys/class/net", bridge, "brif")
    return sorted(os.listdir(base)) if base.is_dir() else []


def create_bridge(name: str, address: str) -> None:
    for args in (["link", "add", name, "type", "bridge"], ["addr", "add", address, "dev", name],
                 ["link", "set", name, "up"]):
        subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


# ---- iptables (both families: a daemon with IPv6 networks has ip6tables chains too)
IPTABLES = ("iptables", "ip6tables")


def _rules(tool: str, table: str) -> list[str]:
    try:
        return subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True,
                              check=False).stdout.splitlines()
    except FileNotFoundError:     # no ip6tables on this host
        return []


def chains_with(prefix: str) -> list[str]:
    """Every filter/nat chain whose name starts with `prefix`: "table:chain" (IPv4), "ip6tables:table:chain"."""
    found = []
    for tool in IPTABLES:
        for table in ("filter", "nat"):
            found += [f"{'' if tool == 'iptables' else 'ip6tables:'}{table}:{line.split()[1]}"
                      for line in _rules(tool, table)
                      if line.startswith("-N ") and line.split()[1].startswith(prefix)]
    return found


def remove_chains(prefix: str) -> None:
    """Unhook, flush and delete the chains of one daemon (which a stopped daemon keeps by design)."""
    for tool in IPTABLES:
        for table in ("filter", "nat"):
            rules = _rules(tool, table)
            for line in rules:
                parts = line.split()
                if parts[:1] == ["-A"] and f"-j {prefix}" in line and not parts[1].startswith(prefix):
                    subprocess.run([tool, "-w", "-t", table, "-D", *parts[1:]], capture_output=True, check=False)
            mine = [line.split()[1] for line in rules if line.startswith(f"-N {prefix}")]
            for op in ("-F", "-X"):
                for chain in mine:
                    subprocess.run([tool, "-w", "-t", table, op, chain], capture_output=True, check=False)
