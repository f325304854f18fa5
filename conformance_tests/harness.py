"""Start, stop and talk to the daemon under test.

Three kinds of daemon:
- "pydockerd": a private pydockerd started from this checkout (the default),
- "dockerd":   a private reference dockerd (CONFORMANCE_DAEMON=dockerd),
- "external":  whatever DOCKER_HOST points at, used as is (never restarted).

Private daemons get their own socket, data root, exec root and bridge under
one temp dir, so they can run beside any other daemon on the machine.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance_tests import netenv

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_CLI = os.environ.get("CONFORMANCE_DOCKER_CLI", "/usr/local/bin/docker")
CLI_MAJOR = "28."
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TEARDOWN_API_BUDGET = 20.0
SHIM_MARKER = "engine.runtime.shim"
LAST_LOG_DIR = Path(tempfile.gettempdir())
CGROUP_ROOT = Path("/sys/fs/cgroup")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket: for requests the real clients won't send."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


@dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The `message` of a JSON error body (dockerd's error shape)."""
        try:
            return str(self.json().get("message", ""))
        except ValueError:
            return self.body.decode(errors="replace")


def socket_path_of(host: str) -> str:
    if not host.startswith("unix://"):
        raise ValueError(f"only unix:// hosts are supported, got {host!r}")
    return host[len("unix://"):]


