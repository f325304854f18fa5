"""ContainerService: the container lifecycle state machine.

The service owns every container record (in memory, persisted to SQLite on
each change), drives the runtime through the shim API and tells the event bus
what happened.  Lifecycle operations on one container are serialised by a
per-container lock; different containers never wait for each other.
"""
from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import secrets
import shutil
import signal as _signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..aiotools import run_to_completion
from ..config import Config
from ..errors import (
    Conflict,
    EngineError,
    InvalidParameter,
    NotFound,
    NotModified,
    no_such_container,
)
from ..events.api import EventPublisher
from ..images.api import RootfsImages
from ..logs import drivers as log_drivers
from ..logs.tag import container_attrs
from ..oci import hostopts
from ..plugins import stock_runtimes
from ..runtime.api import RuntimeExecutor
from ..state import Database
from ..types import (
    DEAD,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
    container_from_jsonable,
    to_jsonable,
)
from . import files, hostaccess, ops_resources, resources
from . import health as health_checks
from .attach import ContainerAttach
from .contributors import Contributors, StartContributor, StartPlan
from .restart import POLICIES, RestartManager, should_restart_on_boot, validate_policy
from .signals import parse_signal

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    );
    """,
]

WAIT_NOT_RUNNING = "not-running"
WAIT_NEXT_EXIT = "next-exit"
WAIT_REMOVED = "removed"


class _Live:
    """Runtime-side bookkeeping for a container that has a shim."""

    def __init__(self) -> None:
        self.handle: Any = None                   # runtime ShimHandle
        self.monitor: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()             # set when this run has ended


class ContainerService:
    def __init__(
        self,
        config: Config,
        db: Database,
        images: RootfsImages,
        runtime: RuntimeExecutor,
        events: EventPublisher,
        *,
        build_spec: Callable[..., dict[str, Any]],
        spec_input: Callable[..., Any],
        resolve_user: Callable[..., Any],
        generate_name: Callable[..., str],  # names.generate_name(taken, fallback=...)
        validate_name: Callable[[str], str],
        check_runtime: Callable[[str], None] | None = None,  # the engine's Plugins.check_runtime
    ) -> None:
        self.config = config
        self.db = db
        self.images = images
        self.runtime = runtime
        self.events = events
        self._build_spec = build_spec
        self._spec_input = spec_input
        self._resolve_user = resolve_user
        self._generate_name = generate_name
        self._validate_name = validate_name
        self._check_runtime = check_runtime or stock_runtimes().check_runtime
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._live: dict[str, _Live] = {}
        self._pending_attach: dict[str, list[ContainerAttach]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        # Restart policies (restart.py): one manager per container, the pending back-offs, and
        # the containers being restarted through the API (not auto-removed in between).
        self._restart: dict[str, RestartManager] = {}
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self._manual_restart: set[str] = set()
        # Containers whose row was (or is being) deleted: _save never writes them again.  The
        # most recent ones are enough (a late write comes from a task of that same removal).
        self._deleted: dict[str, None] = {}
        # Set by the engine: healthcheck monitors (health.py), told about starts and exits.
        self.health: Any = None
        # Per-container resources outside the image and runtime (networks, volumes): contributors.py
        self.contributors = Contributors()
        db.migrate("containers", MIGRATIONS)
        for row in db.query_sync("SELECT data FROM containers"):
            c = container_from_jsonable(json.loads(row["data"]))
            self._containers[c.id] = c
            self._names[c.name] = c.id

    def add_contributor(self, contrib: StartContributor) -> None:
        """Register a start contributor (see contributors.py); called by the composition root."""
        self.contributors.add(contrib)

    # ------------------------------------------------------------------ lookup
    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without "/"), or unique id prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref[1:] if ref.startswith("/") else ref
        if name in self._names:
            return self._containers[self._names[name]]
        if ref:
            matches = [cid for cid in self._containers if cid.startswith(ref)]
            if len(matches) == 1:
                return self._containers[matches[0]]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def list(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def is_running(self, c: Container) -> bool:
        return c.state.running

    def users_of_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self._containers.values() if c.image_id == image_id]

    def _lock(self, cid: str) -> asyncio.Lock:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
        return lock

    # For top, commit and export (engine/containers/{top,commit,export}.py).
    def runtime_handle(self, c: Container) -> Any:
        """The running container's ShimHandle, or None."""
        live = self._live.get(c.id)
        return live.handle if live is not None else None

    def lifecycle_lock(self, c: Container) -> asyncio.Lock:
        """The lock start/stop/remove hold for this container."""
        return self._lock(c.id)

    # ------------------------------------------------------------ persistence
    async def _save(self, c: Container) -> None:
        """Persist the container's record; never for a removed container (an exit or a restart
        recorded late must not write a deleted row back).  The check runs inside the write
        transaction, ordered with the removal's DELETE on the database's one writer path."""
        data = json.dumps(to_jsonable(c))

        def _write(conn: Any) -> None:
            if c.id in self._deleted:
                return
            conn.execute(
                "INSERT INTO containers(id, name, data) VALUES(?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                (c.id, c.name, data),
            )

        await self.db.transaction(_write)

    def _emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.config.image, "name": c.name}
        attrs.update(c.config.labels)
        attrs.update(extra)
        self.events.publish_action("container", action, c.id, attrs)

    # ----------------------------------------------------------------- create
    async def create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        *,
        name: str | None,
        annotations: dict[str, Any] | None = None,
    ) -> tuple[Container, builtins.list[str]]:
        """Create a container; returns it and the warnings dockerd would give."""
        self._check_runtime(host_config.runtime)  # dockerd checks the settings before names and images
        cid = self._new_id()
        if name:
            # Checked and taken in one step (no await in between): of parallel creates with one
            # name exactly one gets it, the others a Conflict; the loser's cleanup never drops it.
            name = self._validate_name(name)
            self._reserve_name(name, cid)
        try:
            # A client hanging up does not cut the create short (rootfs prepared, row unsaved).
            return await run_to_completion(self._create(cid, config, host_config, name, annotations))
        finally:
            if cid not in self._containers:
                self._release_name(name, cid)

    def _reserve_name(self, name: str, cid: str) -> None:
        other = self._names.get(name)
        if other is not None and other != cid:
            raise _name_conflict(name, other)
        self._names[name] = cid

    def _release_name(self, name: str | None, cid: str) -> None:
        if name and self._names.get(name) == cid:
            del self._names[name]

    async def _create(self, cid: str, config: ContainerConfig, host_config: HostConfig, name: str | None,
                      annotations: dict[str, Any] | None) -> tuple[Container, builtins.list[str]]:
        if not config.image:
            raise InvalidParameter("config.Image must not be empty")
        health_checks.validate(config.healthcheck)
        image = await asyncio.to_thread(self.images.get, config.image)
        config = self._merge_image_config(config, image)
        entrypoint = list(config.entrypoint or ())
        cmd = list(config.cmd or ())
        argv = entrypoint + cmd
        if not argv:
            raise InvalidParameter("No command specified")
        self._check_host_config(host_config)
        limits, warnings = resources.validate(resources.normalize(host_config.resources), resources.HostLimits.probe())
        host_config = replace(host_config, resources=limits)
        hostopts.check_create(host_config, bool(config.hostname), self._peer)

        log_drivers.validate(host_config.log_config.type, host_config.log_config.config)
        if "\x00" in config.working_dir:
            # dockerd makes the working directory at create; the lstat of a path with a NUL fails
            rootfs = self.config.bundles_root / cid / "rootfs"
            raise EngineError(f"lstat {rootfs}{config.working_dir}: invalid argument")
        if not name:
            name = self._generate_name(lambda n: n in self._names, fallback=cid[:12])
            self._reserve_name(name, cid)
        hostname = config.hostname or cid[:12]
        config = replace(config, hostname=hostname)
        cdir = self.config.containers_root / cid
        c = Container(
            id=cid,
            name=name,
            created=timeutil.now(),
            image_id=image.id,
            config=config,
            host_config=host_config,
            path=argv[0],
            args=tuple(argv[1:]),
            state=ContainerState(),
            log_path=str(log_drivers.log_file(host_config.log_config.type, cdir, cid) or ""),
            hostname_path=str(cdir / "hostname"),
            hosts_path=str(cdir / "hosts"),
            resolv_conf_path=str(cdir / "resolv.conf"),
            driver=self.config.storage_driver,
            annotations=annotations or {},
        )
        contributed = False
        try:
            await asyncio.to_thread(self._create_files, c, image.id)
            await self.contributors.created(c)
            contributed = True
            self._containers[cid] = c
            await self._save(c)
        except BaseException:
            self._containers.pop(cid, None)
            if contributed:
                await self.contributors.removed(c, volumes=True)
            self._release_name(name, cid)
            await asyncio.to_thread(self._destroy_files, c)
            raise
        self._emit(c, "create")
        return c, warnings

    def _new_id(self) -> str:
        while True:
            cid = secrets.token_hex(32)
            # An all-digit short id would read like a number; dockerd avoids them too.
            if not cid[:12].isdigit() and cid not in self._containers:
                return cid

    def _merge_image_config(self, config: ContainerConfig, image: Any) -> ContainerConfig:
        ic: dict[str, Any] = image.config.get("config") or image.config.get("Config") or {}
        if isinstance(image.config, dict) and "Cmd" in image.config:
            ic = image.config
        env = files.merge_env(list(ic.get("Env") or []), list(config.env))
        cmd = config.cmd
        entrypoint = config.entrypoint
        if entrypoint is None:
            entrypoint = tuple(ic.get("Entrypoint") or ()) or None
            if cmd is None or not cmd:
                cmd = tuple(ic.get("Cmd") or ()) or None
        elif not entrypoint:
            entrypoint = None
        labels = dict(ic.get("Labels") or {})
        labels.update(config.labels)
        exposed = tuple(sorted(set(config.exposed_ports) | set((ic.get("ExposedPorts") or {}).keys())))
        volumes = tuple(sorted(set(config.volumes) | set((ic.get("Volumes") or {}).keys())))
        return replace(
            config,
            env=tuple(env),
            cmd=cmd,
            entrypoint=entrypoint,
            working_dir=config.working_dir or ic.get("WorkingDir") or "",
            user=config.user or ic.get("User") or "",
            labels=labels,
            stop_signal=config.stop_signal or ic.get("StopSignal") or None,
            exposed_ports=exposed,
            volumes=volumes,
            on_build=tuple(ic.get("OnBuild") or ()),
            healthcheck=health_checks.merge_with_image(config.healthcheck, ic.get("Healthcheck")),
        )

    def _check_host_config(self, hc: HostConfig) -> None:
        from ..oci.caps import CAPABILITIES, normalize

        for field_name, caps in (("CapAdd", hc.cap_add), ("CapDrop", hc.cap_drop)):
            for cap in caps:
                if normalize(cap) != "CAP_ALL" and normalize(cap) not in CAPABILITIES:
                    raise InvalidParameter(f'invalid {field_name}: unknown capability: "{normalize(cap)}"')
        policy = hc.restart_policy.name
        if policy not in ("", *POLICIES):
            validate_policy(hc.restart_policy)
        if hc.auto_remove and policy not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        validate_policy(hc.restart_policy)

    def _create_files(self, c: Container, image_id: str) -> None:
        cdir = self.config.containers_root / c.id
        cdir.mkdir(parents=True, exist_ok=False)
        if c.log_path:
            Path(c.log_path).parent.mkdir(exist_ok=True)
            Path(c.log_path).touch(mode=0o640)
        self.images.prepare_rootfs(c.id, image_id)

    def _destroy_files(self, c: Container) -> None:
        # The rootfs mount first: removing a snapshot (or the bundle) under a mount that is
        # still there would delete through it and leave the mount behind.
        try:
            self.images.unmount_rootfs(c.id, self.config.bundles_root / c.id / "rootfs")
        except Exception:
            log.exception("unmounting rootfs of %s", c.id)
        try:
            self.images.remove_rootfs(c.id)
        except NotFound:
            pass
        except Exception:  # keep removing what can be removed
            log.exception("removing rootfs of %s", c.id)
        hostaccess.release_shm(str(self.config.containers_root / c.id))
        shutil.rmtree(self.config.containers_root / c.id, ignore_errors=True)
        shutil.rmtree(self.config.bundles_root / c.id, ignore_errors=True)

    # ------------------------------------------------------------------ start
    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if c.state.status == PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified("Container already started")
            if c.state.removal_in_progress or c.state.status in (REMOVING, DEAD):
                raise Conflict("container is marked for removal and cannot be started")
            self._reset_restart_manager(c)
            # A client hanging up does not cut the start short: a shim started for nobody
            # would keep its created container (and cgroup) forever.
            await run_to_completion(self._start_locked(c))

    # --------------------------------------------------------- restart policy
    def _restart_manager(self, c: Container) -> RestartManager:
        rm = self._restart.get(c.id)
        if rm is None:
            rm = self._restart[c.id] = RestartManager(restart_count=c.restart_count)
        return rm

    def _reset_restart_manager(self, c: Container) -> None:
        """A start through the API: a fresh manager, RestartCount back to 0 (dockerd does the same)."""
        old = self._restart.pop(c.id, None)
        if old is not None:
            old.cancel()
        c.restart_count = 0

    def _kill_cancels_restart(self, c: Container, signum: int) -> bool:
        """dockerd: a kill through the API stops restarts when it is SIGKILL, when the container
        has no StopSignal, or when it is the container's StopSignal."""
        if signum == int(_signal.SIGKILL) or not c.config.stop_signal:
            return True
        try:
            return parse_signal(c.config.stop_signal) == signum
        except EngineError:
            return True

    async def _settle_restart(self, cid: str) -> None:
        """Wait for a pending back-off to finish (restarted, or stopped after a cancel)."""
        task = self._restart_tasks.get(cid)
        if task is not None:
            await asyncio.shield(task)

    async def _restart_after(self, c: Container, rm: RestartManager, delay: float) -> None:
        manually_stopped = c.state.has_been_manually_stopped
        try:
            go = await rm.wait(delay)
            if go and c.id in self._containers:
                async with self._lock(c.id):
                    if c.state.restarting and c.id in self._containers:
                        try:
                            await self._start_locked(c)
                            c.state.has_been_manually_stopped = manually_stopped
                        except Exception:  # recorded in State.Error by the start path
                            log.info("restarting %s failed", c.id[:12], exc_info=True)
            if c.state.restarting and c.id in self._containers:
                c.state = replace(c.state, status=EXITED, restarting=False)
                await self._save(c)
                for fut in self._exit_waiters.pop(c.id, []):
                    if not fut.done():
                        fut.set_result(c)
                await self._after_exit(c)
        finally:
            if self._restart_tasks.get(c.id) is asyncio.current_task():
                self._restart_tasks.pop(c.id, None)

    async def _start_locked(self, c: Container) -> None:
        bundle = self.config.bundles_root / c.id
        rootfs = bundle / "rootfs"
        handle = None
        mounted = False
        try:
            await asyncio.to_thread(self._prepare_bundle_dirs, bundle, rootfs)
            await asyncio.to_thread(self.images.mount_rootfs, c.id, rootfs)
            mounted = True
            plan = StartPlan(container=c, bundle=bundle, rootfs=rootfs,
                             container_dir=self.config.containers_root / c.id)
            await self.contributors.prepare(plan)   # released again by _failed_start on an error
            spec = await asyncio.to_thread(self._make_spec, c, rootfs, plan)
            await asyncio.to_thread(
                files.write_atomic, bundle / "config.json", json.dumps(spec).encode()
            )
            log_sink = log_drivers.sink(c.host_config.log_config.type, c.host_config.log_config.config, c.log_path)
            log_attrs = container_attrs(c.host_config.log_config.config, c.config.labels, c.config.env,
                                        container_id=c.id, name=c.name, image_id=c.image_id,
                                        image_name=c.config.image)
            handle = await self.runtime.create(
                c.id,
                bundle,
                log_path=log_sink.path,
                tty=c.config.tty,
                open_stdin=c.config.open_stdin,
                stdin_once=c.config.stdin_once,
                console_size=c.host_config.console_size if any(c.host_config.console_size) else None,
                log_max_size=log_sink.max_size,
                log_max_files=log_sink.max_files,
                log_attrs=log_attrs or None,
            )
        except EngineError as err:
            await self._failed_start(c, err, mounted, bundle)
            raise
        except Exception as err:
            log.exception("start of %s failed", c.id)
            wrapped = EngineError(str(err))
            await self._failed_start(c, wrapped, mounted, bundle)
            raise wrapped from err

        live = _Live()
        live.handle = handle
        self._live[c.id] = live
        for att in self._pending_attach.pop(c.id, []):
            try:
                session = await handle.attach(stdin=att.stdin, stdout=att.stdout, stderr=att.stderr)
                await att.bind(session)
            except Exception:
                log.exception("binding attach of %s", c.id)
                att.end()
        try:
            await handle.start()
        except Exception as err:
            # The shim holds a created container (and its cgroup): end it before giving up.
            log.info("releasing the created container of %s failed: %s", c.id[:12], err)
            await self._abandon_handle(c, live)
            wrapped = err if isinstance(err, EngineError) else EngineError(str(err))
            await self._failed_start(c, wrapped, True, bundle)
            raise wrapped from err
        c.state = ContainerState(
            status=RUNNING,
            pid=handle.pid,
            started_at=timeutil.now(),
            finished_at=c.state.finished_at,
            exit_code=0,
            has_been_started=True,
            health=c.state.health,
        )
        await self._save(c)
        self._emit(c, "start")
        live.monitor = asyncio.create_task(self._monitor(c.id, live))
        if self.health is not None:
            self.health.container_started(c)

    async def _abandon_handle(self, c: Container, live: _Live) -> None:
        """End the shim of a container whose start did not go through."""
        try:
            await live.handle.kill(int(_signal.SIGKILL))
            await asyncio.wait_for(live.handle.wait(), 20)
        except Exception:
            log.debug("ending the shim of %s", c.id[:12], exc_info=True)
        finally:
            await live.handle.close()
        try:
            await self.runtime.cleanup(self.config.bundles_root / c.id, self._cgroups_path(c))
        except Exception:
            log.exception("cleaning up after the shim of %s", c.id)
        if self._live.get(c.id) is live:
            del self._live[c.id]
        live.exited.set()

    def _prepare_bundle_dirs(self, bundle: Path, rootfs: Path) -> None:
        bundle.mkdir(parents=True, exist_ok=True)
        for stale in ("exit.json",):
            try:
                (bundle / stale).unlink()
            except FileNotFoundError:
                pass
        rootfs.mkdir(exist_ok=True)

    async def _failed_start(self, c: Container, err: EngineError, mounted: bool, bundle: Path) -> None:
        """Like dockerd: the container keeps its status, records the error and an
        exit code (127/126 from the runtime, else 128), and is auto-removed."""
        code = getattr(err, "exit_code", None)
        c.state = replace(c.state, error=err.message, exit_code=code if code else 128, pid=0)
        await self._save(c)
        await self.contributors.release(c)
        if mounted:
            try:
                await asyncio.to_thread(self.images.unmount_rootfs, c.id, bundle / "rootfs")
            except Exception:
                log.exception("unmounting rootfs of %s", c.id)
        for att in self._pending_attach.pop(c.id, []):
            att.end()
        # "next-exit" waiters stay pending, as with dockerd: the container never
        # ran, so it has not exited (`docker run` reports the start error itself).
        # We still hold this container's lock: auto-remove once start() has let go.
        asyncio.get_running_loop().create_task(self._after_exit(c))

    def _make_spec(self, c: Container, rootfs: Path, plan: StartPlan) -> dict[str, Any]:
        cfg = c.config
        hostname = plan.hostname if plan.hostname is not None else cfg.hostname
        uid, gid, groups, home = self._resolve(rootfs, cfg.user)
        env = [f"PATH={files.DEFAULT_PATH}", f"HOSTNAME={hostname}"]
        if cfg.tty:
            env.append("TERM=xterm")
        # "NAME" without "=" (from `-e NAME` when the client has no NAME) stays in
        # Config.Env but never reaches the process, as with dockerd.
        env = files.merge_env(env, plan.env)
        env = files.merge_env(env, [e for e in cfg.env if "=" in e])
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={home}")
        cdir = plan.container_dir
        files.write_atomic(cdir / "hostname", (hostname + "\n").encode())
        hosts = files.hosts_content(hostname, cfg.domainname, None, c.host_config.extra_hosts)
        for ip, names in plan.hosts_entries:
            hosts += f"{ip}\t{names}\n"
        for ip in plan.hosts_addresses:
            hosts += f"{ip}\t" + (f"{hostname}.{cfg.domainname} {hostname}" if cfg.domainname else hostname) + "\n"
        files.write_atomic(cdir / "hosts", hosts.encode())
        resolv = plan.resolv_conf
        if resolv is None:
            resolv = files.resolv_conf_content(
                Path("/etc/resolv.conf"),
                c.host_config.dns,
                c.host_config.dns_search,
                c.host_config.dns_options,
            )
        files.write_atomic(cdir / "resolv.conf", resolv.encode())
        mounts: list[tuple[str, str, str, tuple[str, ...]]] = [
            ("/etc/resolv.conf", "bind", str(cdir / "resolv.conf"), ("rbind", "rprivate")),
            ("/etc/hostname", "bind", str(cdir / "hostname"), ("rbind", "rprivate")),
            ("/etc/hosts", "bind", str(cdir / "hosts"), ("rbind", "rprivate")),
        ]
        mounts.extend(plan.mounts)
        # Parents before children (dockerd sorts by the number of path elements): a volume on
        # /etc must not hide the /etc/hosts bind made before it.
        mounts.sort(key=lambda m: len([p for p in m[0].split("/") if p]))
        try:
            group_text = _read_in_root(rootfs, "etc/group") if c.host_config.group_add else ""
        except OSError:
            group_text = ""
        sec = hostopts.spec_options(c.host_config, [c.path, *c.args], self._peer, group_text, str(cdir),
                                    hostaccess.HOST)
        shm_size = hostopts.shareable_shm_size(c.host_config)
        if shm_size is not None:
            hostaccess.mount_shareable_shm(str(cdir), shm_size)
        ns_paths = plan.namespace_overrides()
        if ns_paths:
            # --network etc. from a contributor; the security options' own joins (ipc/pid/uts) win
            sec["ns_overrides"] = tuple({**ns_paths, **dict(sec.get("ns_overrides", ()))}.items())
        if plan.sysctls:
            sec["extra_sysctls"] = {**plan.sysctls, **sec.get("extra_sysctls", {})}
        inp = self._spec_input(
            container_id=c.id,
            hostname=hostname,
            domainname=cfg.domainname,
            rootfs=str(rootfs),
            readonly_rootfs=c.host_config.readonly_rootfs,
            args=sec.pop("args", [c.path, *c.args]),
            env=env,
            cwd=cfg.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=list(groups),
            tty=cfg.tty,
            extra_mounts=mounts,
            cgroups_path=self._cgroups_path(c),
            privileged=c.host_config.privileged,
            cap_add=tuple(c.host_config.cap_add),
            cap_drop=tuple(c.host_config.cap_drop),
            shm_size=c.host_config.shm_size or None,
            resources=resources.with_block_io(c.host_config.resources),
            rlimits=resources.rlimits(c.host_config.resources),
            oom_score_adj=c.host_config.resources.oom_score_adj,
            extra_options=tuple(plan.spec_options),
            **sec,
        )
        return self._build_spec(inp)

    def _peer(self, ref: str) -> hostopts.Peer:
        """A container named in --ipc/--pid container:<ref>."""
        other = self.get(ref)
        return hostopts.Peer(other.id, other.state.pid if other.state.running else 0, other.host_config.ipc_mode,
                             str(self.config.containers_root / other.id))

    def _resolve(self, rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...], str]:
        uid, gid, groups = self._resolve_user(rootfs, user)
        home = "/"
        try:
            for line in _read_in_root(rootfs, "etc/passwd").splitlines():
                parts = line.split(":")
                if len(parts) >= 6 and parts[2].isdigit() and int(parts[2]) == uid:
                    home = parts[5] or "/"
                    break
        except OSError:
            pass
        return uid, gid, tuple(groups), home

    # --------------------------------------------------------------- monitor
    async def _monitor(self, cid: str, live: _Live) -> None:
        try:
            status = await live.handle.wait()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("lost the shim of %s", cid)
            status = self.runtime.read_exit_status(self.config.bundles_root / cid)
            if status is None:
                await self._record_exit(cid, live, 255, timeutil.now(), False, str(err))
                return
        await self._record_exit(
            cid, live, status.exit_code, status.finished_at, status.oom_killed, status.error
        )

    async def _record_exit(
        self, cid: str, live: _Live | None, code: int, finished_at: str, oom: bool, error: str,
        *, apply_policy: bool = True,
    ) -> None:
        """Record the end of a run; then the restart policy decides (a back-off and a restart)
        or the container stays exited (and is auto-removed).  Without `apply_policy` (daemon
        start) only the exit is recorded: restore() decides afterwards."""
        c = self._containers.get(cid)
        if c is None:
            return
        if self.health is not None:
            self.health.container_stopped(cid)
        if live is not None:
            try:
                await live.handle.close()
            except Exception:  # noqa: BLE001
                pass
        run_seconds = max(0.0, time.time() - timeutil.parse_ns(c.state.started_at) / 1e9) \
            if c.state.started_at != timeutil.ZERO_TIME else 0.0
        c.state = replace(
            c.state,
            status=EXITED,
            pid=0,
            exit_code=code,
            finished_at=finished_at or timeutil.now(),
            oom_killed=oom,
            error=error,
            paused=False,
            restarting=False,
        )
        await asyncio.to_thread(self._cleanup_run, c)
        await self.contributors.release(c)
        delay = None
        rm = None
        if apply_policy and not c.state.removal_in_progress:
            rm = self._restart_manager(c)
            # The policy as it is now: `docker update --restart` may have changed it.
            delay = rm.next_delay(c.host_config.restart_policy, code, c.state.has_been_manually_stopped,
                                  run_seconds)
        if delay is not None:
            c.restart_count += 1
            c.state = replace(c.state, status=RESTARTING, restarting=True)
        await self._save(c)
        self._live.pop(cid, None)
        if oom:
            self._emit(c, "oom")
        self._emit(c, "die", exitCode=str(code), execDuration=str(int(run_seconds)))
        if live is not None:
            live.exited.set()   # after `die`: a remove waiting for it sends `destroy` after
        for fut in self._exit_waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(c)
        if delay is not None and rm is not None:
            self._restart_tasks[cid] = asyncio.get_running_loop().create_task(
                self._restart_after(c, rm, delay))
        elif apply_policy and cid not in self._manual_restart:
            await self._after_exit(c)

    def _cleanup_run(self, c: Container) -> None:
        bundle = self.config.bundles_root / c.id
        try:
            self.images.unmount_rootfs(c.id, bundle / "rootfs")
        except Exception:
            log.exception("unmounting rootfs of %s", c.id)
        hostaccess.release_shm(str(self.config.containers_root / c.id))

    async def _after_exit(self, c: Container) -> None:
        if c.host_config.auto_remove and c.id in self._containers and not c.state.removal_in_progress:
            try:
                await self.remove(c.id, force=True, volumes=True)
            except NotFound:
                pass
            except Exception:
                log.exception("auto-removing %s", c.id)

    # -------------------------------------------------------------- stop/kill
    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotModified("Container already stopped")
        live = self._live.get(c.id)
        stop_sig = parse_signal(sig or c.config.stop_signal or "SIGTERM")
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        c.state.has_been_manually_stopped = True
        if self._kill_cancels_restart(c, stop_sig):
            self._restart_manager(c).cancel()
        if c.state.restarting:
            # In back-off: cancelling the restart is the whole stop.
            await self._settle_restart(c.id)
            live = self._live.get(c.id)
            if not c.state.running or live is None:
                self._emit(c, "stop")
                return
        if live is None:
            raise NotModified("Container already stopped")
        try:
            await live.handle.kill(stop_sig)
            self._emit(c, "kill", signal=str(stop_sig))    # dockerd's stop goes through kill
        except Exception:
            log.debug("stop signal to %s failed", c.id, exc_info=True)
        if timeout < 0:
            await live.exited.wait()
        else:
            try:
                await asyncio.wait_for(live.exited.wait(), timeout)
            except TimeoutError:
                try:
                    await live.handle.kill(int(_signal.SIGKILL))
                    self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
                except Exception:
                    log.debug("SIGKILL to %s failed", c.id, exc_info=True)
                await live.exited.wait()
        if c.state.restarting and self._restart_manager(c).canceled:
            # The run ended into a back-off while we waited (its restart is cancelled): return
            # once the container is exited, as from a stop during the back-off.
            await self._settle_restart(c.id)
        self._emit(c, "stop")

    async def kill(self, ref: str, sig: str | None = None) -> None:
        c = self.get(ref)
        signum = parse_signal(sig) if sig else int(_signal.SIGKILL)
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if self._kill_cancels_restart(c, signum):
            self._restart_manager(c).cancel()
        c.state.has_been_manually_stopped = True
        if c.state.restarting:
            # Nothing to signal: the cancelled back-off leaves the container exited.
            if signum == int(_signal.SIGKILL):
                await self._settle_restart(c.id)
            return
        live = self._live.get(c.id)
        if live is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        await live.handle.kill(signum)
        self._emit(c, "kill", signal=str(signum))
        if signum == int(_signal.SIGKILL):
            await live.exited.wait()

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            # A restart is not an exit the user wants acted on: no auto-remove in between.
            self._manual_restart.add(c.id)
            try:
                await self.stop(c.id, timeout, sig)
            finally:
                self._manual_restart.discard(c.id)
        async with self._lock(c.id):
            if not c.state.running:
                self._reset_restart_manager(c)
                await run_to_completion(self._start_locked(c))
        self._emit(c, "restart")

    # ------------------------------------------- pause, update, stats (ops_resources)
    async def pause(self, ref: str) -> None:
        await ops_resources.pause(self, ref)

    async def unpause(self, ref: str) -> None:
        await ops_resources.unpause(self, ref)

    async def update(self, ref: str, patch: dict[str, Any], restart_policy: Any = None,
                     annotate: Any = None) -> builtins.list[str]:
        return await ops_resources.update(self, ref, patch, restart_policy, annotate)

    def stats(self, ref: str, *, stream: bool, one_shot: bool) -> Any:
        return ops_resources.stats(self, ref, stream=stream, one_shot=one_shot)

    # ----------------------------------------------------------------- remove
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        # A client hanging up does not leave a half-removed container behind.
        await run_to_completion(self._remove(ref, force=force, volumes=volumes))

    async def _remove(self, ref: str, *, force: bool, volumes: bool) -> None:
        c = self.get(ref)
        # Like dockerd, the removal is claimed first: a second remove meanwhile gets a 409.
        if c.state.removal_in_progress:
            raise Conflict(f"removal of container {ref} is already in progress")
        if c.state.running and not force:
            raise Conflict(
                f'cannot remove container "/{c.name}": container is running: '
                "stop the container before removing or force remove"
            )
        c.state.removal_in_progress = True
        try:
            if c.state.running:
                self._restart_manager(c).cancel()
                if c.state.restarting:
                    await self._settle_restart(c.id)
            # A run that is ending (or was just killed) is recorded to the end (exit status, `die`)
            # before the container goes: also when its state already reads "exited", the exit
            # recording may still be under way.
            live = self._live.get(c.id)
            if live is not None:
                was_running = c.state.running
                try:
                    await live.handle.kill(int(_signal.SIGKILL))   # nothing to do once it exited
                    if was_running:
                        self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
                except Exception:
                    log.debug("SIGKILL to %s failed", c.id, exc_info=True)
                await live.exited.wait()
            async with self._lock(c.id):
                if c.id not in self._containers:
                    raise no_such_container(ref)
                await asyncio.to_thread(self._destroy_files, c)
                # From here on no write may bring the row back (see _save).
                self._deleted[c.id] = None
                while len(self._deleted) > 4096:
                    del self._deleted[next(iter(self._deleted))]
                await self.db.transaction(
                    lambda conn: conn.execute("DELETE FROM containers WHERE id = ?", (c.id,))
                )
        except BaseException:
            self._deleted.pop(c.id, None)
            c.state.removal_in_progress = False
            raise
        self._containers.pop(c.id, None)
        self._restart.pop(c.id, None)
        if self._names.get(c.name) == c.id:
            self._names.pop(c.name, None)
        for att in self._pending_attach.pop(c.id, []):
            att.end()
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)
        for fut in self._remove_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)
        self._locks.pop(c.id, None)
        await self.contributors.removed(c, volumes=volumes)
        self._emit(c, "destroy")

    # ------------------------------------------------------------------- wait
    async def wait_future(self, ref: str, condition: str) -> asyncio.Future[Container]:
        """Register a wait and return a future of the container at the awaited moment.

        Registration happens before this returns, so a client that waits and then
        starts the container cannot miss a fast exit.
        """
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Container] = loop.create_future()
        if condition in ("", WAIT_NOT_RUNNING):
            if not c.state.running:
                fut.set_result(c)
            else:
                self._exit_waiters.setdefault(c.id, []).append(fut)
        elif condition == WAIT_NEXT_EXIT:
            self._exit_waiters.setdefault(c.id, []).append(fut)
        elif condition == WAIT_REMOVED:
            self._remove_waiters.setdefault(c.id, []).append(fut)
        else:
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        return fut

    def cancel_wait(self, fut: asyncio.Future[Container]) -> None:
        for table in (self._exit_waiters, self._remove_waiters):
            for lst in table.values():
                if fut in lst:
                    lst.remove(fut)
        fut.cancel()

    # ----------------------------------------------------------------- attach
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> ContainerAttach:
        c = self.get(ref)
        if c.state.status == PAUSED:
            raise Conflict("You cannot attach to a paused container, unpause it first")
        if c.state.restarting:
            raise Conflict("You cannot attach to a restarting container, wait until it is running")
        att = ContainerAttach(
            c.id, stdin=stdin and c.config.open_stdin, stdout=stdout, stderr=stderr, tty=c.config.tty
        )
        live = self._live.get(c.id)
        if c.state.running and live is not None:
            session = await live.handle.attach(stdin=att.stdin, stdout=stdout, stderr=stderr)
            await att.bind(session)
        else:
            self._pending_attach.setdefault(c.id, []).append(att)
        self._emit(c, "attach")
        return att

    def note_detached(self, att: ContainerAttach) -> None:
        """The client left an attach with its detach keys: dockerd records a `detach` event."""
        c = self._containers.get(att.container_id)
        if c is not None:
            self._emit(c, "detach")

    def forget_attach(self, att: ContainerAttach) -> None:
        pending = self._pending_attach.get(att.container_id)
        if pending and att in pending:
            pending.remove(att)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        live = self._live.get(c.id)
        if not c.state.running or live is None:
            raise Conflict(f"Container {c.id} is not running")
        await live.handle.resize(height, width)
        self._emit(c, "resize", height=str(height), width=str(width))

    # ------------------------------------------------------------------- logs
    def logs_stopped_event(self, c: Container) -> asyncio.Event:
        live = self._live.get(c.id)
        if live is not None and c.state.running:
            return live.exited
        ev = asyncio.Event()
        ev.set()
        return ev

    # ---------------------------------------------------------------- rename
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        try:
            new_name = self._validate_name("/" + new_name.lstrip("/"))
        except InvalidParameter as err:
            raise InvalidParameter(f"Error when allocating new name: {err.message}") from None
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self._reserve_name(new_name, c.id)   # check and take in one step, as create does
        old = c.name
        c.name = new_name
        try:
            await self._save(c)
        except BaseException:
            c.name = old
            self._release_name(new_name, c.id)
            raise
        self._release_name(old, c.id)
        self._emit(c, "rename", oldName=f"/{old}")

    # ------------------------------------------------------------ reconnect
    async def restore(self) -> None:
        """After a daemon (re)start: settle what containers that are not running left behind
        (first, before anything else), reconnect live shims, settle the rest."""
        for c in self._containers.values():
            if c.state.removal_in_progress:
                c.state.removal_in_progress = False
        await asyncio.gather(*(self._settle_not_running(c) for c in list(self._containers.values())
                               if not c.state.running))
        for c in list(self._containers.values()):
            if not c.state.running:
                continue
            bundle = self.config.bundles_root / c.id
            handle = None
            try:
                handle = await self.runtime.connect(c.id, bundle)
            except Exception:
                log.exception("reconnecting to the shim of %s", c.id)
            if handle is not None:
                live = _Live()
                live.handle = handle
                self._live[c.id] = live
                live.monitor = asyncio.create_task(self._monitor(c.id, live))
                if self.health is not None:
                    self.health.container_started(c, reset=False)
                log.info("reconnected to running container %s", c.id[:12])
                continue
            status = self.runtime.read_exit_status(bundle)
            if status is None:
                try:
                    await self.runtime.cleanup(bundle, self._cgroups_path(c))
                except Exception:
                    log.exception("cleaning up after the shim of %s", c.id)
                await self._record_exit(c.id, None, 255, timeutil.now(), False,
                                        "container's shim is gone and left no exit status",
                                        apply_policy=False)
            else:
                await self._record_exit(c.id, None, status.exit_code, status.finished_at,
                                        status.oom_killed, status.error, apply_policy=False)
        # Networks, volumes...: re-established for live containers, settled for the others.
        for c in list(self._containers.values()):
            await self.contributors.restore(c, running=c.state.running and c.id in self._live)
        await self._apply_policies_on_boot()

    def _cgroups_path(self, c: Container) -> str:
        return f"/{self.config.cgroup_parent}/{c.id}"

    async def _settle_not_running(self, c: Container) -> None:
        """A container the record says is not running (a daemon killed while it started, or
        before it recorded a start): no shim, process, cgroup, rootfs mount or exec dir of
        it may remain.  A shim still waiting to start it is told to end it."""
        bundle = self.config.bundles_root / c.id
        if not await asyncio.to_thread(bundle.exists):
            return
        try:
            handle = await self.runtime.connect(c.id, bundle)
        except Exception:
            log.warning("connecting to the leftover shim of %s", c.id[:12], exc_info=True)
            handle = None
        if handle is not None:
            log.info("ending the shim of %s, which was never recorded as started", c.id[:12])
            try:
                await handle.kill(int(_signal.SIGKILL))
                await asyncio.wait_for(handle.wait(), 20)
            except Exception:
                log.warning("ending the leftover shim of %s", c.id[:12], exc_info=True)
            finally:
                await handle.close()
        try:
            await self.runtime.cleanup(bundle, self._cgroups_path(c))
        except Exception:
            log.exception("cleaning up after the shim of %s", c.id)
        await asyncio.to_thread(self._cleanup_run, c)
        await asyncio.to_thread(shutil.rmtree, bundle, True)

    async def _apply_policies_on_boot(self) -> None:
        """dockerd at start: stopped containers whose restart policy asks for it are started
        (`always` even after a user stop; `unless-stopped` unless the user stopped it;
        `on-failure` after a failure with retries left); other stopped `--rm` containers,
        including ones that exited while the daemon was down, are removed."""
        to_start: list[Container] = []
        to_remove: list[Container] = []
        for c in list(self._containers.values()):
            if c.state.running:
                continue
            if should_restart_on_boot(c.host_config.restart_policy, c.state.exit_code,
                                      c.state.has_been_manually_stopped, c.restart_count,
                                      c.state.has_been_started):
                to_start.append(c)
            elif c.host_config.auto_remove:
                to_remove.append(c)

        async def boot_start(c: Container) -> None:
            try:
                await self.start(c.id)
            except Exception:  # the error is in State.Error; carry on with the rest
                log.warning("restarting %s at daemon start failed", c.id[:12], exc_info=True)

        async def boot_remove(c: Container) -> None:
            try:
                await self.remove(c.id, force=True, volumes=True)
            except Exception:
                log.warning("auto-removing %s at daemon start failed", c.id[:12], exc_info=True)

        await asyncio.gather(*(boot_start(c) for c in to_start), *(boot_remove(c) for c in to_remove))

    async def stop_all(self) -> None:
        """Stop every running container, each with its own stop signal and timeout (a daemon shutdown
        without live restore, as dockerd's)."""
        async def stop_one(c: Container) -> None:
            try:
                await self.stop(c.id)
            except NotModified:
                pass
            except Exception:
                log.warning("stopping %s at daemon shutdown failed", c.id[:12], exc_info=True)

        await asyncio.gather(*(stop_one(c) for c in list(self._containers.values()) if c.state.running))

    async def close(self) -> None:
        """Drop shim connections; containers keep running."""
        if self.health is not None:
            self.health.close()
        for task in list(self._restart_tasks.values()):
            task.cancel()   # the container stays "restarting" on disk; restore() settles it
        self._restart_tasks.clear()
        for live in list(self._live.values()):
            if live.monitor is not None:
                live.monitor.cancel()
            try:
                await live.handle.close()
            except Exception:  # noqa: BLE001
                pass
        self._live.clear()

    # ----------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        running = paused = stopped = 0
        for c in self._containers.values():
            if c.state.status == PAUSED:
                paused += 1
            elif c.state.running:
                running += 1
            else:
                stopped += 1
        return {"total": len(self._containers), "running": running, "paused": paused, "stopped": stopped}


def _name_conflict(name: str, other: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{other}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def _read_in_root(rootfs: Path, rel: str) -> str:
    """Read a file of the container's rootfs without following symlinks out of it."""
    path = rootfs / rel
    real = os.path.realpath(path)
    if not (real == str(rootfs) or real.startswith(str(rootfs).rstrip("/") + "/")):
        raise OSError("outside rootfs")
    with open(real, encoding="utf-8", errors="replace") as f:
        return f.read()
