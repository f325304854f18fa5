#!/usr/bin/env python3
"""Benchmarks: pydockerd against a reference dockerd, with the stock docker CLI.

    python bench/run.py [--n 20] [--warmup 2] [--bench run,exec,ps,list] [--no-rss]

Targets:
- pydockerd: DOCKER_HOST if set, else a private pydockerd started from this checkout
  (own socket, data root, exec root and bridge under a temp dir; stopped afterwards);
- reference: REFERENCE_DOCKER_HOST, when set (e.g. a dockerd 20.10 started with
  scripts/reference-dockerd.sh), or with --start-reference a private dockerd started
  (and stopped) by this script; measured in the same run.

Reports the median (and spread) per benchmark, the pydockerd/reference ratio (goal
<= 0.6 for `docker run --rm busybox true`), the daemon's idle RSS and one container
shim's RSS.  A table goes to stdout and JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOCKER = os.environ.get("BENCH_DOCKER_CLI") or shutil.which("docker") or "/usr/local/bin/docker"
IMAGE = "busybox:latest"
PYDOCKERD_SHIM_MARKER = "engine.runtime.shim"
REFERENCE_SHIM_MARKER = "containerd-shim"
GOAL_RATIO = 0.6


# ------------------------------------------------------------------------- targets
@dataclass
class Target:
    label: str                      # "pydockerd" / "reference"
    host: str                       # unix:///path
    kind: str                       # "pydockerd" or "dockerd" (what the process tree looks like)
    pid: int | None = None          # the daemon's pid when known
    private_root: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Any = None                 # the private daemon's log file
    bridge: str = ""                # a private pydockerd's default bridge (removed at close)
    config_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-cli-")))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.config_dir)   # no credential helpers, no user config
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([DOCKER, *args], env=self.env(), input=input, capture_output=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"[{self.label}] docker {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.log is not None:
            self.log.close()
        if self.private_root is not None and self.bridge:
            _remove_networking(self.bridge, self.private_root / "data")
        if self.private_root is not None:
            _unmount_under(self.private_root)
            shutil.rmtree(self.private_root, ignore_errors=True)
        shutil.rmtree(self.config_dir, ignore_errors=True)


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise SystemExit(f"only unix:// hosts are supported, got {host!r}")
    return host[len("unix://"):]


def ping(host: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(socket_path(host))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_private_dockerd() -> Target:
    """A private reference dockerd (it starts its own containerd) under a temp dir."""
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    root = Path(tempfile.mkdtemp(prefix="refbench-", dir="/tmp"))
    host = f"unix://{root}/docker.sock"
    # its own bridge and subnets (for run on the default bridge and published ports); iptables stays
    # off: dockerd's chain names are machine-wide and other daemons run here, so its published ports
    # go through docker-proxy, which is also what it uses for 127.0.0.1 with iptables on
    bridge = f"pydrb{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], capture_output=True, check=False)
    subprocess.run(["ip", "addr", "add", f"10.207.{os.getpid() % 250}.1/24", "dev", bridge], capture_output=True,
                   check=False)
    subprocess.run(["ip", "link", "set", bridge, "up"], capture_output=True, check=False)
    argv = [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "pid"), "-H", host, "--bridge", bridge, "--iptables=false",
            "--default-address-pool", f"base=10.206.{os.getpid() % 250}.0/24,size=28"]
    t = _start_private("reference", "dockerd", argv, root, host)
    t.bridge = bridge
    return t


def _die_with_parent() -> None:
    """In the daemon's child before exec: SIGTERM when this bench process dies, even by SIGKILL (a
    test's timeout), so no private daemon outlives its bench run."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG


def _start_private(label: str, kind: str, argv: list[str], root: Path, host: str) -> Target:
    log = open(root / "daemon.log", "wb")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent)
    t = Target(label, host, kind, pid=proc.pid, private_root=root, proc=proc, log=log)
    deadline = time.monotonic() + 60
    while not ping(host):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (root / "daemon.log").read_text(errors="replace")[-2000:]
            t.close()
            raise SystemExit(f"private {label} daemon did not come up; its log ends with:\n{tail}")
        time.sleep(0.05)
    return t


def start_private_pydockerd(bip: str = "") -> Target:
    """``bip``: the default bridge's address and subnet (default: a /24 of its own)."""
    root = Path(tempfile.mkdtemp(prefix="pydbench-", dir="/tmp"))
    host = f"unix://{root}/docker.sock"
    argv = [sys.executable, "-m", "compat_server.daemon", "-H", host,
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "pid"), "--bridge", f"pydb{os.getpid() % 100000}",
            # a bridge subnet and address pool of its own (other daemons run on this machine)
            "--bip", bip or f"10.209.{os.getpid() % 250}.1/24",
            "--default-address-pool", f"base=10.208.{os.getpid() % 250}.0/24,size=28"]
    t = _start_private("pydockerd", "pydockerd", argv, root, host)
    t.bridge = f"pydb{os.getpid() % 100000}"
    return t


