"""A private pydockerd: its own socket, data root, exec root, bridge, subnets and cgroup parent,
all under one temp dir.

Used by the pytest plugin (``pytest -p pydockerd.pytest_plugin``) so that a test session gets an
isolated daemon, and by the project's conformance harness (which runs private reference dockerds
on the same :class:`DaemonProcess` base).  A teardown removes the containers and networks through
the API, stops the daemon, records what it left behind (:attr:`DaemonProcess.leaks`,
:attr:`~DaemonProcess.network_leftovers`, :attr:`~DaemonProcess.mount_leftovers`), then removes
whatever is left (processes naming the private dir, mounts under it, the containers' cgroups,
bridges, iptables chains) and deletes the dir.
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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import hostscan
from .hostscan import container_ids_under, mounts_under, wait_until

__all__ = ["DaemonProcess", "PrivateDaemon", "container_ids_under", "free_subnet", "mounts_under"]

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TEARDOWN_API_BUDGET = 20.0
SHIM_MARKER = "engine.runtime.shim"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Candidate /24s for a private daemon's default bridge and address pool: 10.218.0.0/16, skipping any in use.
BRIDGE_POOL = ipaddress.IPv4Network("10.218.0.0/16")
_TAKEN: list[ipaddress.IPv4Network] = []  # chosen by this process, maybe not on the host yet
_BRIDGE_SUFFIXES = "pqrstuvwxyz"
_bridges_named = 0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


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
    """A /24 of `pool` that overlaps nothing on the host (nor `avoid`, nor one this process chose
    before), starting the search at `seed`."""
    used = _networks_in_use() + list(avoid) + _TAKEN
    subnets: list[ipaddress.IPv4Network] = list(pool.subnets(new_prefix=24))
    for i in range(len(subnets)):
        candidate = subnets[(seed + i) % len(subnets)]
        if not any(candidate.overlaps(u) for u in used):
            _TAKEN.append(candidate)
            return candidate
    raise RuntimeError(f"no free /24 left in {pool}")


def _next_bridge_name() -> str:
    """pyd<pid>p, then pyd<pid>q...: <= 15 characters, unique per process and daemon."""
    global _bridges_named
    suffix = _BRIDGE_SUFFIXES[_bridges_named % len(_BRIDGE_SUFFIXES)]
    _bridges_named += 1
    return f"pyd{os.getpid() % 100000}{suffix}"


class DaemonProcess:
    """A daemon process of ours under a private root: start, stop (-9), restart with the same roots,
    and a teardown that leaves nothing.  Subclasses say how to run it (:meth:`base_argv`) and what
    of it must never outlive it (:meth:`leftovers`)."""

    kind = "daemon"
    #: fail-worthy: everything the daemon made must be gone once it stopped with no containers
    strict = False

    def __init__(self, root: Path | None = None, extra_args: Iterable[str] = (), *,
                 bridge: str | None = None, cgroup_parent: str = "") -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pydockerd-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "pid"
        self.log_path = self.root / f"{self.kind}.log"
        self.bridge = bridge or "none"
        self.cgroup_parent = cgroup_parent
        self.extra_args: list[str] = list(extra_args)
        #: copy the daemon's log there at teardown (for post-mortems), if set
        self.keep_log_as: Path | None = None
        #: keep the private dir after teardown (when nothing is mounted below it)
        self.keep_root = False
        # what the teardown found left behind
        self.leaks: dict[str, list[str]] = {}
        self.network_leftovers: list[str] = []
        self.mount_leftovers: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._torn_down = False

    # ---- how to run it
    def base_argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def argv(self) -> list[str]:
        return [*self.base_argv(), *self.extra_args]

    def before_start(self) -> None:
        """Prepare what the daemon needs before each start (directories, a bridge, a containerd)."""
        for d in (self.data_root, self.exec_root):
            d.mkdir(parents=True, exist_ok=True)

    # ---- talking to it
    def request(self, method: str, path: str, timeout: float = 20.0, body: Any = None) -> tuple[int, Any]:
        """One API call (`body`: sent as JSON); the status and the decoded JSON (or raw) body."""
        conn = _UnixConnection(str(self.socket), timeout)
        try:
            if body is None:
                conn.request(method, path)
            else:
                conn.request(method, path, body=json.dumps(body), headers={"Content-Type": "application/json"})
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

    # ---- lifecycle
    @property
    def pid(self) -> int | None:
        """The daemon's pid while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def start(self) -> None:
        """Start the daemon (again, with the same roots) and wait until it answers /_ping.
        On failure the process is gone and the error carries the log's tail."""
        if self.pid is not None:
            raise RuntimeError(f"{self.kind} is running already (pid {self.pid})")
        self.before_start()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT), start_new_session=True)
        proc = self._proc
        try:
            wait_until(lambda: proc.poll() is not None or self.ping(), READY_TIMEOUT,
                       f"{self.kind} to answer /_ping")
        except TimeoutError as err:
            self.stop(kill9=True)
            raise RuntimeError(f"{err}\n--- {self.kind} log ---\n{self.log_tail()}") from None
        if proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {proc.returncode}:\n{self.log_tail()}")

    def stop(self, kill9: bool = False) -> None:
        """SIGKILL, or SIGTERM then SIGKILL after a bound; returns once the process is gone."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill9 else signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def restart(self, kill9: bool = False) -> None:
        self.stop(kill9=kill9)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- what it leaves behind
    def container_ids(self) -> list[str]:
        try:
            status, items = self.request("GET", "/containers/json?all=1")
        except OSError:
            return []
        return [c["Id"] for c in items] if status == 200 and isinstance(items, list) else []

    def leftovers(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """What of the containers `ids` (None: of any container) is still on the host."""
        return {}

    def wait_no_leftovers(self, ids: Iterable[str] | None = None, timeout: float = 10) -> dict[str, list[str]]:
        """leftovers(), once they stayed for `timeout` seconds (a shim takes a moment to exit)."""
        wanted = set(ids) if ids is not None else None
        try:
            wait_until(lambda: not self.leftovers(wanted), timeout, "the daemon's leftovers to go", interval=0.1)
        except TimeoutError:
            pass
        return self.leftovers(wanted)

    def netns_leftovers(self) -> list[str]:
        return []

    def chain_prefix(self) -> str | None:
        """The prefix of the iptables chains this daemon makes (None: it makes none of its own)."""
        return None

    # ---- teardown
    def teardown(self, seen_ids: Iterable[str] = ()) -> None:
        """Remove everything the daemon and its containers left (best effort, bounded; idempotent).

        Each phase runs even when an earlier one fails or is interrupted, so a hung daemon still
        ends with no processes, mounts, cgroups, links, chains or files of ours left.  `seen_ids`
        are containers the caller knows of (removed already or not)."""
        if self._torn_down:
            return
        self._torn_down = True
        ids = set(seen_ids)
        bridges = {self.bridge} - {"none"}
        try:
            ids.update(self._remove_containers(TEARDOWN_API_BUDGET))
            bridges |= self._network_bridges()
            self._remove_networks_and_volumes()
        finally:
            try:
                self.stop()
                # before the reaping below unmounts and deletes what the daemon left
                self.network_leftovers = ([f"veth {v} on {b}" for b in sorted(bridges) for v in hostscan.ports_of(b)]
                                          + self.netns_leftovers())
                if self.strict:
                    self.leaks = self.wait_no_leftovers(None, timeout=5)
            finally:
                try:
                    self.after_stop()
                finally:
                    try:
                        self._reap(ids)
                    finally:
                        self.network_leftovers += self._remove_kept_networking(bridges)

    def after_stop(self) -> None:
        """Stop what the daemon needed beside it (the teardown calls this once it stopped)."""

    def _remove_containers(self, budget: float) -> set[str]:
        if self.pid is None or not self.ping():
            return set()
        deadline = time.monotonic() + budget
        ids = set(self.container_ids())
        for cid in sorted(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                break  # the daemon is slow or hung: the process-level cleanup takes over
            try:
                self.request("DELETE", f"/containers/{cid}?force=1&v=1", timeout=min(left, 10))
            except OSError:
                pass
        return ids

    def _network_bridges(self) -> set[str]:
        """Bridge names of the daemon's bridge networks (recorded before it stops)."""
        if self.pid is None:
            return set()
        try:
            status, nets = self.request("GET", "/networks", timeout=10)
        except OSError:
            return set()
        return {(n.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + n["Id"][:12]
                for n in (nets if status == 200 and isinstance(nets, list) else []) if n.get("Driver") == "bridge"}

    def _remove_networks_and_volumes(self) -> None:
        if self.pid is None:
            return
        try:
            status, nets = self.request("GET", "/networks", timeout=10)
            for n in nets if status == 200 and isinstance(nets, list) else []:
                if n.get("Name") not in ("bridge", "host", "none"):
                    self.request("DELETE", f"/networks/{n['Id']}", timeout=10)
            self.request("POST", "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D", timeout=10)
        except OSError:
            pass

    def _reap(self, ids: set[str]) -> None:
        root = str(self.root)
        ids |= container_ids_under(self.exec_root)
        # Our leftover processes (shims, a containerd and its shims) all name the private dir.
        for pid in hostscan.processes_mentioning(root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            wait_until(lambda: not hostscan.processes_mentioning(root), 10, "leftover processes to exit")
        except TimeoutError:
            pass
        if self.strict:
            self.mount_leftovers = mounts_under(root)
        hostscan.unmount_all_under(root)
        hostscan.remove_cgroups(ids)
        hostscan.remove_cgroup_parent(self.cgroup_parent)
        if self.keep_log_as is not None and self.log_path.exists():
            shutil.copyfile(self.log_path, self.keep_log_as)
        if self.keep_root and not mounts_under(root):
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_kept_networking(self, bridges: set[str]) -> list[str]:
        """Remove the bridges and chains a stopped daemon keeps by design; returns what would not go."""
        for b in bridges:
            hostscan.delete_link(b)
        leftovers = [f"bridge {b}" for b in sorted(bridges) if hostscan.link_exists(b)]
        prefix = self.chain_prefix()
        if prefix:
            hostscan.remove_chains(prefix)
            leftovers += [f"iptables chain {c}" for c in hostscan.chains_with(prefix)]
        return leftovers


class PrivateDaemon(DaemonProcess):
    """A private pydockerd.  Start with :meth:`start`, end with :meth:`teardown` (idempotent, also
    after a crash).  Bridge, --bip, address pool and cgroup parent are chosen free unless given;
    ``bridge="none"`` runs it without a default bridge."""

    kind = "pydockerd"
    strict = True

    def __init__(self, root: Path | None = None, extra_args: Iterable[str] | None = None, *,
                 bridge: str | None = None, bip: str | None = None, address_pool: str | None = None,
                 cgroup_parent: str | None = None) -> None:
        super().__init__(root, extra_args or (), bridge=bridge or _next_bridge_name())
        seed = os.getpid()
        if bip is None and self.bridge != "none":
            subnet = free_subnet(seed)
            bip = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        self.bip = bip
        if address_pool is None:
            # user networks (compose projects...) from a /24 of their own, as /26s
            address_pool = f"base={free_subnet(seed + 1)},size=26"
        self.address_pool = address_pool
        self.cgroup_parent = cgroup_parent if cgroup_parent is not None else f"pydockerd-{self.root.name}"

    def base_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "compat_server.daemon",
                "-H", self.host, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile), "--bridge", self.bridge]
        if self.bip:
            argv += ["--bip", self.bip]
        if self.address_pool:
            argv += ["--default-address-pool", self.address_pool]
        if self.cgroup_parent:
            argv += ["--cgroup-parent", self.cgroup_parent]
        return argv

    def chain_prefix(self) -> str | None:
        from engine.network.firewall import chain_prefix
        return chain_prefix(str(self.data_root))

    def netns_leftovers(self) -> list[str]:
        netns_dir = self.exec_root / "netns"
        return [f"netns {p}" for p in sorted(netns_dir.iterdir())] if netns_dir.is_dir() else []

    def leftovers(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """What of the containers `ids` (None: of any container) is still on the host: cgroups under
        the daemon's parent, mounts under its root, shim processes, exec-root dirs.  Meant for
        moments when none of them should be running."""
        wanted = set(ids) if ids is not None else None

        def mine(text: str) -> bool:
            return wanted is None or any(i in text for i in wanted)

        found: dict[str, list[str]] = {}
        if wanted is None:
            cgroups = [str(p) for p in hostscan.cgroups_under(self.cgroup_parent)]
        else:
            cgroups = [str(p) for h in hostscan.cgroup_hierarchies() for i in sorted(wanted)
                       if self.cgroup_parent and (p := h / self.cgroup_parent / i).exists()]
        if cgroups:
            found["cgroups"] = cgroups
        mounts = [m for m in mounts_under(str(self.root)) if mine(m)]
        if mounts:
            found["mounts"] = mounts
        shims = [str(pid) for pid in hostscan.processes_mentioning(SHIM_MARKER, str(self.exec_root))
                 if mine(hostscan.cmdline_of(pid))]
        if shims:
            found["shim processes"] = shims
        dirs = sorted(d for d in container_ids_under(self.exec_root) if wanted is None or d in wanted)
        if dirs:
            found["exec-root dirs"] = dirs
        return found
