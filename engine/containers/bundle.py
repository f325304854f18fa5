"""The bundle step of a start: the rootfs mounted, the start contributors' plan, the container
files and the OCI spec written, the shim started (part of ContainerService).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal as _signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..errors import (
    EngineError,
)
from ..logs import drivers as log_drivers
from ..logs.tag import container_attrs
from ..oci import hostopts
from ..types import (
    RUNNING,
    Container,
    ContainerState,
)
from . import files, hostaccess, resources
from .base import ServiceBase
from .contributors import StartPlan
from .records import LiveRun as _Live

log = logging.getLogger(__name__)


class BundleStep(ServiceBase):
    """From a created container to a running shim; undone when it fails."""

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
            group_text = read_in_root(rootfs, "etc/group") if c.host_config.group_add else ""
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
            for line in read_in_root(rootfs, "etc/passwd").splitlines():
                parts = line.split(":")
                if len(parts) >= 6 and parts[2].isdigit() and int(parts[2]) == uid:
                    home = parts[5] or "/"
                    break
        except OSError:
            pass
        return uid, gid, tuple(groups), home

    def _cgroups_path(self, c: Container) -> str:
        return f"/{self.config.cgroup_parent}/{c.id}"


def read_in_root(rootfs: Path, rel: str) -> str:
    """Read a file of the container's rootfs without following symlinks out of it."""
    path = rootfs / rel
    real = os.path.realpath(path)
    if not (real == str(rootfs) or real.startswith(str(rootfs).rstrip("/") + "/")):
        raise OSError("outside rootfs")
    with open(real, encoding="utf-8", errors="replace") as f:
        return f.read()