def external_target(label: str, host: str) -> Target:
    if not ping(host):
        raise SystemExit(f"{label}: no daemon answers /_ping at {host}")
    pid = pid_owning_socket(socket_path(host))
    kind = "pydockerd" if pid and "compat_server" in _cmdline(pid) else "dockerd"
    return Target(label, host, kind, pid=pid)


def _remove_networking(bridge: str, data_root: Path) -> None:
    """What a stopped pydockerd keeps by design: its default bridge and its iptables chains
    (named as engine/network/firewall.py names them)."""
    import hashlib

    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    prefix = "PYD-" + hashlib.sha256(str(data_root).encode()).hexdigest()[:8]
    for tool, table in itertools.product(("iptables", "ip6tables"), ("filter", "nat")):
        rules = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True,
                               check=False).stdout.splitlines()
        for line in rules:
            parts = line.split()
            if parts[:1] == ["-A"] and f"-j {prefix}" in line and not parts[1].startswith(prefix):
                subprocess.run([tool, "-w", "-t", table, "-D", *parts[1:]], capture_output=True, check=False)
        chains = [line.split()[1] for line in rules if line.startswith(f"-N {prefix}")]
        for flag in ("-F", "-X"):
            for chain in chains:
                subprocess.run([tool, "-w", "-t", table, flag, chain], capture_output=True, check=False)


