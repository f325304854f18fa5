"""Start contributors: the seam where networking, volumes and other per-container resources plug
into a container's lifecycle without editing the service.

A contributor prepares something before the container's process starts (a network namespace,
mounts, files), releases it when the run ends, and settles it at daemon start.  Setup and
teardown are mirror images: ``release`` is idempotent and safe to call for a container whose
``prepare`` never ran or ran halfway, so a failed start, a stop and a daemon restart all end in
the same clean state.

The service calls contributors in registration order (``release`` in reverse) and builds the
container's files and OCI spec from the :class:`StartPlan` they fill in.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..oci.spec import SpecOption
from ..types import Container

log = logging.getLogger(__name__)

# (destination, type, source, options), as the OCI spec builder takes extra mounts.
ExtraMount = tuple[str, str, str, tuple[str, ...]]


@dataclass
class StartPlan:
    """What one start of a container needs beyond its image and config; built fresh per start."""

    container: Container
    bundle: Path                  # the runtime bundle; the rootfs is mounted at bundle/"rootfs"
    rootfs: Path
    container_dir: Path           # <data-root>/containers/<id>: hostname, hosts, resolv.conf
    mounts: list[ExtraMount] = field(default_factory=list)     # after the default mounts, in order
    env: list[str] = field(default_factory=list)               # before the container's own Env
    # OCI namespace type -> path of a namespace to join; "" = share the host's (no new namespace)
    namespace_paths: dict[str, str] = field(default_factory=dict)
    hosts_addresses: list[str] = field(default_factory=list)   # own IPs: "<ip>\t<hostname>" lines
    hosts_entries: list[tuple[str, str]] = field(default_factory=list)  # (ip, "name alias ...")
    resolv_conf: str | None = None    # full /etc/resolv.conf content; None = the default one
    hostname: str | None = None       # overrides the container's hostname for this run
    sysctls: dict[str, str] = field(default_factory=dict)
    share_host_network: bool = False  # --network host: no private network namespace
    # OCI spec options (engine.oci.spec.with_* or your own), applied after everything else, in order
    spec_options: list[SpecOption] = field(default_factory=list)

    def namespace_overrides(self) -> dict[str, str]:
        out = dict(self.namespace_paths)
        if self.share_host_network:
            out["network"] = ""
        return out


class StartContributor(Protocol):
    """One kind of per-container resource (see the module doc for when each method is called)."""

    name: str

    async def created(self, c: Container) -> None:
        """At create, before the record is saved; raise an EngineError to refuse (undo first)."""

    async def prepare(self, plan: StartPlan) -> None:
        """Each start, after the rootfs is mounted, before the files and the spec are written."""

    async def release(self, c: Container) -> None:
        """The run ended (exit, stop, failed start) or the daemon settles a stopped container."""

    async def removed(self, c: Container, *, volumes: bool) -> None:
        """After the container's record was deleted (``volumes``: ``rm -v`` / ``--rm``)."""

    async def restore(self, c: Container, *, running: bool) -> None:
        """Daemon start: re-establish what lives outside a running container, or settle leftovers."""


class BaseContributor:
    """No-op implementations to subclass; ``restore`` of a stopped container releases."""

    name = "base"

    async def created(self, c: Container) -> None:
        return None

    async def prepare(self, plan: StartPlan) -> None:
        return None

    async def release(self, c: Container) -> None:
        return None

    async def removed(self, c: Container, *, volumes: bool) -> None:
        return None

    async def restore(self, c: Container, *, running: bool) -> None:
        if not running:
            await self.release(c)


class Contributors:
    """The registered contributors, called in order; failures of teardown steps are logged, not raised."""

    def __init__(self) -> None:
        self._items: list[StartContributor] = []

    def add(self, contrib: StartContributor) -> None:
        self._items.append(contrib)

    def __iter__(self) -> Iterator[StartContributor]:
        return iter(self._items)

    async def created(self, c: Container) -> None:
        done: list[StartContributor] = []
        try:
            for contrib in self._items:
                await contrib.created(c)
                done.append(contrib)
        except BaseException:
            for contrib in reversed(done):
                try:
                    await contrib.removed(c, volumes=True)
                except Exception:
                    log.exception("undoing %s of %s after a failed create", contrib.name, c.id[:12])
            raise

    async def prepare(self, plan: StartPlan) -> None:
        """Prepare in order; on a failure everything is released before the error propagates."""
        try:
            for contrib in self._items:
                await contrib.prepare(plan)
        except BaseException:
            await self.release(plan.container)
            raise

    async def release(self, c: Container) -> None:
        for contrib in reversed(self._items):
            try:
                await contrib.release(c)
            except Exception:
                log.exception("releasing %s of %s", contrib.name, c.id[:12])

    async def removed(self, c: Container, *, volumes: bool) -> None:
        for contrib in reversed(self._items):
            try:
                await contrib.removed(c, volumes=volumes)
            except Exception:
                log.exception("removing %s of %s", contrib.name, c.id[:12])

    async def restore(self, c: Container, *, running: bool) -> None:
        for contrib in self._items:
            try:
                await contrib.restore(c, running=running)
            except Exception:
                log.exception("restoring %s of %s", contrib.name, c.id[:12])
