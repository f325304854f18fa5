"""Exec instances: `docker exec` through the container's shim."""
from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, EngineError, NotFound
from ..types import PAUSED, RESTARTING
from . import files


@dataclass
class ExecInstance:
    id: str
    container_id: str
    args: list[str]
    env: list[str]
    user: str
    working_dir: str
    tty: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    privileged: bool
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None   # from create (API 1.42+); start's wins
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    session: Any = None
    started_at: str = ""            # the container's StartedAt when the exec was created
    exited_at: float = 0.0          # monotonic time of the exit, for the collector


# dockerd keeps an exited exec inspectable until its collector, which runs every
# 5 minutes, has seen it twice: 5 to 10 minutes.  We drop it after 5.
EXEC_KEEP_SECONDS = 300.0


_CTRL = ["ctrl-@"] + [f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)] + \
    ["ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def parse_detach_keys(spec: str) -> bytes:
    """`ctrl-p,ctrl-q` -> b"\\x10\\x11": comma-separated single characters or ctrl-<c>."""
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            out.append(ord(key) & 0xFF)
        elif key in _CTRL:
            out.append(_CTRL.index(key))
        else:
            raise EngineError(f"Invalid escape keys ({spec}) provided")   # dockerd: a 500
    return bytes(out)


class ExecService:
    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self._execs: dict[str, ExecInstance] = {}
        # What collect() looks at, so that its cost does not grow with the number of
        # containers or of execs kept: exited execs in the order they exited, execs created
        # but not started, and the containers whose ExecIDs this service changed (every
        # container once, at the first collect, for ids from before a daemon restart).
        self._exited: deque[ExecInstance] = deque()
        self._unstarted: dict[str, ExecInstance] = {}
        self._listing: set[str] = set()
        self._scanned = False

    def get(self, exec_id: str) -> ExecInstance:
        inst = self._execs.get(exec_id)
        if inst is not None and not self._current(inst):
            self._forget(inst)
            inst = None
        if inst is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return inst

    def unregister(self, exec_id: str) -> None:
        """Forget an exec (a health probe's, once it is done): no inspect of it any more."""
        inst = self._execs.pop(exec_id, None)
        self._unstarted.pop(exec_id, None)
        if inst is not None and self._exited and self._exited[-1] is inst:
            self._exited.pop()      # a probe's, just done: not kept until the collector runs

    def _current(self, inst: ExecInstance) -> bool:
        """An exec lives as long as the run of the container it was created in (dockerd
        unregisters a container's execs when it stops), and exited ones a while longer."""
        if inst.running:
            return True
        if inst.exited_at:
            return time.monotonic() - inst.exited_at < EXEC_KEEP_SECONDS
        c = self.containers.records.find(inst.container_id)   # created, never started
        return c is not None and c.state.running and c.state.started_at == inst.started_at

    def _forget(self, inst: ExecInstance) -> None:
        if self._execs.get(inst.id) is inst:
            self._execs.pop(inst.id, None)
        self._unstarted.pop(inst.id, None)
        self._drop_from_container(inst)

    def _drop_from_container(self, inst: ExecInstance) -> None:
        c = self.containers.records.find(inst.container_id)
        if c is not None and inst.id in c.exec_ids:
            c.exec_ids.remove(inst.id)

    def collect(self) -> None:
        """Drop execs that are over (see ``_current``) and any exec id a container still
        lists that we no longer know (e.g. from before a daemon restart)."""
        now = time.monotonic()
        while self._exited and now - self._exited[0].exited_at >= EXEC_KEEP_SECONDS:
            self._forget(self._exited.popleft())
        for inst in [i for i in self._unstarted.values() if not self._current(i)]:
            self._unstarted.pop(inst.id, None)
            self._forget(inst)
        if not self._scanned:
            self._scanned = True
            self._listing.update(c.id for c in self.containers.records.all() if c.exec_ids)
        for cid in list(self._listing):
            c = self.containers.records.find(cid)
            ids = c.exec_ids if c is not None else None
            if ids:
                ids[:] = [i for i in ids if i in self._execs and self._execs[i].exit_code is None]
            if not ids:
                self._listing.discard(cid)

    def _exited_now(self, inst: ExecInstance) -> None:
        inst.running = False
        inst.exited_at = time.monotonic()
        self._unstarted.pop(inst.id, None)
        self._exited.append(inst)

    def _running_live(self, container_id: str) -> tuple[Any, Any]:
        c = self.containers.get(container_id)
        live = self.containers.records.live(c.id)
        if c.state.status == PAUSED:
            raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
        if c.state.status == RESTARTING or c.state.restarting:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.running or live is None:
            raise Conflict(f"Container {c.id} is not running")
        return c, live

    def create(self, ref: str, *, cmd: list[str], env: list[str], user: str, working_dir: str, tty: bool,
               attach_stdin: bool, attach_stdout: bool, attach_stderr: bool, privileged: bool,
               detach_keys: str = "", console_size: tuple[int, int] | None = None) -> ExecInstance:
        c, _ = self._running_live(ref)
        if detach_keys:
            parse_detach_keys(detach_keys)
        self.collect()
        inst = ExecInstance(
            id=secrets.token_hex(32), container_id=c.id, args=list(cmd), env=list(env),
            user=user or c.config.user, working_dir=working_dir, tty=tty, open_stdin=attach_stdin,
            open_stdout=attach_stdout, open_stderr=attach_stderr, privileged=privileged, detach_keys=detach_keys,
            started_at=c.state.started_at, console_size=console_size,
        )
        self._execs[inst.id] = inst
        self._unstarted[inst.id] = inst
        c.exec_ids.append(inst.id)
        self._listing.add(c.id)
        self.containers.records.emit(c, "exec_create: " + _event_command(cmd), execID=inst.id)
        return inst

    def check_startable(self, exec_id: str) -> None:
        inst = self.get(exec_id)
        if inst.running or inst.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        self._running_live(inst.container_id)

    async def start(self, exec_id: str, *, detach: bool = False,
                    console_size: tuple[int, int] | None = None) -> Any:
        """Start the exec.  Detached: its exit is collected in the background.
        Attached: the caller reads the session's output, then awaits ``complete``."""
        inst = self.get(exec_id)
        if inst.running:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        if inst.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c, live = self._running_live(inst.container_id)
        inst.running = True
        self._unstarted.pop(inst.id, None)
        try:
            if inst.working_dir and not inst.working_dir.startswith("/"):
                raise EngineError("OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown")
            bundle = self.containers.config.bundles_root / c.id
            uid, gid, groups, home, sec = await asyncio.to_thread(self._prepare, c, bundle, inst.user)
            env = files.process_env(c.config.hostname, inst.tty, home, c.config.env, inst.env)
            # the container's capabilities, no_new_privs and --group-add apply to its execs too
            session = await live.handle.exec(
                inst.id, args=inst.args, env=env, cwd=inst.working_dir or c.config.working_dir or "/",
                uid=uid, gid=gid, additional_gids=list(groups) + [g for g in sec["extra_gids"] if g not in groups],
                tty=inst.tty, open_stdin=inst.open_stdin,
                console_size=console_size or inst.console_size, privileged=inst.privileged or c.host_config.privileged,
                capabilities=sec["capabilities"], no_new_privileges=sec["no_new_privileges"],
            )
        except Exception:
            inst.exit_code = 126   # dockerd: any exec that fails to start exits 126
            self._exited_now(inst)
            self._drop_from_container(inst)
            inst.done.set()
            raise
        inst.pid = getattr(session, "pid", 0)
        inst.session = session
        self.containers.records.emit(c, "exec_start: " + _event_command(inst.args), execID=inst.id)

        if detach:
            asyncio.get_running_loop().create_task(self.complete(inst))
        return session

    def _prepare(self, c: Any, bundle: Path, user: str) -> tuple[int, int, list[int], str, dict[str, Any]]:
        """User lookup in the rootfs and the container's security options (one thread hop)."""
        uid, gid, groups, home = self.containers.resolve_user_in(bundle / "rootfs", user)
        return uid, gid, list(groups), home, _exec_security(c, bundle / "rootfs")

    async def complete(self, inst: ExecInstance) -> None:
        """Collect the exit status (after the output has been read: wait() drains it)."""
        if inst.done.is_set():
            return
        try:
            status = await inst.session.wait()
            inst.exit_code = status.exit_code
        except Exception:  # noqa: BLE001
            inst.exit_code = inst.exit_code if inst.exit_code is not None else 126
        self._exited_now(inst)
        # like dockerd: the container lists only execs that have not exited
        self._drop_from_container(inst)
        inst.done.set()
        cc = self.containers.records.find(inst.container_id)
        if cc is not None:
            self.containers.records.emit(cc, "exec_die", execID=inst.id, exitCode=str(inst.exit_code))

    def note_detached(self, inst: ExecInstance) -> None:
        """The client detached from a running exec: dockerd records an `exec_detach` event."""
        self.containers.records.emit(self.containers.get(inst.container_id), "exec_detach", execID=inst.id)

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        inst = self.get(exec_id)
        if inst.session is None or not inst.running:
            raise Conflict(f"Exec {exec_id} is not running")
        await inst.session.resize(height, width)


def _exec_security(c: Any, rootfs: Path) -> dict[str, Any]:
    from ..oci import hostopts

    group_text = ""
    if c.host_config.group_add:
        try:
            group_text = _read_group_file(rootfs)
        except OSError:
            pass
    return hostopts.exec_options(c.host_config, group_text)


def _read_group_file(rootfs: Path) -> str:
    from .bundle import read_in_root

    return read_in_root(rootfs, "etc/group")


def _event_command(cmd: list[str]) -> str:
    """dockerd writes the entrypoint, a space, then the arguments: `true` gives "true "."""
    return (cmd[0] if cmd else "") + " " + " ".join(cmd[1:])
