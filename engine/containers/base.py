"""What the parts of ContainerService share: its state (set in service.py's __init__) and the
steps one part calls in another.  The parts are create.py (the create step), bundle.py (from a
created container to a running shim), monitor.py (exit, restart policy, auto-remove, restore)
and service.py (the verbs); records.py holds the index, names, locks, rows and events."""
from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..events.api import EventPublisher
from ..images.api import RootfsImages
from ..oci import hostopts
from ..runtime.api import RuntimeExecutor
from ..state import Database
from ..types import Container
from .attach import ContainerAttach
from .contributors import Contributors
from .records import ContainerRecords, LiveRun
from .restart import RestartManager


class ServiceBase:
    config: Config
    db: Database
    images: RootfsImages
    runtime: RuntimeExecutor
    events: EventPublisher
    records: ContainerRecords
    contributors: Contributors
    health: Any
    _build_spec: Callable[..., dict[str, Any]]
    _spec_input: Callable[..., Any]
    _resolve_user: Callable[..., Any]
    _generate_name: Callable[..., str]
    _validate_name: Callable[[str], str]
    _check_runtime: Callable[[str], None]
    _containers: dict[str, Container]
    _names: dict[str, str]
    _locks: dict[str, asyncio.Lock]
    _live: dict[str, LiveRun]
    _deleted: dict[str, None]
    _pending_attach: dict[str, builtins.list[ContainerAttach]]
    _exit_waiters: dict[str, builtins.list[asyncio.Future[Container]]]
    _remove_waiters: dict[str, builtins.list[asyncio.Future[Container]]]
    _restart: dict[str, RestartManager]
    _restart_tasks: dict[str, asyncio.Task[None]]
    _manual_restart: set[str]

    if TYPE_CHECKING:
        # Implemented by the parts (see the module docstring); declared for the type checker.
        def get(self, ref: str) -> Container: ...
        def list(self) -> builtins.list[Container]: ...
        def _lock(self, cid: str) -> asyncio.Lock: ...
        async def _save(self, c: Container) -> None: ...
        def _emit(self, c: Container, action: str, **extra: str) -> None: ...
        def _reserve_name(self, name: str, cid: str) -> None: ...
        def _release_name(self, name: str | None, cid: str) -> None: ...
        async def start(self, ref: str) -> None: ...
        async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None: ...
        async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None: ...
        def _destroy_files(self, c: Container) -> None: ...
        async def _start_locked(self, c: Container) -> None: ...
        def _resolve(self, rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...], str]: ...
        def _cgroups_path(self, c: Container) -> str: ...
        def _peer(self, ref: str) -> hostopts.Peer: ...
        def _restart_manager(self, c: Container) -> RestartManager: ...
        def _reset_restart_manager(self, c: Container) -> None: ...
        async def _settle_restart(self, cid: str) -> None: ...
        async def _monitor(self, cid: str, live: LiveRun) -> None: ...
        def _cleanup_run(self, c: Container) -> None: ...
        async def _after_exit(self, c: Container) -> None: ...
