"""The asyncio side of the shim: what the engine uses to run containers.

``ShimRuntime.create`` starts a shim (a fresh interpreter, never a fork of the
server) and returns a ``ShimHandle`` once the container is created and
waiting for ``start``.  Attach sessions opened between create and start see
every byte of output.  ``connect`` finds the shim of a running container
after a server restart; ``read_exit_status`` reads what a finished shim left.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from engine.errors import Conflict, EngineError, InvalidParameter, Unavailable
from engine.runtime import protocol as P
from engine.runtime.api import ExitStatus
from engine.runtime.shim import EXIT_FILE, SOCKET_NAME, STATE_FILE

log = logging.getLogger(__name__)

_REPO_ROOT = str(Path(__file__).resolve().parents[2])

# Start the shim without running engine/__init__.py: the shim must stay small
# whatever the engine package grows to import.
_BOOT = (
    "import sys,types;"
    "m=types.ModuleType('engine');m.__path__=[sys.argv[1]+'/engine'];sys.modules['engine']=m;"
    "from engine.runtime.shim import main;main(sys.argv[2:])"
)


class StartFailed(EngineError):
    """The container could not be created (HTTP 500); ``exit_code`` is what dockerd records."""

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotRunning(Conflict):
    """The shim answered that its container's process has exited (it is finishing up)."""


class InvalidStartConfig(InvalidParameter):
    """The command or a mount is wrong (HTTP 400): exit code 127 or 126."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def start_error(detail: str, exit_code: int = 128, *, exec_: bool = False) -> EngineError:
    """dockerd's classification and wording of a failed container (or exec) start."""
    if exec_:
        message = f"OCI runtime exec failed: exec failed: unable to start container process: {detail}: unknown"
    else:
        message = (
            "failed to create shim task: OCI runtime create failed: runc create failed: "
            f"unable to start container process: {detail}: unknown"
        )
    if "executable file not found" in detail or "no such file or directory" in detail:
        return InvalidStartConfig(message, 127)
    if "permission denied" in detail:
        return InvalidStartConfig(message, 126)
    if "not a directory" in detail:
        return InvalidStartConfig(
            message + ": Are you trying to mount a directory onto a file (or vice-versa)? "
            "Check if the specified host path exists and is the expected type", 127)
    return StartFailed(message, exit_code if exit_code not in (0, 126, 127) else 128)


def _status(d: dict[str, Any]) -> ExitStatus:
    return ExitStatus(
        exit_code=int(d.get("exit_code", 255)),
        finished_at=str(d.get("finished_at", "")),
        oom_killed=bool(d.get("oom_killed", False)),
        error=str(d.get("error") or ""),
    )


async def _open(bundle: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = str(bundle / SOCKET_NAME)
    if len(path.encode()) < 100:
        return await asyncio.open_unix_connection(path)
    # sun_path holds 108 bytes: go through a directory fd for long bundle paths
    dirfd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
    finally:
        os.close(dirfd)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    try:
        head = await reader.readexactly(P.HEADER.size)
        kind, length = P.HEADER.unpack(head)
        if length > P.MAX_FRAME:
            raise P.FrameError(f"frame too large: {length}")
        return kind, await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class _Conn:
    """One socket to the shim with request/reply matching."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.next_id = 0

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request_inline(self, op: str, **kw: Any) -> dict[str, Any]:
        """Send a request and read frames until its reply (no reader task yet)."""
        self.next_id += 1
        rid = self.next_id
        await self.send(P.ctrl({"op": op, "id": rid, **kw}))
        while True:
            fr = await _read_frame(self.reader)
            if fr is None:
                raise Unavailable("connection to the container's shim closed")
            kind, payload = fr
            if kind == P.CTRL:
                msg: dict[str, Any] = json.loads(payload)
                if msg.get("id") == rid:
                    if not msg.get("ok"):
                        raise EngineError(msg.get("error", f"shim {op} failed"))
                    return msg

    def close(self) -> None:
        try:
            self.writer.close()
        except RuntimeError:  # loop already closed
            pass


class AttachSession:
    """A container's streams as seen by one attach: frames in, stdin out."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self._ended = False

    async def read(self) -> tuple[int, bytes] | None:
        """(1=stdout or 2=stderr, data); None once all output was delivered."""
        while not self._ended:
            fr = await _read_frame(self._conn.reader)
            if fr is None:
                self._ended = True
                break
            kind, payload = fr
            if kind in (P.STDOUT, P.STDERR):
                return kind, payload
            if kind == P.CTRL and json.loads(payload).get("event") == "exit":
                self._ended = True
        return None

    async def write(self, data: bytes) -> None:
        if data:
            await self._conn.send(P.frame(P.STDIN, data))

    async def close_stdin(self) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "close_stdin", "id": self._conn.next_id}))

    async def close(self) -> None:
        self._conn.close()


