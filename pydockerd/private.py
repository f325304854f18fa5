"""A private pydockerd: its own socket, data root, exec root, bridge and subnet, under one temp dir.

Used by the pytest plugin (``pytest -p pydockerd.pytest_plugin``) so that a test session gets an
isolated daemon, and torn down completely afterwards: containers removed through the API, the daemon
stopped, then whatever a crash may have left (shim processes naming the private dir, mounts under
it, the containers' cgroups, the bridge) removed, and the dir deleted.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Candidate /24s for a private daemon's default bridge: 10.218.0.0/16, skipping any in use.
BRIDGE_POOL = ipaddress.IPv4Network("10.218.0.0/16")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)     # polling a condition with a deadline, not a synchronisation sleep
        delay = min(delay * 2, 0.2)


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """IPv4 networks of the host's routes and interface addresses."""
    nets: list[ipaddress.IPv4Network] = []
    for args in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr"]):
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout
            data = json.loads(out or "[]")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            continue
        for entry in data:
            if "dst" in entry and entry["dst"] not in ("default", ""):
                try:
                    nets.append(ipaddress.IPv4Network(entry["dst"], strict=False))
                except ValueError:
                    pass
            for a in entry.get("addr_info", ()):
                try:
                    nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
                except (KeyError, ValueError):
                    pass
    return nets


def free_subnet(seed: int, pool: ipaddress.IPv4Network = BRIDGE_POOL,
                avoid: tuple[ipaddress.IPv4Network, ...] = ()) -> ipaddress.IPv4Network:
    """A /24 of `pool` that overlaps nothing on the host (nor `avoid`), starting the search at `seed`."""
    used = _networks_in_use() + list(avoid)
    subnets: list[ipaddress.IPv4Network] = list(pool.subnets(new_prefix=24))
    for i in range(len(subnets)):
        candidate = subnets[(seed + i) % len(subnets)]
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError(f"no free /24 left in {pool}")


class PrivateDaemon:
    """Start with :meth:`start`, end with :meth:`teardown` (idempotent, also after a crash)."""

    def __init__(self, root: Path | None = None, extra_args: list[str] | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pydockerd-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "pydockerd.pid"
        self.log_path = self.root / "pydockerd.log"
        seed = os.getpid()
        self.bridge = f"pyd{seed % 100000}p"          # <= 15 characters, unique per process
        subnet = free_subnet(seed)
        self.bip = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        # user networks (compose projects...) from a /24 of their own, as /26s
        self.address_pool = free_subnet(seed + 1, avoid=(subnet,))
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None
        self._torn_down = False

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "compat_server.daemon",
            "-H", self.host, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile), "--bridge", self.bridge, "--bip", self.bip,
            "--default-address-pool", f"base={self.address_pool},size=26",
            *self.extra_args,
        ]

    def request(self, method: str, path: str, timeout: float = 20.0) -> tuple[int, Any]:
        conn = _UnixConnection(str(self.socket), timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
            try:
                return resp.status, json.loads(body) if body else None
            except ValueError:
                return resp.status, body
        finally:
            conn.close()

    def ping(self) -> bool:
        try:
            return self.request("GET", "/_ping", timeout=2)[0] == 200
        except OSError:
            return False

    def start(self) -> None:
        for d in (self.data_root, self.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        proc = self._proc
        try:
            _wait_until(lambda: proc.poll() is not None or self.ping(), READY_TIMEOUT, "pydockerd to answer /_ping")
        except TimeoutError as err:
            self.teardown()
            raise RuntimeError(f"{err}\n{self.log_tail()}") from None
        if proc.poll() is not None:
            code = proc.returncode
            tail = self.log_tail()
            self.teardown()
            raise RuntimeError(f"pydockerd exited with {code}:\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            self._remove_containers()
        finally:
            try:
                self._stop()
            finally:
                self._reap()

    # ---- teardown phases; each runs whatever happened before
    def _remove_containers(self) -> None:
        if self._proc is None or self._proc.poll() is not None or not self.ping():
            return
        deadline = time.monotonic() + 30
        try:
            status, items = self.request("GET", "/containers/json?all=1")
        except OSError:
            return
        for c in items if status == 200 and isinstance(items, list) else []:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self.request("DELETE", f"/containers/{c['Id']}?force=1&v=1", timeout=min(left, 10))
            except OSError:
                pass
        for kind in ("networks", "volumes"):
            try:
                self.request("POST", f"/{kind}/prune" + ("?filters=%7B%22all%22%3A%5B%22true%22%5D%7D"
                                                         if kind == "volumes" else ""))
            except OSError:
                pass

    def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def _reap(self) -> None:
        root = str(self.root)
        ids = container_ids_under(self.exec_root) | container_ids_under(self.data_root)
        for pid in _pids_mentioning(root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            _wait_until(lambda: not _pids_mentioning(root), 10, "leftover processes to exit")
        except TimeoutError:
            pass
        for mount_point in sorted(set(mounts_under(root)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
        _remove_cgroups(ids)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _pids_mentioning(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def mounts_under(prefix: str) -> list[str]:
    """Mount points below `prefix` (the test harness uses this too)."""
    prefix = prefix.rstrip("/") + "/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point.startswith(prefix):
            out.append(mount_point)
    return out


def container_ids_under(root: Path, depth: int = 4) -> set[str]:
    """Names of 64-hex directories below `root`: container ids in any daemon's root layout."""
    found: set[str] = set()
    if not root.is_dir():
        return found
    base = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).parts) - base >= depth:
            dirnames[:] = []
        for d in dirnames:
            if len(d) == 64 and all(ch in "0123456789abcdef" for ch in d):
                found.add(d)
    return found


def _remove_cgroups(ids: set[str]) -> None:
    if not ids or not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        for dirpath, dirnames, _ in os.walk(hierarchy, topdown=False):
            for d in dirnames:
                if d in ids:
                    try:
                        (Path(dirpath) / d).rmdir()
                    except OSError:
                        pass
