"""The start sequence: bundle, contributors, spec, the runtime's create and start, and the
attaches that wait for the run; a start that fails leaves nothing behind (see _failed_start)."""
from __future__ import annotations

import asyncio
import json
import logging
import signal as _signal
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import timeutil
from ..errors import EngineError
from ..logs import drivers as log_drivers
from ..logs.tag import container_attrs
from ..types import RUNNING, Container, ContainerState
from . import files
from .contributors import StartPlan
from .records import Live

if TYPE_CHECKING:
    from pathlib import Path

    from .service import ContainerService

log = logging.getLogger(__name__)


class Starter:
    def __init__(self, svc: ContainerService) -> None:
        self.svc = svc

    async def start_locked(self, c: Container) -> None:
        bundle = self.svc.config.bundles_root / c.id
        rootfs = bundle / "rootfs"
        handle = None
        mounted = False
        try:
            await asyncio.to_thread(self.svc.bundles.prepare_dirs, bundle, rootfs)
            await asyncio.to_thread(self.svc.images.mount_rootfs, c.id, rootfs)
            mounted = True
            plan = StartPlan(container=c, bundle=bundle, rootfs=rootfs,
                             container_dir=self.svc.config.containers_root / c.id)
            await self.svc.contributors.prepare(plan)   # released again by _failed_start on an error
            spec = await asyncio.to_thread(self.svc.bundles.make_spec, c, rootfs, plan)
            await asyncio.to_thread(
                files.write_atomic, bundle / "config.json", json.dumps(spec).encode()
            )
            log_sink = log_drivers.sink(c.host_config.log_config.type, c.host_config.log_config.config, c.log_path)
            log_attrs = container_attrs(c.host_config.log_config.config, c.config.labels, c.config.env,
                                        container_id=c.id, name=c.name, image_id=c.image_id,
                                        image_name=c.config.image)
            handle = await self.svc.runtime.create(
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

        live = Live()
        live.handle = handle
        self.svc.records.set_live(c.id, live)
        for att in self.svc.records.take_pending_attaches(c.id):
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
        await self.svc.records.save(c)
        self.svc.records.emit(c, "start")
        live.monitor = asyncio.create_task(self.svc.monitor.watch(c.id, live))
        if self.svc.health is not None:
            self.svc.health.container_started(c)

    async def _abandon_handle(self, c: Container, live: Live) -> None:
        """End the shim of a container whose start did not go through."""
        try:
            await live.handle.kill(int(_signal.SIGKILL))
            await asyncio.wait_for(live.handle.wait(), 20)
        except Exception:
            log.debug("ending the shim of %s", c.id[:12], exc_info=True)
        finally:
            await live.handle.close()
        try:
            await self.svc.runtime.cleanup(self.svc.config.bundles_root / c.id, self.svc.bundles.cgroups_path(c))
        except Exception:
            log.exception("cleaning up after the shim of %s", c.id)
        self.svc.records.drop_live(c.id, live)
        live.exited.set()

    async def _failed_start(self, c: Container, err: EngineError, mounted: bool, bundle: Path) -> None:
        """Like dockerd: the container keeps its status, records the error and an
        exit code (127/126 from the runtime, else 128), and is auto-removed."""
        code = getattr(err, "exit_code", None)
        c.state = replace(c.state, error=err.message, exit_code=code if code else 128, pid=0)
        await self.svc.records.save(c)
        await self.svc.contributors.release(c)
        if mounted:
            try:
                await asyncio.to_thread(self.svc.images.unmount_rootfs, c.id, bundle / "rootfs")
            except Exception:
                log.exception("unmounting rootfs of %s", c.id)
        for att in self.svc.records.take_pending_attaches(c.id):
            att.end()
        # "next-exit" waiters stay pending, as with dockerd: the container never
        # ran, so it has not exited (`docker run` reports the start error itself).
        # We still hold this container's lock: auto-remove once start() has let go.
        asyncio.get_running_loop().create_task(self.svc.monitor.after_exit(c))