def raw_request(
    host: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> RawResponse:
    conn = UnixHTTPConnection(socket_path_of(host), timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read() if method != "HEAD" else b""
        return RawResponse(resp.status, resp.headers, data)
    finally:
        conn.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until true or fail after `timeout` seconds (readiness, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the condition is not met yet; poll again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def ping(host: str) -> bool:
    try:
        return raw_request(host, "GET", "/_ping", timeout=2).status == 200
    except OSError:
        return False


def cli_version() -> str:
    out = subprocess.run(
        [DOCKER_CLI, "version", "--format", "{{.Client.Version}}"],
        capture_output=True, text=True, env={"PATH": os.environ.get("PATH", ""), "DOCKER_HOST": "unix:///nonexistent"},
    )
    return out.stdout.strip()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        stat = Path(f"/proc/{pid}/stat")
        try:
            return stat.read_text().split(") ", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False


def processes_mentioning(*needles: str) -> list[int]:
    """Pids whose command line contains every needle (never this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


def mounts_under(prefix: str) -> list[str]:
    prefix = prefix.rstrip("/") + "/"
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4].replace("\\040", " ")
        if mount_point.startswith(prefix):
            result.append(mount_point)
    return result


def unmount_all_under(prefix: str) -> None:
    # Deepest first; lazy so a busy mount cannot block teardown.
    for mount_point in sorted(set(mounts_under(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True)


def remove_cgroups(ids: Iterable[str]) -> None:
    """rmdir (bottom-up) every cgroup dir whose name contains one of `ids`."""
    ids = [i for i in ids if len(i) >= 12]
    if not ids or not CGROUP_ROOT.is_dir():
        return
    victims: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        for dirpath, dirnames, _ in os.walk(hierarchy):
            depth = Path(dirpath).relative_to(hierarchy).parts
            if len(depth) >= 4:
                dirnames[:] = []
                continue
            for d in dirnames:
                if any(i in d for i in ids):
                    victims.append(Path(dirpath) / d)
    for victim in sorted(victims, key=lambda p: len(p.parts), reverse=True):
        for sub in sorted(victim.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                _rmdir_quiet(sub)
        _rmdir_quiet(victim)


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


@dataclass
class Daemon:
    """The daemon under test, as seen by tests."""

    kind: str  # "pydockerd" | "dockerd" | "external"
    host: str
    root: Path  # private temp dir (config dir, caches); also the daemon's home when private
    reference: bool = False  # a dockerd 20.10-era daemon (ApiVersion <= 1.41)
    api_version: str = ""
    _proc: subprocess.Popen[bytes] | None = None
    _argv: list[str] = field(default_factory=list)
    _log: Path | None = None
    _client: Any = None
    _containerd: subprocess.Popen[bytes] | None = None
    cli_proxy: Any = None  # conformance_tests.proxy.ValidatingProxy
    cli_host: str = ""  # where the CLI connects: the checking proxy when there is one
    seen_container_ids: set[str] = field(default_factory=set)
    network_leftovers: list[str] = field(default_factory=list)
    # mounts under the daemon's roots after it stopped with every container removed (issue 11)
    mount_leftovers: list[str] = field(default_factory=list)
    _torn_down: bool = False

    # ---- paths
    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def pidfile(self) -> Path:
        return self.root / "pid"

    @property
    def config_dir(self) -> Path:
        return self.root / "cli-config"

    @property
    def private(self) -> bool:
        return self.kind != "external"

    def prepare_config_dir(self) -> None:
        """A private CLI config dir that still sees the user's CLI plugins (docker compose)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        plugins = Path.home() / ".docker" / "cli-plugins"
        link = self.config_dir / "cli-plugins"
        if plugins.is_dir() and not link.exists():
            link.symlink_to(plugins)

    # ---- clients
    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.cli_host or self.host
        env["DOCKER_CONFIG"] = str(self.config_dir)
        env["DOCKER_CLI_HINTS"] = "false"
        return env

    def cli(
        self, *args: str, input: str | bytes | None = None, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker 28.x CLI against this daemon (text mode unless input is bytes)."""
        text = not isinstance(input, bytes)
        proc = subprocess.run(
            [DOCKER_CLI, *args], input=input, capture_output=True, text=text,
            timeout=timeout, env=self.cli_env(),
        )
        if not text:
            proc = subprocess.CompletedProcess(
                proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
            )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def raw(self, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> RawResponse:
        return raw_request(self.host, method, path, body=body, headers=headers, timeout=timeout)

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker
            self._client = docker.DockerClient(base_url=self.host, version="auto", timeout=120)
        return self._client

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    # ---- lifecycle
    def start(self) -> None:
        assert self.private
        for d in (self.data_root, self.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        self.prepare_config_dir()
        if self.kind == "dockerd" and (self._containerd is None or self._containerd.poll() is not None):
            self._start_containerd()
        self._log = self.root / f"{self.kind}.log"
        log = open(self._log, "ab")
        try:
            self._proc = subprocess.Popen(
                self._argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(REPO_ROOT), start_new_session=True,
            )
        finally:
            log.close()
        try:
            wait_until(lambda: (self._proc is not None and self._proc.poll() is None and ping(self.host))
                       or self._exited_early(), READY_TIMEOUT, f"{self.kind} to answer /_ping")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n--- {self.kind} log ---\n{self.log_tail()}") from None
        if self._proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {self._proc.returncode}\n{self.log_tail()}")
        self._client = None

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def _start_containerd(self) -> None:
        """containerd for the reference dockerd, run by us rather than by dockerd.

        dockerd kills the containerd it supervises when it dies, and pid 1 on
        this machine does not reap orphans, so after a kill -9 of dockerd the
        restarted one would wait forever on a zombie containerd.  A separately
        run containerd (as systemd does in production) survives, which is what
        the restart tests need.
        """
        base = self.root / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        config = base / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{base}/root"\n'
            f'state = "{base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.containerd_socket}"\n'
            f'[ttrpc]\n  address = "{self.containerd_socket}.ttrpc"\n'
            f'[debug]\n  address = "{base}/debug.sock"\n'
        )
        with open(self.root / "containerd.log", "ab") as log:
            self._containerd = subprocess.Popen(
                [shutil.which("containerd") or "/usr/bin/containerd", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

        def ready() -> bool:
            assert self._containerd is not None
            if self._containerd.poll() is not None:
                raise RuntimeError(f"containerd exited with {self._containerd.returncode}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.containerd_socket))
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_until(ready, READY_TIMEOUT, "containerd to listen")

    def _stop_containerd(self) -> None:
        proc = self._containerd
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._containerd = None

    def _exited_early(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    @property
    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def stop(self, kill9: bool = False) -> None:
        """SIGKILL, or SIGTERM then SIGKILL after a bound; waits until the process is gone."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL if kill9 else signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=STOP_TIMEOUT)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - best-effort close in teardown
                pass
            self._client = None

    def require_private(self) -> None:
        """Skip the calling test unless this suite started the daemon (and may stop it)."""
        if not self.private:
            import pytest
            pytest.skip("needs to restart the daemon; DOCKER_HOST points at a daemon this suite did not start")

    def restart(self, kill9: bool = False) -> None:
        self.require_private()
        self.stop(kill9=kill9)
        self.start()

    def list_container_ids(self) -> list[str]:
        try:
            resp = self.raw("GET", "/containers/json?all=1", timeout=20)
            if resp.status == 200:
                return [c["Id"] for c in resp.json()]
        except (OSError, ValueError):
            pass
        return []

    def teardown(self) -> None:
        """Remove everything the daemon and its containers left behind (best effort, bounded).

        Each phase runs even when an earlier one fails or is interrupted, so a hung daemon
        still ends with no processes, mounts, cgroups or files of ours left.
        """
        if self._torn_down:
            return
        self._torn_down = True
        if not self.private:
            shutil.rmtree(self.root, ignore_errors=True)  # only our scratch files; the daemon is not ours
            return
        ids = set(self.seen_container_ids)
        bridges = self._own_default_bridge()
        try:
            self._remove_containers_via_api(ids, budget=TEARDOWN_API_BUDGET)
            bridges |= self._network_bridges()
            self._remove_networks_via_api()
        finally:
            try:
                self.stop()
                # before the reaping below unmounts and deletes what a daemon left
                self.network_leftovers = self._network_leftovers(bridges)
            finally:
                try:
                    self._stop_containerd()
                finally:
                    try:
                        self._reap_leftovers(ids)
                    finally:
                        self.network_leftovers += self._remove_kept_networking(bridges)

    def _own_default_bridge(self) -> set[str]:
        """The default bridge this daemon was started with (none with `--bridge none`): a second
        daemon of the same kind must never take the session daemon's bridge down with it."""
        argv = self._argv
        for flag in ("--bridge", "-b"):
            if flag in argv[:-1]:
                name = argv[argv.index(flag) + 1]
                return set() if name == "none" else {name}
        return set()

    def _network_bridges(self) -> set[str]:
        """Bridge names of the daemon's bridge networks (recorded before it stops)."""
        out: set[str] = set()
        try:
            resp = self.raw("GET", "/networks", timeout=10)
            nets = resp.json() if resp.status == 200 else []
        except (OSError, ValueError):
            return out
        for n in nets:
            if n.get("Driver") == "bridge":
                out.add((n.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + n["Id"][:12])
        return out

    def _remove_networks_via_api(self) -> None:
        try:
            resp = self.raw("GET", "/networks", timeout=10)
            nets = resp.json() if resp.status == 200 else []
        except (OSError, ValueError):
            return
        for n in nets:
            if n.get("Name") not in ("bridge", "host", "none"):
                try:
                    self.raw("DELETE", f"/networks/{n['Id']}", timeout=10)
                except OSError:
                    pass

    def _network_leftovers(self, bridges: set[str]) -> list[str]:
        """What the stopped daemon's removed containers left of their networking: veths on its
        bridges, netns files (the session end asserts there is nothing)."""
        leftovers = [f"veth {v} on {b}" for b in sorted(bridges) for v in netenv.ports_of(b)]
        netns_dir = self.exec_root / "netns"
        # dockerd unmounts the namespaces of removed containers lazily (libnetwork's garbage collector
        # runs once a minute), so only pydockerd's are checked; the reaping below removes dockerd's
        if netns_dir.is_dir() and self.kind == "pydockerd":
            # dockerd keeps "default" (the host's own namespace) there
            leftovers += [f"netns {p}" for p in netns_dir.iterdir() if p.name != "default"]
        return leftovers

    def _remove_kept_networking(self, bridges: set[str]) -> list[str]:
        """Remove the bridges and chains a stopped daemon keeps by design; returns what would not go."""
        leftovers: list[str] = []
        for b in bridges:
            netenv.delete_link(b)
        leftovers += [f"bridge {b}" for b in sorted(bridges) if netenv.link_exists(b)]
        if self.kind == "pydockerd":
            prefix = netenv.chain_prefix(self.data_root)
            netenv.remove_chains(prefix)
            leftovers += [f"iptables chain {c}" for c in netenv.chains_with(prefix)]
        return leftovers

    def _remove_containers_via_api(self, ids: set[str], budget: float) -> None:
        if self.pid is None or not ping(self.host):
            return
        deadline = time.monotonic() + budget
        ids.update(self.list_container_ids())
        for cid in sorted(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                return  # the daemon is slow or hung: the process-level cleanup below takes over
            try:
                self.raw("DELETE", f"/containers/{cid}?force=1&v=1", timeout=min(left, 10))
            except OSError:
                pass

    def _reap_leftovers(self, ids: set[str]) -> None:
        root = str(self.root)
        ids.update(_container_ids_under(self.exec_root))
        # Leftover processes of this daemon only: shims (pydockerd) and containerd/shims
        # (dockerd) all name our private temp dir on their command line.
        for pid in processes_mentioning(root) + processes_mentioning(SHIM_MARKER, str(self.exec_root)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            wait_until(lambda: not processes_mentioning(root), 10, "leftover processes to exit")
        except TimeoutError:
            pass
        self.mount_leftovers = mounts_under(root)
        unmount_all_under(root)
        remove_cgroups(ids)
        # Keep the daemon's log for post-mortems; the rest of the private dir goes.
        if self._log is not None and self._log.exists():
            shutil.copyfile(self._log, LAST_LOG_DIR / f"pydc-last-{self.kind}.log")
        if os.environ.get("CONFORMANCE_KEEP") == "1" and not mounts_under(root):
            return
        shutil.rmtree(self.root, ignore_errors=True)


def _container_ids_under(root: Path, depth: int = 6) -> set[str]:
    """Names of 64-hex directories below `root`: container ids in any daemon's exec root layout."""
    found: set[str] = set()
    if not root.is_dir():
        return found
    base = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).parts) - base >= depth:
            dirnames[:] = []
        for d in dirnames:
            if len(d) == 64 and all(c in "0123456789abcdef" for c in d):
                found.add(d)
    return found


def new_private_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="pydc-", dir="/tmp"))


def make_daemon() -> Daemon:
    """Build (and for private kinds, start) the daemon selected by the environment."""
    external = os.environ.get("DOCKER_HOST")
    wanted = os.environ.get("CONFORMANCE_DAEMON", "pydockerd")
    root = new_private_root()
    if external:
        d = Daemon(kind="external", host=external, root=root)
        d.prepare_config_dir()
    elif wanted == "dockerd":
        host = f"unix://{root}/docker.sock"
        d = Daemon(kind="dockerd", host=host, root=root)
        # Its own bridge and subnets; --iptables=false because dockerd's chains (DOCKER, DOCKER-USER...)
        # have one name per machine, which concurrent reference daemons would share. Published ports
        # then go through docker-proxy only, which serves everything the tests reach (host loopback).
        netenv.create_bridge(netenv.default_bridge("dockerd"), netenv.bip("dockerd"))
        d._argv = [
            shutil.which("dockerd") or "/usr/sbin/dockerd",
            "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
            "--pidfile", str(d.pidfile), "-H", host,
            "--bridge", netenv.default_bridge("dockerd"), "--iptables=false", "--live-restore",
            "--default-address-pool", netenv.default_address_pool(),
            "--containerd", str(d.containerd_socket),
        ]
    elif wanted == "pydockerd":
        host = f"unix://{root}/docker.sock"
        d = Daemon(kind="pydockerd", host=host, root=root)
        d._argv = [
            sys.executable, "-m", "compat_server.daemon",
            "-H", host, "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
            "--pidfile", str(d.pidfile), "--bridge", netenv.default_bridge("pydockerd"),
            # its own subnets too, so two suites (or a suite and a system daemon) never share one
            "--bip", netenv.bip("pydockerd"), "--default-address-pool", netenv.default_address_pool(),
        ]
    else:
        shutil.rmtree(root, ignore_errors=True)
        raise ValueError(f"CONFORMANCE_DAEMON must be pydockerd or dockerd, not {wanted!r}")
    if d.private:
        try:
            d.start()
        except BaseException:
            d.teardown()
            raise
    version = d.raw("GET", "/version", timeout=20).json()
    d.api_version = str(version.get("ApiVersion", ""))
    d.reference = d.kind == "dockerd" or (d.kind == "external" and api_le(d.api_version, "1.41"))
    return d


def api_le(a: str, b: str) -> bool:
    def parse(v: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in v.split("."))
        except ValueError:
            return (0,)
    return parse(a) <= parse(b)


def external_is_reference(host: str) -> bool:
    """For collection-time marking: is DOCKER_HOST a dockerd 20.10-era daemon?"""
    try:
        version = raw_request(host, "GET", "/version", timeout=5).json()
    except (OSError, ValueError):
        return False
    return api_le(str(version.get("ApiVersion", "")), "1.41")
