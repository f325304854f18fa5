"""The create step: validate the request, merge it with the image config, reserve the name,
prepare the rootfs and files, save the record (part of ContainerService).
"""
from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..aiotools import run_to_completion
from ..errors import (
    EngineError,
    InvalidParameter,
    NotFound,
)
from ..logs import drivers as log_drivers
from ..oci import hostopts
from ..types import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
)
from . import files, hostaccess, resources
from . import health as health_checks
from .base import ServiceBase
from .restart import POLICIES, validate_policy

log = logging.getLogger(__name__)


class CreateStep(ServiceBase):
    """docker create, and the files a container has for its whole life."""

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
