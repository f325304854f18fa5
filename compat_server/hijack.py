"""Hijacked routes: container attach (and exec start, which answers "not found" until exec lands).

The front layer (compat_server.http) calls ``HijackHandlers.handle`` for every
request whose path is a hijack route; it decides between an error response,
a ``101 UPGRADED`` raw stream and a plain ``200`` stream.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

from engine import gojson
from engine.containers.exec import parse_detach_keys
from engine.errors import EngineError, InvalidParameter

from . import gotypes, versions, wsattach
from .backends import HijackBackend
from .detach import DEFAULT_DETACH_KEYS, Detaching, DetachScanner, detach_keys
from .errors import error_body, message_for, status_for
from .http.hijack import HijackConn, HijackRequest
from .routes.containers import mux_frame

log = logging.getLogger(__name__)

_ATTACH = re.compile(r"^(?:/v(?P<v>[0-9]+\.[0-9]+))?/containers/(?P<id>[^/]+)/attach$")
_EXEC = re.compile(r"^(?:/v(?P<v>[0-9]+\.[0-9]+))?/exec/(?P<id>[^/]+)/start$")
_ATTACH_WS = re.compile(r"^(?:/v(?P<v>[0-9]+\.[0-9]+))?/containers/(?P<id>[^/]+)/attach/ws$")

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    return values[-1].strip().lower() not in ("", "0", "no", "false", "none")


class HijackHandlers:
    def __init__(self, engine: HijackBackend) -> None:
        self.engine = engine

    async def handle(self, req: HijackRequest, conn: HijackConn) -> None:
        try:
            await self._dispatch(req, conn)
        except EngineError as err:
            await self._error(conn, err)
        except Exception as err:
            log.exception("hijacked request failed")
            await self._error(conn, err)

    async def _error(self, conn: HijackConn, err: BaseException) -> None:
        status = status_for(err)
        try:
            if status == 304:
                await conn.send_response(304, [])
            else:
                await conn.send_response(status, [("Content-Type", "application/json")], error_body(message_for(err)))
        except Exception:  # noqa: BLE001 - the connection may already be streaming
            await conn.close()

    async def _dispatch(self, req: HijackRequest, conn: HijackConn) -> None:
        ws = _ATTACH_WS.match(req.path)
        if ws is not None and req.method == "GET":
            version = ws.group("v") or versions.DEFAULT_API_VERSION
            problem = versions.check(version)
            if problem:
                await conn.send_response(400, [("Content-Type", "application/json")], error_body(problem))
                return
            await wsattach.serve(self.engine, req, conn, ws.group("id"), version)
            return
        m = _ATTACH.match(req.path)
        kind = "attach"
        if m is None:
            m = _EXEC.match(req.path)
            kind = "exec"
        if m is None or req.method != "POST":
            await conn.send_response(404, [("Content-Type", "application/json")], error_body("page not found"))
            return
        version = m.group("v") or versions.DEFAULT_API_VERSION
        problem = versions.check(version)
        if problem:
            await conn.send_response(400, [("Content-Type", "application/json")], error_body(problem))
            return
        if kind == "exec":
            await self._exec_start(req, conn, m.group("id"), version)
            return
        await self._attach(req, conn, m.group("id"), version)

    async def _attach(self, req: HijackRequest, conn: HijackConn, ref: str, version: str) -> None:
        q = req.query
        stream = _flag(q, "stream")
        logs = _flag(q, "logs")
        want_stdin, want_stdout, want_stderr = _flag(q, "stdin"), _flag(q, "stdout"), _flag(q, "stderr")
        svc = self.engine.containers
        c = svc.get(ref)
        tty = c.config.tty
        content_type = RAW if tty or not versions.at_least(version, "1.42") else MUX
        keys = detach_keys(q)
        att: Any = None
        if stream:
            att = await svc.attach(c.id, stdin=want_stdin, stdout=want_stdout, stderr=want_stderr)
        # dockerd watches a terminal's stdin for the detach keys: the attach ends, the container runs on
        detaching = Detaching(att, keys) if att is not None and tty and att.stdin else None
        try:
            if req.upgrade:
                await conn.start_upgrade(content_type)
            else:
                await conn.start_stream(content_type)
            if logs:
                async for entry in self.engine.read_logs(c, since_ns=None, until_ns=None, tail=None,
                                                         follow=False, stopped=None):
                    if (entry.stream == "stdout" and want_stdout) or (entry.stream == "stderr" and want_stderr):
                        code = 1 if entry.stream == "stdout" else 2
                        await conn.write(entry.data if tty else mux_frame(code, entry.data))
            if detaching is not None:
                await self._pump(conn, detaching, tty, stop=detaching.detached)
                if detaching.detached.is_set():
                    svc.note_detached(att)
            elif att is not None:
                await self._pump(conn, att, tty)
            await conn.close_write()
        finally:
            if att is not None:
                svc.forget_attach(att)
                await att.close()
            await conn.close()

    async def _exec_start(self, req: HijackRequest, conn: HijackConn, exec_id: str, version: str) -> None:
        body = gojson.loads(req.body, stream=True) if req.body.strip() else {}
        body = gojson.decode_as(body, gotypes.EXEC_START)
        body = body or {}
        execs = self.engine.execs
        inst = execs.get(exec_id)
        size = body.get("ConsoleSize")
        console = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None
        if not versions.at_least(version, "1.42"):
            console = None   # ConsoleSize arrived in API 1.42; dockerd ignores it from older clients
        detach = bool(body.get("Detach"))
        if detach:
            await execs.start(exec_id, detach=True, console_size=console)
            await conn.send_response(200, [], b"")  # dockerd: an empty 200, no content type
            return
        # Like dockerd, "already running/has already run" and a stopped container are
        # reported inside the stream once it is open (start() raises below).
        # Framing follows the start request's Tty, not the exec's (dockerd): an exec made with a
        # terminal and started with Tty=false is framed (all of it on stdout, as the terminal
        # merges the streams); one made without and started with Tty=true is raw stdout only.
        tty = bool(body.get("Tty"))
        content_type = RAW if tty or not versions.at_least(version, "1.42") else MUX
        if req.upgrade:
            await conn.start_upgrade(content_type)
        else:
            await conn.start_stream(content_type)
        try:
            try:
                session = await execs.start(exec_id, detach=False, console_size=console)
            except EngineError as err:
                # Like dockerd: the stream is already open, so the error goes into it and
                # the exit code (126/127) is what exec inspect reports.
                text = (err.message + "\r\n").encode()
                await conn.write(text if tty else mux_frame(1, text))
                await conn.close_write()
                return
            streams = _ExecStreams(session, inst, drop_stderr=tty and not inst.tty)
            await self._pump(conn, streams, tty, stop=streams.detached)
            if streams.detached.is_set():
                # the client detached: the exec goes on; its exit is collected in the background
                self.engine.execs.note_detached(inst)
                return
            # The client reads ExitCode from exec inspect right after the stream ends.
            await execs.complete(inst)
            await conn.close_write()
        finally:
            if inst.session is not None and not inst.done.is_set():
                asyncio.get_running_loop().create_task(execs.complete(inst))
            await conn.close()

    async def _pump(self, conn: HijackConn, att: AttachStreams, tty: bool, stop: asyncio.Event | None = None) -> None:
        async def stdin_pump() -> None:
            while True:
                data = await conn.read()
                if not data:
                    await att.close_stdin()
                    return
                await att.write(data)

        async def stdout_pump() -> None:
            while True:
                frame = await att.read()
                if frame is None:
                    return
                stream, data = frame
                await conn.write(data if tty else mux_frame(stream, data))

        out_task = asyncio.ensure_future(stdout_pump())
        in_task = asyncio.ensure_future(stdin_pump())
        hangup = asyncio.ensure_future(conn.closed_by_peer.wait())
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            done, _ = await asyncio.wait({out_task, hangup} | ({stopped} if stopped else set()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if out_task in done:
                out_task.result()
        finally:
            tasks = [t for t in (in_task, hangup, out_task, stopped) if t is not None]
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class AttachStreams(Protocol):
    """What the pump moves bytes through: a container's attach, or an exec session."""

    async def read(self) -> tuple[int, bytes] | None: ...
    async def write(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...


class BadRequestError(InvalidParameter):
    pass


class _ExecStreams:
    """An exec session seen through the attach interface the pump uses."""

    def __init__(self, session: Any, inst: Any, drop_stderr: bool = False) -> None:
        self.session = session
        self.inst = inst
        self.drop_stderr = drop_stderr
        # dockerd watches a tty exec's stdin for its detach keys (default ctrl-p,ctrl-q)
        keys = b""
        if inst.tty and inst.open_stdin:
            keys = parse_detach_keys(inst.detach_keys) if inst.detach_keys else DEFAULT_DETACH_KEYS
        self._scanner = DetachScanner(keys)
        self.detached = self._scanner.detached

    async def read(self) -> tuple[int, bytes] | None:
        while True:
            frame: tuple[int, bytes] | None = await self.session.read()
            if frame is None:
                return None
            if self.detached.is_set():
                return None  # nothing more on a stream the client detached from
            stream, _ = frame
            if stream == 2 and self.drop_stderr:
                continue
            if (stream == 1 and self.inst.open_stdout) or (stream == 2 and self.inst.open_stderr) or self.inst.tty:
                return frame

    async def write(self, data: bytes) -> None:
        if not self.inst.open_stdin or self.detached.is_set():
            return
        data = self._scanner.scan(data)
        if data:
            await self.session.write(data)

    async def close_stdin(self) -> None:
        if self.inst.open_stdin:
            await self.session.close_stdin()
