"""Start, stop and talk to the daemon under test.

Three kinds of daemon:
- "pydockerd": a private pydockerd started from this checkout (the default),
- "dockerd":   a private reference dockerd (CONFORMANCE_DAEMON=dockerd),
- "external":  whatever DOCKER_HOST points at, used as is (never restarted).

Private daemons get their own socket, data root, exec root and bridge under
one temp dir, so they can run beside any other daemon on the machine.  Their processes are
pydockerd.private's: a PrivateDaemon (the pytest plugin's) for pydockerd, a ReferenceDockerd on the
same DaemonProcess base for dockerd; the leak scans and cleanups are pydockerd.hostscan's.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance_tests import netenv
from pydockerd import hostscan
from pydockerd.hostscan import (  # noqa: F401 - re-exported for the tests
    cgroup_hierarchies,
    cgroups_of,
    cgroups_under,
    container_ids_under,
    mounts_under,
    processes_mentioning,
    remove_cgroups,
    unmount_all_under,
    wait_until,
)
from pydockerd.private import READY_TIMEOUT, SHIM_MARKER, STOP_TIMEOUT, DaemonProcess, PrivateDaemon  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_CLI = os.environ.get("CONFORMANCE_DOCKER_CLI", "/usr/local/bin/docker")
CLI_MAJOR = "28."
LAST_LOG_DIR = Path(tempfile.gettempdir())


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


def _container_ids_under(root: Path, depth: int = 6) -> set[str]:
    """Container ids (64-hex directory names) in any daemon's exec root layout."""
    return container_ids_under(root, depth)


class ReferenceDockerd(DaemonProcess):
    """A private reference dockerd (Debian's 20.10) with a containerd of its own.

    --iptables=false because dockerd's chains (DOCKER, DOCKER-USER...) have one name per machine,
    which concurrent reference daemons would share; published ports then go through docker-proxy,
    which serves everything the tests reach (host loopback).
    """

    kind = "dockerd"

    def __init__(self, root: Path, *, bridge: str = "none", bip: str = "", address_pool: str = "",
                 live_restore: bool = True) -> None:
        super().__init__(root, bridge=bridge)
        self.bip = bip
        self.address_pool = address_pool
        self.live_restore = live_restore
        self.containerd: subprocess.Popen[bytes] | None = None

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def base_argv(self) -> list[str]:
        argv = [shutil.which("dockerd") or "/usr/sbin/dockerd",
                "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile), "-H", self.host,
                "--bridge", self.bridge, "--iptables=false", "--containerd", str(self.containerd_socket)]
        if self.live_restore:
            argv.append("--live-restore")
        if self.address_pool:
            argv += ["--default-address-pool", self.address_pool]
        return argv

    def before_start(self) -> None:
        super().before_start()
        # dockerd wants its bridge made for it (it creates only docker0 itself)
        if self.bridge != "none" and self.bip and not hostscan.link_exists(self.bridge):
            hostscan.create_bridge(self.bridge, self.bip)
        if self.containerd is None or self.containerd.poll() is not None:
            self.start_containerd()

    def after_stop(self) -> None:
        proc = self.containerd
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self.containerd = None

    def start_containerd(self) -> None:
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
            proc = self.containerd = subprocess.Popen(
                [shutil.which("containerd") or "/usr/bin/containerd", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {proc.returncode}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.containerd_socket))
                return True
            except OSError:
                return False
            finally:
                s.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():   # not hostscan.wait_until: an exited containerd must fail at once
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {READY_TIMEOUT}s waiting for containerd to listen")
            time.sleep(0.05)


