"""Exec instances: `docker exec` through the container's shim."""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, NotFound
from ..types import PAUSED
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
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    session: Any = None


class ExecService:
    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self._execs: dict[str, ExecInstance] = {}

    def get(self, exec_id: str) -> ExecInstance:
        inst = self._execs.get(exec_id)
        if inst is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return inst

    def _running_live(self, container_id: str) -> tuple[Any, Any]:
        c = self.containers.get(container_id)
        live = self.containers._live.get(c.id)
        if c.state.status == PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.restarting:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.running or live is None:
            raise Conflict(f"Container {c.id} is not running")
        return c, live

    def create(self, ref: str, *, cmd: list[str], env: list[str], user: str, working_dir: str, tty: bool,
               attach_stdin: bool, attach_stdout: bool, attach_stderr: bool, privileged: bool,
               detach_keys: str = "") -> ExecInstance:
        c, _ = self._running_live(ref)
        inst = ExecInstance(
            id=secrets.token_hex(32), container_id=c.id, args=list(cmd), env=list(env),
            user=user or c.config.user, working_dir=working_dir, tty=tty, open_stdin=attach_stdin,
            open_stdout=attach_stdout, open_stderr=attach_stderr, privileged=privileged, detach_keys=detach_keys,
        )
        self._execs[inst.id] = inst
        ids = c.annotations.setdefault("ExecIDs", [])
        ids.append(inst.id)
        self.containers._emit(c, "exec_create: " + _event_command(cmd), execID=inst.id)
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
        if inst.running or inst.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c, live = self._running_live(inst.container_id)
        rootfs = self.containers.config.bundles_root / c.id / "rootfs"
        uid, gid, groups, home = await asyncio.to_thread(self.containers._resolve, Path(rootfs), inst.user)
        env = [f"PATH={files.DEFAULT_PATH}", f"HOSTNAME={c.config.hostname}"]
        if inst.tty:
            env.append("TERM=xterm")
        env = files.merge_env(env, [e for e in c.config.env if "=" in e])
        env = files.merge_env(env, [e for e in inst.env if "=" in e])
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={home}")
        inst.running = True
        try:
            # the container's capabilities, no_new_privs and --group-add apply to its execs too
            sec = await asyncio.to_thread(_exec_security, c, Path(rootfs))
            session = await live.handle.exec(
                inst.id, args=inst.args, env=env, cwd=inst.working_dir or c.config.working_dir or "/",
                uid=uid, gid=gid, additional_gids=list(groups) + [g for g in sec["extra_gids"] if g not in groups],
                tty=inst.tty, open_stdin=inst.open_stdin,
                console_size=console_size, privileged=inst.privileged or c.host_config.privileged,
                capabilities=sec["capabilities"], no_new_privileges=sec["no_new_privileges"],
            )
        except Exception as err:
            inst.running = False
            inst.exit_code = getattr(err, "exit_code", 126)
            inst.done.set()
            raise
        inst.pid = getattr(session, "pid", 0)
        inst.session = session
        self.containers._emit(c, "exec_start: " + _event_command(inst.args), execID=inst.id)

        if detach:
            asyncio.get_running_loop().create_task(self.complete(inst))
        return session

    async def complete(self, inst: ExecInstance) -> None:
        """Collect the exit status (after the output has been read: wait() drains it)."""
        if inst.done.is_set():
            return
        try:
            status = await inst.session.wait()
            inst.exit_code = status.exit_code
        except Exception:  # noqa: BLE001
            inst.exit_code = inst.exit_code if inst.exit_code is not None else 126
        inst.running = False
        inst.done.set()
        cc = self.containers._containers.get(inst.container_id)
        if cc is not None:
            self.containers._emit(cc, "exec_die", execID=inst.id, exitCode=str(inst.exit_code))

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
    from .service import _read_in_root

    return _read_in_root(rootfs, "etc/group")


def _event_command(cmd: list[str]) -> str:
    """dockerd writes the entrypoint, a space, then the arguments: `true` gives "true "."""
    return (cmd[0] if cmd else "") + " " + " ".join(cmd[1:])
