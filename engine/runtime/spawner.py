"""Starting shims: forked by the preloaded shim parent, or a fresh interpreter.

``ShimSpawner.spawn`` returns the shim's one-line report (see
``engine.runtime.shim``).  The shim parent (``engine.runtime.shimparent``) is
started on first use, or ahead of it with ``warm()``, as a fresh interpreter
(never a fork of the asyncio server), and restarted when it is found dead.
Whenever it cannot serve a start, the shim starts in a fresh interpreter
instead and the log says so: a container start never fails because of the
parent.

Blocking code: call it from a worker thread.  One lock serialises the requests
to the parent (a fork takes about a millisecond); waiting for each shim's report
happens outside it, so starts still overlap.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = str(Path(__file__).resolve().parents[2])

# Start without running engine/__init__.py: shims must stay small whatever the
# engine package grows to import.
_BOOT_PACKAGE = ("import sys,types;"
                 "m=types.ModuleType('engine');m.__path__=[sys.argv[1]+'/engine'];sys.modules['engine']=m;")
SHIM_BOOT = _BOOT_PACKAGE + "from engine.runtime.shim import main;main(sys.argv[2:])"
PARENT_BOOT = _BOOT_PACKAGE + "from engine.runtime.shimparent import main;main()"
# The parent's argv has room for each child to write its own title over it
# ("... engine.runtime.shim <bundle>", see shimparent.set_title).
TITLE_ROOM = 1024
PARENT_READY_TIMEOUT = 30.0
PARENT_REPLY_TIMEOUT = 30.0


class ShimSpawner:
    def __init__(self, python: str, exec_root: Path) -> None:
        self.python = python
        self.exec_root = Path(exec_root)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self.use_parent = os.environ.get("PYDOCKERD_SHIM_PARENT", "1") != "0"

    # ----------------------------------------------------------------- public
    def spawn(self, bundle: Path, opts: dict[str, Any]) -> dict[str, Any]:
        """Start the shim of ``bundle``; its report ``{"ok": ...}``."""
        stderr = os.open(bundle / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            if self.use_parent and not self._closed:
                report = self._spawn_forked(bundle, opts, stderr)
                if report is not None:
                    return report
            return self._spawn_fresh(bundle, opts, stderr)
        finally:
            os.close(stderr)

    def warm(self) -> None:
        """Start the shim parent now, so the first container does not wait for it."""
        if not self.use_parent:
            return
        with self._lock:
            if self._sock is None and not self._closed:
                try:
                    self._start_parent()
                except OSError as e:
                    log.warning("cannot start the shim parent (shims start in fresh interpreters): %s", e)

    def close(self) -> None:
        """Stop the shim parent (running shims are not affected); later starts use fresh
        interpreters."""
        with self._lock:
            self._closed = True
            self._stop_parent()

    @property
    def parent_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # --------------------------------------------------------------- forking
    def _spawn_forked(self, bundle: Path, opts: dict[str, Any], stderr: int) -> dict[str, Any] | None:
        """The report of a shim the parent forked; None: fall back to a fresh interpreter."""
        r, w = os.pipe()
        try:
            with self._lock:
                forked, why = self._request(opts, w, stderr)
            os.close(w)
            w = -1
            if forked is False:
                log.warning("shim parent unavailable (%s): starting the shim of %s in a fresh interpreter",
                            why, bundle)
                return None
            with os.fdopen(r, "rb") as f:
                r = -1
                report = _read_report(f)
            if report is not None:
                return report
            if forked is None:
                # The parent died between our request and its reply: nothing reports on
                # the pipe, so no shim was forked.
                log.warning("shim parent died while forking (%s): starting the shim of %s in a fresh interpreter",
                            why, bundle)
                return None
            return _no_report(bundle)
        finally:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)

    def _request(self, opts: dict[str, Any], report_w: int, stderr: int) -> tuple[bool | None, str]:
        """Ask the parent for a shim: (True, "") forked; (False, why) nothing was sent;
        (None, why) sent, but no reply.  Called with the lock held."""
        if self._sock is not None and self._proc is not None and self._proc.poll() is not None:
            log.warning("the shim parent (pid %d) is gone (%s): starting a new one", self._proc.pid,
                        _describe_exit(self._proc.returncode))
            self._stop_parent()
        if self._sock is None:
            try:
                self._start_parent()
            except OSError as e:
                return False, f"cannot start it: {e}"
        assert self._sock is not None
        try:
            socket.send_fds(self._sock, [json.dumps(opts).encode()], [report_w, stderr])
        except OSError as e:
            self._stop_parent()
            return False, str(e)
        try:
            reply = self._sock.recv(65536)
        except OSError as e:
            reply, err = b"", str(e)
        else:
            err = "it closed its socket"
        if not reply:
            self._stop_parent()
            return None, err
        msg = json.loads(reply)
        if not msg.get("ok"):
            return False, str(msg.get("message", "fork failed"))
        return True, ""

    def _start_parent(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_fd = os.open(self.exec_root / "shim-parent.log",
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            proc = subprocess.Popen(
                [self.python, "-S", "-c", PARENT_BOOT, REPO_ROOT, "shim-parent", str(self.exec_root),
                 " " * TITLE_ROOM],
                stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=log_fd,
                start_new_session=True, close_fds=True, env=shim_env(self.exec_root), cwd="/",
            )
        finally:
            theirs.close()
            os.close(log_fd)
        ours.settimeout(PARENT_READY_TIMEOUT)
        try:
            ready = ours.recv(64)
        except OSError:
            ready = b""
        if ready != b"ready":
            ours.close()
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
            raise OSError(f"the shim parent did not start ({_describe_exit(proc.returncode)}; "
                          f"see {self.exec_root / 'shim-parent.log'})")
        ours.settimeout(PARENT_REPLY_TIMEOUT)
        self._sock, self._proc = ours, proc
        log.debug("shim parent started (pid %d)", proc.pid)

    def _stop_parent(self) -> None:
        sock, proc = self._sock, self._proc
        self._sock = self._proc = None
        if sock is not None:
            sock.close()  # EOF: the parent exits
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -------------------------------------------------------- fresh interpreter
    def _spawn_fresh(self, bundle: Path, opts: dict[str, Any], stderr: int) -> dict[str, Any]:
        proc = subprocess.Popen(
            [self.python, "-S", "-c", SHIM_BOOT, REPO_ROOT, json.dumps(opts)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            start_new_session=True, close_fds=True, env=shim_env(self.exec_root), cwd=str(bundle),
        )
        assert proc.stdout is not None
        with proc.stdout:
            report = _read_report(proc.stdout)
        proc.wait()  # the first process exits right after forking the shim
        return report if report is not None else _no_report(bundle)


def shim_env(exec_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Shims start often: let them cache bytecode, outside the source tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(exec_root) / "pycache")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _read_report(f: Any) -> dict[str, Any] | None:
    """The shim's report line; on failure read to EOF (the shim has exited then)."""
    line = f.readline()
    try:
        report = json.loads(line) if line.strip() else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        report = None
    if report is None or not report.get("ok"):
        f.read()
    return report


def _no_report(bundle: Path) -> dict[str, Any]:
    tail = _tail(bundle / "shim.log")
    return {"ok": False, "message": f"container's shim failed to start{': ' + tail if tail else ''}",
            "exit_code": 128}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""
    return data.splitlines()[-1] if data else ""
