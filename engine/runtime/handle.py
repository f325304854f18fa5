"""``ShimHandle``: a created or running container, through its shim's socket."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from engine.errors import EngineError, Unavailable
from engine.runtime import protocol as P
from engine.runtime.api import ExitStatus
from engine.runtime.shimconn import (
    AttachSession,
    ExecSession,
    ShimConn,
    exit_status_of,
    open_shim_socket,
    read_exit_status,
    read_frame,
)
from engine.runtime.starterrors import NotRunning, start_error


class ShimHandle:
    """A created or running container, through its shim."""

    def __init__(self, container_id: str, bundle: Path, conn: ShimConn, hello: dict[str, Any]) -> None:
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
            self._exit.set_result(exit_status_of(hello["exit"]))
        self._reader = loop.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                fr = await read_frame(self._conn.reader)
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
                    self._exit.set_result(exit_status_of(msg))
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
        reader, writer = await open_shim_socket(self.bundle)
        conn = ShimConn(reader, writer)
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
        from engine.oci.caps import DEFAULT_CAPABILITIES, every_capability, process_capabilities
        if privileged:
            caps = every_capability()
        else:
            caps = list(capabilities) if capabilities is not None else list(DEFAULT_CAPABILITIES)
        capset = process_capabilities(caps, uid)
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
            reader, writer = await open_shim_socket(self.bundle)
        except (FileNotFoundError, ConnectionRefusedError):
            from engine.errors import Conflict
            raise Conflict(f"Container {self.container_id} is not running") from None
        conn = ShimConn(reader, writer)
        conn.next_id += 1
        rid = conn.next_id
        try:
            await conn.send(P.ctrl({"op": "exec", "id": rid, "exec_id": exec_id, "process": process,
                                    "open_stdin": open_stdin,
                                    "console_size": list(console_size) if console_size else None}))
            while True:
                fr = await read_frame(conn.reader)
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