def _unmount_under(prefix: Path) -> None:
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        return
    for m in sorted((m for m in mounts if m.startswith(str(prefix))), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


# -------------------------------------------------------------------------- processes
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pid_owning_socket(path: str) -> int | None:
    """The process holding the listening unix socket `path` (via /proc/net/unix inodes)."""
    inodes = set()
    try:
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                inodes.add(parts[6])
    except OSError:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for pid in _pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def memory_kb(pid: int) -> dict[str, int]:
    """RSS and PSS (shared pages divided among their users) in KiB."""
    out = {"rss_kb": 0, "pss_kb": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def daemon_processes(t: Target) -> list[int]:
    """The daemon's own processes: pydockerd's server; dockerd plus the containerd it runs."""
    if t.pid is None:
        return []
    pids = [t.pid]
    if t.kind == "dockerd":
        for pid in _pids():
            if _ppid(pid) == t.pid and "containerd" in _cmdline(pid) and "shim" not in _cmdline(pid):
                pids.append(pid)
    return pids


def find_shim(t: Target, container_id: str) -> int | None:
    marker = PYDOCKERD_SHIM_MARKER if t.kind == "pydockerd" else REFERENCE_SHIM_MARKER
    candidates = [pid for pid in _pids() if marker in _cmdline(pid)]
    naming = [pid for pid in candidates if container_id in _cmdline(pid)]
    for pid in naming:           # the shim that names our container (id or bundle path), not a
        if _ppid(pid) not in naming:  # child of it that has not reached its execve yet
            return pid
    for pid in candidates:       # else one whose child runs our container's `sleep`
        for child in _pids():
            if _ppid(child) == pid and "sleep" in _cmdline(child):
                return pid
    return None


# --------------------------------------------------------------------------- images
def busybox_rootfs_tar() -> bytes:
    """A busybox rootfs from Debian's busybox-static (the same bytes for every daemon)."""
    busybox = Path("/bin/busybox") if Path("/bin/busybox").is_file() else Path(shutil.which("busybox") or "")
    if not busybox.is_file():
        raise SystemExit("busybox not found: install Debian's busybox-static")
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for d in ("bin", "etc", "root", "dev", "proc", "sys", "usr", "usr/bin", "sbin"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in sorted(set(applets) - {"busybox"}):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        for name, data in (("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
                           ("etc/group", b"root:x:0:\nnogroup:x:65534:\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_busybox(t: Target) -> None:
    if t.docker("image", "inspect", IMAGE, check=False).returncode == 0:
        return
    t.docker("import", "--change", 'CMD ["sh"]', "-", IMAGE, input=busybox_rootfs_tar())


# ------------------------------------------------------------------------ benchmarks
@dataclass
class Bench:
    name: str
    what: str
    setup: Callable[[Target], Any] | None
    step: Callable[[Target, Any], None]
    teardown: Callable[[Target, Any], None] | None = None
    prepare: Callable[[Target, Any], None] | None = None   # before each step, not timed


def _run_true(t: Target, _: Any) -> None:
    t.docker("run", "--rm", IMAGE, "true")


def _sleeper(t: Target) -> str:
    return t.docker("run", "-d", IMAGE, "sleep", "3600").stdout.decode().strip()


def _remove(t: Target, cid: Any) -> None:
    t.docker("rm", "-f", str(cid), check=False)


def _exec_true(t: Target, cid: Any) -> None:
    t.docker("exec", str(cid), "true")


def _ps(t: Target, _: Any) -> None:
    t.docker("ps", "-a", "-q")


# --------------------------------------------------------------- save / load
SAVE_LOAD_IMAGE = "bench-saveload:latest"
SAVE_LOAD_LAYER_MB = (50, 30, 20)   # three layers of random content, about 100 MB


def saveload_archive() -> Path:
    """A docker-archive of a 3-layer ~100 MB image of random bytes (made once per run)."""
    global _SAVELOAD_DIR
    if _SAVELOAD_DIR is None:
        _SAVELOAD_DIR = Path(tempfile.mkdtemp(prefix="bench-saveload-", dir="/var/tmp"))
    path = _SAVELOAD_DIR / "image.tar"
    if path.exists():
        return path
    import hashlib
    layers: list[tuple[str, str]] = []   # (diff id, file in the archive)
    with tarfile.open(path, "w") as out:
        for i, mb in enumerate(SAVE_LOAD_LAYER_MB):
            layer_path = _SAVELOAD_DIR / f"layer{i}.tar"
            with tarfile.open(layer_path, "w") as layer:
                for j in range(mb // 10):
                    data = os.urandom(10 << 20)
                    info = tarfile.TarInfo(f"layer{i}/blob{j}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
                    layer.addfile(info, io.BytesIO(data))
            h = hashlib.sha256()
            with open(layer_path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            diff_id = "sha256:" + h.hexdigest()
            out.add(str(layer_path), arcname=f"{diff_id[7:]}/layer.tar")
            layer_path.unlink()
            layers.append((diff_id, f"{diff_id[7:]}/layer.tar"))
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        config = json.dumps({
            "architecture": arch, "os": "linux", "created": "2020-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "history": [{"created": "2020-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
            "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
        }, separators=(",", ":")).encode()
        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        for name, data in ((cfg_name, config),
                           ("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": [SAVE_LOAD_IMAGE],
                                                          "Layers": [f for _, f in layers]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path


_SAVELOAD_DIR: Path | None = None


def _saveload_setup(t: Target) -> Path:
    t.docker("rmi", "-f", SAVE_LOAD_IMAGE, check=False)
    t.docker("load", "-q", "-i", str(saveload_archive()), timeout=600)
    assert _SAVELOAD_DIR is not None
    return _SAVELOAD_DIR / f"saved-{t.label}.tar"


def _save(t: Target, out: Any) -> None:
    t.docker("save", "-o", str(out), SAVE_LOAD_IMAGE, timeout=600)


def _saveload_cleanup(t: Target, out: Any) -> None:
    Path(out).unlink(missing_ok=True)


def _load_prepare(t: Target, _: Any) -> None:
    # the image and its layers go, so each load unpacks all three layers again
    t.docker("rmi", "-f", SAVE_LOAD_IMAGE, check=False)


def _load(t: Target, _: Any) -> None:
    t.docker("load", "-i", str(saveload_archive()), timeout=600)

# --- list: GET /containers/json throughput with many containers, concurrent raw clients
LIST_CONTAINERS = 200
LIST_CLIENTS = 8
LIST_REQUESTS = 200          # per measured step, shared by the clients


class _UnixHTTP(http.client.HTTPConnection):
    """Keep-alive HTTP/1.1 over the daemon's unix socket (no CLI in the loop)."""

    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def _api(conn: _UnixHTTP, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def _many_created(t: Target) -> list[str]:
    conn = _UnixHTTP(socket_path(t.host))
    ids = []
    try:
        for i in range(LIST_CONTAINERS):
            status, body = _api(conn, "POST", "/containers/create",
                                {"Image": IMAGE, "Cmd": ["true"], "Labels": {"bench": "list", "n": str(i)}})
            if status != 201:
                raise SystemExit(f"{t.label}: create failed: {status} {body[:200]!r}")
            ids.append(json.loads(body)["Id"])
    finally:
        conn.close()
    return ids


def _remove_many(t: Target, ids: Any) -> None:
    conn = _UnixHTTP(socket_path(t.host))
    try:
        for cid in ids:
            _api(conn, "DELETE", f"/containers/{cid}?force=1")
    finally:
        conn.close()


def _list_burst(t: Target, ids: Any) -> None:
    """LIST_REQUESTS x `GET /containers/json?all=1` from LIST_CLIENTS concurrent connections."""
    import threading

    per_client = LIST_REQUESTS // LIST_CLIENTS
    errors: list[str] = []

    def client() -> None:
        conn = _UnixHTTP(socket_path(t.host))
        try:
            for _ in range(per_client):
                status, body = _api(conn, "GET", "/containers/json?all=1")
                if status != 200 or body.count(b'"Id"') < len(ids):
                    errors.append(f"{status}: {len(body)} bytes")
        except OSError as e:
            errors.append(str(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(LIST_CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"{t.label}: list failed: {errors[:3]}")


# --------------------------------------------------------------- pull
# A 3-layer image of about 100 MB of random bytes, put into a local docker-registry once per run.
PULL_LAYER_MB = 33
_pull_state: dict[str, Any] = {}


def _pull_registry() -> str:
    """Start one docker-registry for the whole run and put the image into it (once)."""
    if "ref" not in _pull_state:
        sys.path.insert(0, str(REPO))
        from conformance_tests.registry import seed_image, sha256_digest, start_registry
        root = Path(tempfile.mkdtemp(prefix="bench-registry-", dir="/var/tmp"))
        reg = start_registry(root / "reg")
        layers = []
        for i in range(3):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                data = os.urandom(PULL_LAYER_MB * 1_000_000)
                info = tarfile.TarInfo(f"layer{i}.bin")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            layers.append(buf.getvalue())
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                             "rootfs": {"type": "layers", "diff_ids": [sha256_digest(l) for l in layers]}}).encode()
        seed_image(reg, "bench/pull", "v1", config, layers)
        _pull_state.update(ref=f"{reg.address}/bench/pull:v1", registry=reg, root=root)
    return str(_pull_state["ref"])


def stop_pull_registry() -> None:
    reg = _pull_state.pop("registry", None)
    if reg is not None:
        reg.stop()
        shutil.rmtree(_pull_state.pop("root"), ignore_errors=True)
    _pull_state.clear()


def _pull_setup(t: Target) -> str:
    return _pull_registry()


def _remove_pulled(t: Target, ref: Any) -> None:
    # the image and its layers go, so each pull downloads and unpacks all three layers again
    t.docker("rmi", "-f", str(ref), check=False)


def _pull(t: Target, ref: Any) -> None:
    t.docker("pull", "-q", str(ref), timeout=600)


# ------------------------------------------------------------ volumes and docker cp
CP_MB = 100
BENCH_VOLUME = "bench-vol"
_CP_DIR: Path | None = None


def cp_tree() -> Path:
    """A directory of ~100 MB of random files (ten of 10 MB), made once per run."""
    global _CP_DIR
    if _CP_DIR is None:
        _CP_DIR = Path(tempfile.mkdtemp(prefix="bench-cp-", dir="/var/tmp"))
        tree = _CP_DIR / "tree"
        tree.mkdir()
        for i in range(CP_MB // 10):
            (tree / f"blob{i}").write_bytes(os.urandom(10 << 20))
    return _CP_DIR / "tree"


def _volume_setup(t: Target) -> str:
    t.docker("volume", "create", BENCH_VOLUME)
    return BENCH_VOLUME


def _volume_run(t: Target, vol: Any) -> None:
    t.docker("run", "--rm", "-v", f"{vol}:/data", IMAGE, "true")


def _volume_cleanup(t: Target, vol: Any) -> None:
    t.docker("volume", "rm", "-f", str(vol), check=False)


def _cp_in(t: Target, cid: Any) -> None:
    t.docker("cp", str(cp_tree()), f"{cid}:/tmp/tree", timeout=600)


def _cp_out_setup(t: Target) -> str:
    cid = _sleeper(t)
    t.docker("cp", str(cp_tree()), f"{cid}:/tmp/tree", timeout=600)
    return cid


def _cp_out_dest(t: Target) -> Path:
    assert _CP_DIR is not None
    return _CP_DIR / f"out-{t.label}"


def _cp_out_prepare(t: Target, cid: Any) -> None:
    shutil.rmtree(_cp_out_dest(t), ignore_errors=True)


def _cp_out(t: Target, cid: Any) -> None:
    t.docker("cp", f"{cid}:/tmp/tree", str(_cp_out_dest(t)), timeout=600)


def _cp_out_cleanup(t: Target, cid: Any) -> None:
    _cp_out_prepare(t, cid)
    _remove(t, cid)
# ----------------------------------------------------------------- networking
TCP_BYTES = int(os.environ.get("BENCH_TCP_BYTES", str(1 << 30)))   # 1 GiB through a published port
CONN_COUNT = 200                                                      # short HTTP connections per step
DNS_LOOKUPS = 50                                                      # container-name lookups per step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _connect(port: int, deadline: float = 20) -> socket.socket:
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


def _tcp_sink(t: Target) -> tuple[str, int]:
    """A container that says "go" on each connection, then reads everything into /dev/null."""
    port = _free_port()
    cid = t.docker("run", "-d", "-p", f"{port}:3000", IMAGE, "sh", "-c",
                   'while :; do nc -l -p 3000 -e sh -c "echo go; exec cat > /dev/null"; done').stdout.decode().strip()
    return cid, port


def _tcp_push(t: Target, state: Any) -> None:
    """TCP_BYTES from the host to 127.0.0.1:<published>; done when the container has read it all."""
    _, port = state
    chunk = b"\0" * (1 << 20)
    for _ in range(500):
        # between two connections the sink restarts `nc -l`: a connection made in that gap is
        # refused, or closed by a proxy before the "go"; it is retried
        with _connect(port) as s:
            if s.recv(3) != b"go\n":
                time.sleep(0.01)
                continue
            sent = 0
            while sent < TCP_BYTES:
                s.sendall(chunk[:min(TCP_BYTES - sent, len(chunk))])
                sent += len(chunk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            return
    raise RuntimeError("the TCP sink never took a connection")


def _drop_first(t: Target, state: Any) -> None:
    _remove(t, state[0])


def _http_server(t: Target) -> tuple[str, int]:
    port = _free_port()
    cid = t.docker("run", "-d", "-p", f"{port}:3000", IMAGE, "sh", "-c",
                   "mkdir -p /www && echo ok > /www/i && exec httpd -f -p 3000 -h /www").stdout.decode().strip()
    _connect(port).close()
    return cid, port


def _short_connections(t: Target, state: Any) -> None:
    _, port = state
    for _ in range(CONN_COUNT):
        with _connect(port) as s:
            s.sendall(b"GET /i HTTP/1.0\r\n\r\n")
            while s.recv(4096):
                pass


def _dns_pair(t: Target) -> tuple[str, str, str]:
    net = f"bench-net-{os.getpid()}"
    t.docker("network", "create", net)
    a = t.docker("run", "-d", "--network", net, "--name", f"bench-dns-a-{os.getpid()}", IMAGE,
                 "sleep", "3600").stdout.decode().strip()
    b = t.docker("run", "-d", "--network", net, IMAGE, "sleep", "3600").stdout.decode().strip()
    return net, a, b


def _dns_lookups(t: Target, state: Any) -> None:
    _, _, b = state
    t.docker("exec", b, "sh", "-c",
             f"for i in $(seq {DNS_LOOKUPS}); do nslookup bench-dns-a-{os.getpid()} >/dev/null || exit 1; done")


def _dns_cleanup(t: Target, state: Any) -> None:
    net, a, b = state
    t.docker("rm", "-f", a, b, check=False)
    t.docker("network", "rm", net, check=False)
# ------------------------------------------------------------------ build
BUILD_DOCKERFILE = """\
FROM busybox
WORKDIR /app
COPY data/ ./data/
RUN cat data/* | wc -c > /size
RUN echo one > /one
RUN echo two > /two
RUN ls -la /app/data > /listing
ENV MODE=bench
EXPOSE 8080
CMD ["cat", "/size"]
"""
_BUILD_DIR: Path | None = None


def _build_contexts() -> Path:
    """Two contexts, made once: the 10-step one (~20 MB in 5 files) and a 100 MB upload-only one."""
    global _BUILD_DIR
    if _BUILD_DIR is None:
        root = Path(tempfile.mkdtemp(prefix="bench-build-"))
        steps = root / "steps"
        (steps / "data").mkdir(parents=True)
        (steps / "Dockerfile").write_text(BUILD_DOCKERFILE)
        for i in range(5):
            (steps / "data" / f"part{i}.bin").write_bytes(os.urandom(4 << 20))
        upload = root / "upload"
        upload.mkdir()
        (upload / "Dockerfile").write_text("FROM busybox\n")
        with open(upload / "big.bin", "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
        _BUILD_DIR = root
    return _BUILD_DIR


def _classic_build(t: Target, *args: str) -> None:
    env = t.env()
    env["DOCKER_BUILDKIT"] = "0"     # the classic builder on both daemons
    proc = subprocess.run([DOCKER, "build", "-q", *args], env=env, capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"[{t.label}] docker build {' '.join(args)} failed: "
                           f"{proc.stderr.decode(errors='replace').strip()}")


def _build_setup(t: Target) -> Path:
    return _build_contexts()


def _build_cold_prepare(t: Target, root: Any) -> None:
    t.docker("rmi", "-f", "bench-build:cold", check=False)   # the last build and its step images


def _build_cold(t: Target, root: Any) -> None:
    _classic_build(t, "--no-cache", "-t", "bench-build:cold", str(Path(root) / "steps"))


def _build_cached_setup(t: Target) -> Path:
    root = _build_contexts()
    _classic_build(t, "-t", "bench-build:cached", str(root / "steps"))
    return root


def _build_cached(t: Target, root: Any) -> None:
    _classic_build(t, "-t", "bench-build:cached", str(Path(root) / "steps"))


def _build_upload(t: Target, root: Any) -> None:
    _classic_build(t, str(Path(root) / "upload"))


def _build_teardown(t: Target, root: Any) -> None:
    t.docker("rmi", "-f", "bench-build:cold", "bench-build:cached", check=False)


def cleanup_build_contexts() -> None:
    global _BUILD_DIR
    if _BUILD_DIR is not None:
        shutil.rmtree(_BUILD_DIR, ignore_errors=True)
        _BUILD_DIR = None


# ------------------------------------------------------------------------ compose
COMPOSE_FILE = """\
services:
  web:
    image: bench-compose-web
    ports: ["127.0.0.1::8080"]
    volumes: ["data:/data"]
  seed:
    image: busybox:latest
    command: ["sh", "-c", "echo seeded > /data/seed"]
    volumes: ["data:/data"]
  client:
    image: busybox:latest
    command: ["sleep", "3600"]
    depends_on:
      web: {condition: service_started}
      seed: {condition: service_completed_successfully}
volumes:
  data: {}
"""


def _compose(t: Target, project: Path, *args: str) -> None:
    env = {**t.env(), "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run([DOCKER, "compose", "-p", project.name, "--project-directory", str(project), *args],
                          env=env, capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"[{t.label}] docker compose {' '.join(args)} failed: "
                           f"{proc.stderr.decode(errors='replace').strip()}")


def _compose_setup(t: Target) -> Path:
    """The three-service project, its web image built beforehand (untimed, classic builder)."""
    plugins = Path.home() / ".docker" / "cli-plugins"      # the compose plugin, in the private CLI config
    if plugins.is_dir() and not (t.config_dir / "cli-plugins").exists():
        (t.config_dir / "cli-plugins").symlink_to(plugins)
    project = Path(tempfile.mkdtemp(prefix=f"benchcmp{t.label[:3]}", dir="/tmp"))
    (project / "Dockerfile").write_text('FROM busybox:latest\nCMD ["httpd", "-f", "-p", "8080"]\n')
    proc = subprocess.run([DOCKER, "build", "-q", "-t", "bench-compose-web", str(project)],
                          env={**t.env(), "DOCKER_BUILDKIT": "0"}, capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"[{t.label}] building the compose bench image: {proc.stderr.decode(errors='replace')}")
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    return project


def _compose_up_down(t: Target, project: Any) -> None:
    _compose(t, project, "up", "-d")
    _compose(t, project, "down", "-v", "--timeout", "1")


def _compose_cleanup(t: Target, project: Any) -> None:
    try:
        _compose(t, project, "down", "-v", "--timeout", "1")
    except RuntimeError:
        pass
    t.docker("rmi", "-f", "bench-compose-web", check=False)
    shutil.rmtree(project, ignore_errors=True)


BENCHMARKS = {
    "run": Bench("run", "docker run --rm busybox true", None, _run_true),
    "exec": Bench("exec", "docker exec <running> true", _sleeper, _exec_true, _remove),
    "ps": Bench("ps", "docker ps -a -q", None, _ps),
    "save": Bench("save", "docker save -o x.tar <3-layer 100 MB image>", _saveload_setup, _save, _saveload_cleanup),
    "load": Bench("load", "docker load -i <3-layer 100 MB image> (after rmi)", _saveload_setup, _load,
                  _saveload_cleanup, prepare=_load_prepare),
    "pull": Bench("pull", "docker pull <3-layer 100 MB image> from a local registry (after rmi)", _pull_setup,
                  _pull, _remove_pulled, prepare=_remove_pulled),
    "list": Bench("list", f"GET /containers/json x{LIST_REQUESTS} ({LIST_CLIENTS} clients, {LIST_CONTAINERS} ctrs)",
                  _many_created, _list_burst, _remove_many),
    "volrun": Bench("volrun", f"docker run --rm -v {BENCH_VOLUME}:/data busybox true", _volume_setup, _volume_run,
                    _volume_cleanup),
    "cpin": Bench("cpin", f"docker cp <{CP_MB} MB dir> <running>:/tmp/tree", _sleeper, _cp_in, _remove),
    "cpout": Bench("cpout", f"docker cp <running>:/tmp/tree <{CP_MB} MB dir>", _cp_out_setup, _cp_out,
                   _cp_out_cleanup, prepare=_cp_out_prepare),
    "tcp": Bench("tcp", f"{TCP_BYTES >> 20} MiB host -> container through 127.0.0.1:<published port>",
                 _tcp_sink, _tcp_push, _drop_first),
    "conn": Bench("conn", f"{CONN_COUNT} short HTTP connections through a published port", _http_server,
                  _short_connections, _drop_first),
    "dns": Bench("dns", f"{DNS_LOOKUPS} lookups of a container name on a user network (one exec)", _dns_pair,
                 _dns_lookups, _dns_cleanup),
    "build_cold": Bench("build_cold", "docker build --no-cache <10 steps, 20 MB COPY, 4 RUN> (classic builder)",
                        _build_setup, _build_cold, _build_teardown, prepare=_build_cold_prepare),
    "build_cached": Bench("build_cached", "docker build <the same 10 steps, all from the cache>", _build_cached_setup,
                          _build_cached, _build_teardown),
    "build_context": Bench("build_context", "docker build <FROM busybox, 100 MB context upload>", _build_setup,
                           _build_upload),
    "compose": Bench("compose", "docker compose up -d + down -v of a 3-service project (image built)",
                     _compose_setup, _compose_up_down, _compose_cleanup),
    # Later: logs -f latency.  Add a Bench here and it is reported.
}


def measure(targets: list[Target], b: Bench, n: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Time `b` on every target, interleaved (A B B A A B ...) so that drifting machine load
    falls on all targets alike."""
    states: dict[str, Any] = {}
    times: dict[str, list[float]] = {t.label: [] for t in targets}
    try:
        for t in targets:
            states[t.label] = b.setup(t) if b.setup else None
        for _ in range(warmup):
            for t in targets:
                if b.prepare:
                    b.prepare(t, states[t.label])
                b.step(t, states[t.label])
        for i in range(n):
            # Alternate who goes first: the second of a pair can pay for the first's
            # asynchronous cleanup (e.g. dockerd removing a --rm container).
            for t in (targets if i % 2 == 0 else targets[::-1]):
                if b.prepare:
                    b.prepare(t, states[t.label])
                start = time.perf_counter()
                b.step(t, states[t.label])
                times[t.label].append(time.perf_counter() - start)
    finally:
        if b.teardown:
            for t in targets:
                if t.label in states:
                    b.teardown(t, states[t.label])
    out = {}
    for label, samples in times.items():
        ms = [round(x * 1000, 2) for x in samples]
        out[label] = {
            "what": b.what, "n": n, "warmup": warmup,
            "median_ms": round(statistics.median(ms), 2),
            "min_ms": min(ms), "max_ms": max(ms),
            "stdev_ms": round(statistics.stdev(ms), 2) if n > 1 else 0.0,
            "samples_ms": ms,
        }
    return out


def memory_report(t: Target) -> dict[str, Any]:
    report: dict[str, Any] = {}
    procs = daemon_processes(t)
    if procs:
        time.sleep(1.0)   # idle: let the last request's garbage settle
        per = {str(p): {"cmd": _cmdline(p)[:80], **memory_kb(p)} for p in procs}
        report["daemon"] = {"pids": per,
                            "rss_kb": sum(v["rss_kb"] for v in per.values()),
                            "pss_kb": sum(v["pss_kb"] for v in per.values())}
    else:
        report["daemon"] = {"error": "daemon pid unknown (pidfile/socket owner not found)"}
    cid = _sleeper(t)
    try:
        shim = find_shim(t, cid)
        report["shim"] = ({"pid": shim, "cmd": _cmdline(shim)[:80], **memory_kb(shim)} if shim
                          else {"error": "no shim process found"})
    finally:
        _remove(t, cid)
    return report


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pydockerd benchmarks (see module docstring)")
    ap.add_argument("--n", type=int, default=20, help="measured iterations per benchmark (>= 20 for run)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bench", default="run", help=f"comma list of {','.join(BENCHMARKS)} or 'all'")
    ap.add_argument("--no-rss", action="store_true", help="skip the memory measurements")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--start-reference", action="store_true",
                    help="without REFERENCE_DOCKER_HOST: start a private dockerd (Debian's docker.io) to compare")
    args = ap.parse_args(argv)
    names = list(BENCHMARKS) if args.bench == "all" else [b for b in args.bench.split(",") if b]
    unknown = [b for b in names if b not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {unknown}")

    targets: list[Target] = []
    try:
        if os.environ.get("DOCKER_HOST"):
            targets.append(external_target("pydockerd", os.environ["DOCKER_HOST"]))
        else:
            targets.append(start_private_pydockerd())
        if os.environ.get("REFERENCE_DOCKER_HOST"):
            targets.append(external_target("reference", os.environ["REFERENCE_DOCKER_HOST"]))
        elif args.start_reference:
            targets.append(start_private_dockerd())

        results: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "cli": subprocess.run([DOCKER, "--version"], capture_output=True, text=True).stdout.strip(),
            "targets": {},
        }
        for t in targets:
            ensure_busybox(t)
            version = t.docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})",
                               check=False).stdout.decode().strip()
            results["targets"][t.label] = {"host": t.host, "kind": t.kind, "version": version, "bench": {}}
        for name in names:
            print(f"{BENCHMARKS[name].what}: {args.n} runs on {', '.join(t.label for t in targets)} ...",
                  file=sys.stderr, flush=True)
            for label, stats in measure(targets, BENCHMARKS[name], args.n, args.warmup).items():
                if name == "list":  # a throughput: requests per second at the median step
                    stats["requests_per_s"] = round(LIST_REQUESTS / (stats["median_ms"] / 1000), 1)
                if name == "tcp":
                    stats["mib_per_s"] = round((TCP_BYTES >> 20) / (stats["median_ms"] / 1000), 1)
                if name == "conn":
                    stats["connections_per_s"] = round(CONN_COUNT / (stats["median_ms"] / 1000), 1)
                results["targets"][label]["bench"][name] = stats
        if not args.no_rss:
            for t in targets:
                results["targets"][t.label]["memory"] = memory_report(t)

        if "reference" in results["targets"]:
            ratios = {}
            for name in names:
                ours = results["targets"]["pydockerd"]["bench"][name]["median_ms"]
                ref = results["targets"]["reference"]["bench"][name]["median_ms"]
                ratios[name] = round(ours / ref, 3) if ref else None
            results["ratio_pydockerd_over_reference"] = ratios
            results["goal_run_ratio"] = GOAL_RATIO

        print_table(results, names)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        text = json.dumps(results, indent=1, sort_keys=True) + "\n"
        (out / f"bench-{stamp}.json").write_text(text)
        (out / "latest.json").write_text(text)
        print(f"\nJSON: {out / f'bench-{stamp}.json'}")
    finally:
        for t in targets:
            t.close()
        if _SAVELOAD_DIR is not None:
            shutil.rmtree(_SAVELOAD_DIR, ignore_errors=True)
        if _CP_DIR is not None:
            shutil.rmtree(_CP_DIR, ignore_errors=True)
        stop_pull_registry()
        cleanup_build_contexts()
    return 0


def print_table(results: dict[str, Any], names: list[str]) -> None:
    tg = results["targets"]
    labels = list(tg)
    ratios = results.get("ratio_pydockerd_over_reference", {})
    head = f"{'benchmark':<34}" + "".join(f"{lab + ' median':>20}" for lab in labels)
    head += f"{'ratio':>9}" if ratios else ""
    print(head)
    print("-" * len(head))
    for name in names:
        row = f"{tg[labels[0]]['bench'][name]['what']:<34}"
        row += "".join(f"{tg[lab]['bench'][name]['median_ms']:>17.1f} ms" for lab in labels)
        if ratios:
            r = ratios.get(name)
            row += f"{r:>9.2f}" if r is not None else f"{'-':>9}"
        print(row)
    for what in ("daemon", "shim"):
        row = f"{what + ' RSS (PSS)':<34}"
        for lab in labels:
            mem = tg[lab].get("memory", {}).get(what, {})
            row += (f"{mem['rss_kb'] / 1024:>9.1f} ({mem['pss_kb'] / 1024:.1f}) MiB" if "rss_kb" in mem
                    else f"{'n/a':>20}")
        print(row)
    if "list" in names:
        print(f"{'list requests/s':<34}" + "".join(
            f"{tg[lab]['bench']['list'].get('requests_per_s', 0):>20.1f}" for lab in labels))
    if "run" in ratios and ratios["run"] is not None:
        verdict = "meets" if ratios["run"] <= GOAL_RATIO else "misses"
        print(f"\nrun ratio {ratios['run']:.2f} {verdict} the goal of <= {GOAL_RATIO}")


if __name__ == "__main__":
    sys.exit(main())
