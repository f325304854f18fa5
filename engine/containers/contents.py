"""What is inside a container, as the API asks for it: its processes (`top`), its changed files
(`diff`), its filesystem as a tar (`export`) and a new image from it (`commit`), with the events
dockerd publishes for them. The routes beyond the lifecycle call this and nothing else.
"""
from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Protocol

from ..errors import InvalidParameter
from ..images.store import ImageStore
from ..types import Container
from .commit import CommitOptions, Committer
from .export import export_container
from .rwlayer import Change
from .top import ProcessList, run_top


class ContainerRecords(Protocol):
    """The slice of the container service used here."""

    images: Any  # the rootfs view of the image store that export mounts through

    def get(self, ref: str) -> Container: ...
    def runtime_handle(self, c: Container) -> Any: ...


class EventPublisher(Protocol):
    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None: ...


class ContainerContents:
    def __init__(self, containers: ContainerRecords, committer: Committer, events: EventPublisher,
                 bundles_root: Path) -> None:
        self._containers = containers
        self._committer = committer
        self._events = events
        self._bundles_root = bundles_root

    async def top(self, ref: str, ps_args: str | None) -> ProcessList:
        c = self._containers.get(ref)
        pids: builtins.list[int] = []
        handle = self._containers.runtime_handle(c) if c.state.running else None
        if handle is not None:
            pids = await handle.pids()
        return await run_top(c.id, c.state.running, pids, ps_args)

    async def changes(self, ref: str) -> builtins.list[Change]:
        c = self._containers.get(ref)
        return await asyncio.to_thread(lambda: self._committer.rw_layer(c).changes())

    def export(self, ref: str) -> AsyncGenerator[bytes, None]:
        """The tar stream of the container's filesystem; the "export" event goes out as it starts.
        Whoever iterates it must `aclose()` it (a client gone mid-way leaves nothing mounted)."""
        c = self._containers.get(ref)
        stream = export_container(self._containers, self._containers.images, c, self._bundles_root)
        self._events.publish_action("container", "export", c.id,
                                    {"image": c.config.image, "name": c.name, **c.config.labels})
        return stream

    async def commit(self, container: str, opts: CommitOptions) -> str:
        """`docker commit`; the new image's ID. The reference is checked before the container name."""
        ref = ImageStore.parse_tag(opts.repo, opts.tag) if opts.repo else None
        if not container:
            raise InvalidParameter('invalid name or ID supplied: ""')
        return await self._committer.commit(container, ref, opts)