@dataclass
class Daemon:
    """The daemon under test, as seen by tests: its clients, and (private kinds) its process."""

    kind: str  # "pydockerd" | "dockerd" | "external"
    host: str
    root: Path  # private temp dir (config dir, caches); also the daemon's home when private
    proc: DaemonProcess | None = None  # the private daemon's process (None: external)
    reference: bool = False  # a dockerd 20.10-era daemon (ApiVersion <= 1.41)
    api_version: str = ""
    _client: Any = None
    cli_proxy: Any = None  # conformance_tests.proxy.ValidatingProxy
    cli_host: str = ""  # where the CLI connects: the checking proxy when there is one
    seen_container_ids: set[str] = field(default_factory=set)
    _torn_down: bool = False

    @classmethod
    def private_of(cls, proc: DaemonProcess) -> Daemon:
        d = cls(kind=proc.kind, host=proc.host, root=proc.root, proc=proc, reference=proc.kind == "dockerd")
        d.prepare_config_dir()
        return d

    # ---- paths
    @property
    def data_root(self) -> Path:
        return self.proc.data_root if self.proc is not None else self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.proc.exec_root if self.proc is not None else self.root / "exec"

    @property
    def config_dir(self) -> Path:
        return self.root / "cli-config"

    @property
    def cgroup_parent(self) -> str:
        """pydockerd's cgroup parent of its own, so leaks are found by place ("" for the others)."""
        return self.proc.cgroup_parent if self.proc is not None else ""

    @property
    def private(self) -> bool:
        return self.proc is not None

    @property
    def leaks(self) -> dict[str, list[str]]:
        """What teardown found left behind by a daemon that must leave nothing."""
        return self.proc.leaks if self.proc is not None else {}

    @property
    def network_leftovers(self) -> list[str]:
        return self.proc.network_leftovers if self.proc is not None else []

    @property
    def mount_leftovers(self) -> list[str]:
        """Mounts under the daemon's roots after it stopped with every container removed (issue 11)."""
        return self.proc.mount_leftovers if self.proc is not None else []

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

    def _close_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - best-effort close
                pass
            self._client = None

    def log_tail(self, lines: int = 40) -> str:
        return self.proc.log_tail(lines) if self.proc is not None else ""

    # ---- lifecycle (private kinds)
    def require_private(self) -> None:
        """Skip the calling test unless this suite started the daemon (and may stop it)."""
        if not self.private:
            import pytest
            pytest.skip("needs to restart the daemon; DOCKER_HOST points at a daemon this suite did not start")

    def _own(self) -> DaemonProcess:
        if self.proc is None:
            raise RuntimeError("the daemon is not ours to start or stop (DOCKER_HOST)")
        return self.proc

    def start(self) -> None:
        """Start it (again, with the same roots and flags)."""
        self._close_client()
        self._own().start()

    def stop(self, kill9: bool = False) -> None:
        """SIGKILL, or SIGTERM then SIGKILL after a bound; returns once the process is gone."""
        self._own().stop(kill9=kill9)
        self._close_client()

    def restart(self, kill9: bool = False) -> None:
        self.require_private()
        self.stop(kill9=kill9)
        self.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def extra_args(self) -> list[str]:
        """Flags added after the harness's own at the next start (a test restarts it with others)."""
        return self._own().extra_args

    def list_container_ids(self) -> list[str]:
        try:
            resp = self.raw("GET", "/containers/json?all=1", timeout=20)
            if resp.status == 200:
                return [c["Id"] for c in resp.json()]
        except (OSError, ValueError):
            pass
        return []

    # ---- leaks
    def leftovers(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """What of this daemon's containers is still on the machine: of the containers `ids`,
        or (None) of all of them.  Meant for moments when none should be running."""
        return self.proc.leftovers(ids) if self.proc is not None else {}

    def wait_no_leftovers(self, ids: Iterable[str] | None = None, timeout: float = 10) -> dict[str, list[str]]:
        """leftovers(), once they stayed for `timeout` seconds (a shim takes a moment to exit)."""
        return self.proc.wait_no_leftovers(ids, timeout) if self.proc is not None else {}

    def teardown(self) -> None:
        """Remove everything the daemon and its containers left behind (best effort, bounded)."""
        if self._torn_down:
            return
        self._torn_down = True
        self._close_client()
        if self.proc is not None:
            self.proc.teardown(self.seen_container_ids)  # the private root goes with its daemon
        else:
            shutil.rmtree(self.root, ignore_errors=True)  # only our scratch files; the daemon is not ours


def new_private_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="pydc-", dir="/tmp"))


def unstarted_daemon(kind: str, *, bridge: str | None = None, bip: str | None = None,
                     address_pool: str | None = None, extra_args: Iterable[str] = (),
                     own_cgroup_parent: bool = False) -> Daemon:
    """A private daemon of `kind` ("pydockerd" | "dockerd"), not started yet.  Unless given, the
    reference dockerd runs without a default bridge or address pool and pydockerd on a bridge and
    subnets chosen free; `own_cgroup_parent`: pydockerd's cgroup parent named after the root."""
    root = new_private_root()
    proc: DaemonProcess
    if kind == "pydockerd":
        proc = PrivateDaemon(root, extra_args, bridge=bridge, bip=bip, address_pool=address_pool,
                             cgroup_parent=f"pydc-{root.name.removeprefix('pydc-')}" if own_cgroup_parent else None)
    elif kind == "dockerd":
        proc = ReferenceDockerd(root, bridge=bridge or "none", bip=bip or "", address_pool=address_pool or "")
        proc.extra_args.extend(extra_args)
    else:
        shutil.rmtree(root, ignore_errors=True)
        raise ValueError(f"CONFORMANCE_DAEMON must be pydockerd or dockerd, not {kind!r}")
    return Daemon.private_of(proc)


def start_private(d: Daemon) -> Daemon:
    """Start a private daemon made by unstarted_daemon (torn down if that fails) and learn its API version."""
    try:
        d.start()
    except BaseException:
        d.teardown()
        raise
    d.api_version = str(d.raw("GET", "/version", timeout=20).json().get("ApiVersion", ""))
    return d


def private_daemon(kind: str, *, session: bool = False, bridge: str | None = None) -> Daemon:
    """A started private daemon of `kind`.  The session daemon gets the run's own bridge, subnets and
    (pydockerd) cgroup parent from netenv; another one (a peer, a second daemon) runs without a
    default bridge (dockerd) or on `bridge`, else one chosen free (pydockerd)."""
    if session:
        d = unstarted_daemon(kind, bridge=netenv.default_bridge(kind), bip=netenv.bip(kind),
                             address_pool=netenv.default_address_pool(), own_cgroup_parent=True)
        assert d.proc is not None
        d.proc.keep_log_as = LAST_LOG_DIR / f"pydc-last-{kind}.log"
        d.proc.keep_root = os.environ.get("CONFORMANCE_KEEP") == "1"
    else:
        d = unstarted_daemon(kind, bridge=bridge)
    return start_private(d)


def make_daemon() -> Daemon:
    """Build (and for private kinds, start) the daemon selected by the environment."""
    external = os.environ.get("DOCKER_HOST")
    if not external:
        return private_daemon(os.environ.get("CONFORMANCE_DAEMON", "pydockerd"), session=True)
    d = Daemon(kind="external", host=external, root=new_private_root())
    d.prepare_config_dir()
    d.api_version = str(d.raw("GET", "/version", timeout=20).json().get("ApiVersion", ""))
    d.reference = api_le(d.api_version, "1.41")
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