class ExecSession(AttachSession):
    """A process started in the running container: its streams, signals and exit.

    Read output with ``read()`` until it returns None, then ``wait()``; or call
    ``wait()`` directly to discard the output (detached exec)."""

    def __init__(self, conn: _Conn, pid: int) -> None:
        super().__init__(conn)
        self.pid = pid
        self._status: ExitStatus | None = None

    async def read(self) -> tuple[int, bytes] | None:
        while not self._ended:
            fr = await _read_frame(self._conn.reader)
            if fr is None:
                self._ended = True
                break
            kind, payload = fr
            if kind in (P.STDOUT, P.STDERR):
                return kind, payload
            if kind == P.CTRL:
                msg = json.loads(payload)
                if msg.get("event") == "exit":
                    self._status = _status(msg)
                    self._ended = True
        return None

    async def wait(self) -> ExitStatus:
        while await self.read() is not None:
            pass
        if self._status is None:
            raise Unavailable("connection to the container's shim closed before the exec exited")
        return self._status

    async def resize(self, height: int, width: int) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "resize", "id": self._conn.next_id, "height": int(height),
                                      "width": int(width)}))

    async def kill(self, sig: int) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "kill", "id": self._conn.next_id, "signal": int(sig)}))


class ShimHandle:
    """A created or running container, through its shim."""

    def __init__(self, container_id: str, bundle: Path, conn: _Conn, hello: dict[str, Any]) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.pid: int = int(hello["pid"])
        self.tty: bool = bool(hello.get("tty"))
        self.state: str = str(hello.get("state", "running"))
        self._conn = conn
        self._closed = False
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        loop = asyncio.get_running_loop()
        self._exit: asyncio.Future[ExitStatus] = loop.create_future()
        if hello.get("exit"):
            self._exit.set_result(_status(hello["exit"]))
        self._reader = loop.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                fr = await _read_frame(self._conn.reader)
                if fr is None:
                    break
                kind, payload = fr
                if kind != P.CTRL:
                    continue
                msg = json.loads(payload)
                rid = msg.get("id")
                if rid is not None:
                    fut = self._pending.pop(rid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif msg.get("event") == "exit" and not self._exit.done():
                    self._exit.set_result(_status(msg))
        finally:
            # The shim is gone (it exits after the exit event), was killed, or we closed the
            # connection (close() cancels this task): no reply can come any more.
            self._fail_pending()
        if not self._exit.done():
            status = read_exit_status(self.bundle)
            if status is not None:
                self._exit.set_result(status)
            else:
                self._exit.set_exception(EngineError("container's shim exited without an exit status"))

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Unavailable("connection to the container's shim closed"))
                fut.exception()  # retrieved here: a caller that went away must not log it

    async def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        """One request and its reply.  Fails with Unavailable, never hangs, when the connection
        is (or gets) closed before the reply arrives."""
        if self._reader.done() or self._closed:
            raise Unavailable("connection to the container's shim closed")
        self._conn.next_id += 1
        rid = self._conn.next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._conn.send(P.ctrl({"op": op, "id": rid, **kw}))
        except (ConnectionError, RuntimeError, OSError) as err:
            self._pending.pop(rid, None)
            fut.cancel()
            raise Unavailable("connection to the container's shim closed") from err
        if self._reader.done() or self._closed:  # closed while we were sending
            self._fail_pending()
        msg = await fut
        if not msg.get("ok"):
            error = str(msg.get("error", f"shim {op} failed"))
            if error.endswith("is not running"):
                raise NotRunning(error)
            raise EngineError(error)
        return msg

    async def start(self) -> None:
        """Release the init: it execs the container's process now."""
        await self._call("start")
        self.state = "running"

    async def attach(self, *, stdin: bool, stdout: bool, stderr: bool, logs_replay: bool = False) -> AttachSession:
        reader, writer = await _open(self.bundle)
        conn = _Conn(reader, writer)
        try:
            await conn.request_inline("attach", stdin=stdin, stdout=stdout, stderr=stderr, replay=logs_replay)
        except BaseException:
            conn.close()
            raise
        return AttachSession(conn)

    async def exec(
        self,
        exec_id: str,
        *,
        args: list[str],
        env: list[str],
        cwd: str = "/",
        uid: int = 0,
        gid: int = 0,
        additional_gids: list[int] | None = None,
        tty: bool = False,
        open_stdin: bool = False,
        console_size: tuple[int, int] | None = None,
        capabilities: list[str] | None = None,
        privileged: bool = False,
        no_new_privileges: bool = False,
    ) -> ExecSession:
        """Run a process in the running container (docker exec).

        Returns once it is about to execve; output is not lost because it flows
        over the connection this call opens.  Failures raise ``start_error``
        types (dockerd words; exit_code 126/127)."""
        from engine.oci.caps import CAPABILITIES, DEFAULT_CAPABILITIES
        if privileged:
            caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
        else:
            caps = list(capabilities) if capabilities is not None else list(DEFAULT_CAPABILITIES)
        capset: dict[str, list[str]] = {"bounding": caps}
        if uid == 0:
            capset["effective"] = caps
            capset["permitted"] = caps
        process: dict[str, Any] = {
            "terminal": tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids or [gid])},
            "args": list(args),
            "env": list(env),
            "cwd": cwd or "/",
            "capabilities": capset,
            "noNewPrivileges": no_new_privileges,
        }
        try:
            reader, writer = await _open(self.bundle)
        except (FileNotFoundError, ConnectionRefusedError):
            from engine.errors import Conflict
            raise Conflict(f"Container {self.container_id} is not running") from None
        conn = _Conn(reader, writer)
        conn.next_id += 1
        rid = conn.next_id
        try:
            await conn.send(P.ctrl({"op": "exec", "id": rid, "exec_id": exec_id, "process": process,
                                    "open_stdin": open_stdin,
                                    "console_size": list(console_size) if console_size else None}))
            while True:
                fr = await _read_frame(conn.reader)
                if fr is None:
                    raise Unavailable("connection to the container's shim closed")
                kind, payload = fr
                if kind == P.CTRL:
                    msg = json.loads(payload)
                    if msg.get("id") == rid:
                        break
        except BaseException:
            conn.close()
            raise
        if not msg.get("ok"):
            conn.close()
            err = str(msg.get("error", "exec failed"))
            if "is not running" in err:
                from engine.errors import Conflict
                raise Conflict(err)
            raise start_error(err, int(msg.get("exit_code") or 126), exec_=True)
        return ExecSession(conn, int(msg["pid"]))

    async def kill(self, sig: int) -> None:
        """Signal the container's init; a container that already exited needs nothing."""
        if self._exit.done():
            return
        try:
            await self._call("kill", signal=int(sig))
        except Unavailable:
            if not self._exit.done() and not self._shim_finished():
                raise

    def _shim_finished(self) -> bool:
        """The shim recorded the container's exit (its connection closes right after)."""
        return read_exit_status(self.bundle) is not None

    async def resize(self, height: int, width: int) -> None:
        await self._call("resize", height=int(height), width=int(width))

    async def pause(self) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        await self._call("pause")

    async def resume(self) -> None:
        await self._call("resume")

    async def update(self, resources: dict[str, Any]) -> None:
        """Apply OCI ``linux.resources`` (memory, pids, cpu...) to the running container."""
        await self._call("update", resources=resources)

    async def stats(self) -> dict[str, Any]:
        """Raw cgroup counters with Docker's names: memory_stats, cpu_stats (cpu_usage,
        throttling_data), pids_stats.  system_cpu_usage/online_cpus are the engine's."""
        return dict((await self._call("stats")).get("stats") or {})

    async def pids(self) -> list[int]:
        """Host pids of every process in the container (for docker top)."""
        return [int(p) for p in (await self._call("pids")).get("pids") or []]

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._exit)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    async def close(self) -> None:
        """Drop our connection; the shim and the container keep running.  Requests still
        waiting for a reply fail with Unavailable."""
        self._closed = True
        self._reader.cancel()
        self._fail_pending()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        if not self._exit.done():
            self._exit.cancel()
        self._conn.close()


class ShimRuntime:
    """Starts and finds shims.  One per engine."""

    def __init__(self, python: str, exec_root: Path) -> None:
        self.python = python
        self.exec_root = Path(exec_root)

    async def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        log_path: Path | None,
        tty: bool,
        open_stdin: bool,
        stdin_once: bool,
        console_size: tuple[int, int] | None = None,
        log_max_size: int | None = None,
        log_max_files: int = 1,
        log_attrs: dict[str, str] | None = None,
    ) -> ShimHandle:
        """Start the container's shim; returns when the init waits for ``start``.

        ``log_max_size``/``log_max_files`` are the json-file driver's max-size
        (bytes) and max-file options."""
        bundle = Path(bundle)
        opts = {
            "id": container_id,
            "bundle": str(bundle),
            "log_path": str(log_path) if log_path else "",
            "tty": tty,
            "open_stdin": open_stdin,
            "stdin_once": stdin_once,
            "console_size": list(console_size) if console_size else None,
            "log_max_size": log_max_size,
            "log_max_files": log_max_files,
            "log_attrs": log_attrs,
        }
        report = await asyncio.to_thread(self._spawn, bundle, opts)
        if not report.get("ok"):
            raise start_error(str(report.get("message", "unknown error")), int(report.get("exit_code") or 128))
        try:
            handle = await self._connect(container_id, bundle)
        except Exception:
            # We cannot talk to it: do not leave a created container behind.
            _kill_pid(int(report["pid"]))
            raise
        if handle is None:
            _kill_pid(int(report["pid"]))
            raise StartFailed("container's shim went away right after creating it")
        return handle

    def _spawn(self, bundle: Path, opts: dict[str, Any]) -> dict[str, Any]:
        env = dict(os.environ)
        # Shims start often: let them cache bytecode, outside the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.exec_root / "pycache")
        env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        stderr = os.open(bundle / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            proc = subprocess.Popen(
                [self.python, "-S", "-c", _BOOT, _REPO_ROOT, json.dumps(opts)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                start_new_session=True, close_fds=True, env=env, cwd=str(bundle),
            )
        finally:
            os.close(stderr)
        assert proc.stdout is not None
        with proc.stdout:
            line = proc.stdout.readline()
            try:
                report: dict[str, Any] | None = json.loads(line) if line.strip() else None
            except ValueError:
                report = None
            if not report or not report.get("ok"):
                proc.stdout.read()  # EOF: the shim has exited, nothing is left behind
        proc.wait()  # the first process exits right after forking the shim
        if report is None:
            tail = _tail(bundle / "shim.log")
            return {"ok": False, "message": f"container's shim failed to start{': ' + tail if tail else ''}",
                    "exit_code": 128}
        return report

    async def _connect(self, container_id: str, bundle: Path) -> ShimHandle | None:
        try:
            reader, writer = await _open(bundle)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            return None
        conn = _Conn(reader, writer)
        try:
            hello = await conn.request_inline("hello")
        except Unavailable:
            conn.close()
            return None
        except BaseException:
            conn.close()
            raise
        return ShimHandle(container_id, bundle, conn, hello)

    async def connect(self, container_id: str, bundle: Path) -> ShimHandle | None:
        """The live shim of a container (after a server restart), or None."""
        return await self._connect(container_id, Path(bundle))

    def read_exit_status(self, bundle: Path) -> ExitStatus | None:
        return read_exit_status(Path(bundle))

    async def cleanup(self, bundle: Path, cgroups_path: str | None = None) -> None:
        """Remove what a *dead* shim left behind (its container's processes, cgroups,
        socket).  Call it when ``connect`` returned None.  A live shim is left alone.
        ``cgroups_path`` (the spec's ``linux.cgroupsPath``) also finds the cgroups of a shim
        killed before it recorded them."""
        await asyncio.to_thread(cleanup_bundle, Path(bundle), cgroups_path)


def cleanup_bundle(bundle: Path, cgroups_path: str | None = None) -> None:
    from engine.runtime import cgroups as cg
    try:
        state = json.loads((bundle / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        state = None
    if state and _is_shim(int(state.get("shim_pid") or 0), bundle):
        return
    if state is None:
        try:
            shim_pid = int((bundle / "shim.pid").read_text())
        except (OSError, ValueError):
            shim_pid = 0
        if _is_shim(shim_pid, bundle):
            return
    cgroup = (state or {}).get("cgroup")
    if state:
        init_pid = int(state.get("init_pid") or 0)
        if init_pid and cgroup and _in_cgroup(init_pid, cgroup.get("path", "")):
            _kill_and_wait(init_pid)
    managers = []
    if cgroup:
        managers.append(cg.from_state(cgroup))
    elif cgroups_path:
        try:
            found = cg.manager_for(cgroups_path)
        except OSError:
            found = None
        if found is not None:
            managers.append(found)
    for m in managers:
        try:
            m.kill_all()        # nothing of a dead shim's container may keep running
        except OSError:
            pass
        try:
            m.destroy()
        except OSError as e:
            log.warning("removing cgroups of %s: %s", bundle, e)
    try:
        (bundle / SOCKET_NAME).unlink()
    except FileNotFoundError:
        pass


def _is_shim(pid: int, bundle: Path) -> bool:
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return b"engine.runtime.shim" in cmdline and str(bundle).encode() in cmdline


def _in_cgroup(pid: int, path: str) -> bool:
    """Is ``pid`` still our container's process (and not a recycled pid)?"""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return bool(path) and any(line.split(":", 2)[-1].strip() == path for line in text.splitlines())


def _kill_and_wait(pid: int) -> None:
    import select
    import signal
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def read_exit_status(bundle: Path) -> ExitStatus | None:
    try:
        with open(Path(bundle) / EXIT_FILE, "rb") as f:
            return _status(json.load(f))
    except (FileNotFoundError, ValueError):
        return None


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""
    return data.splitlines()[-1] if data else ""
