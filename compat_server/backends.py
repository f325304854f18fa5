"""What each route module needs from the engine: one narrow Protocol per module (moby's router
backends). A route reaches a behaviour in two hops: route -> the engine service behind its backend.

The engine implements these structurally; `_engine_serves_every_route` below makes mypy check
the real Engine against each of them, while tests can hand the app a fake with only what they use.
Methods documented as blocking are run by the routes in a thread.
"""
from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from engine.containers.commit import CommitOptions
    from engine.containers.rwlayer import Change
    from engine.containers.top import ProcessList
    from engine.images.filters import Listed
    from engine.images.prune import PruneReport
    from engine.images.reference import Reference
    from engine.images.service import HistoryEntry, Reader
    from engine.images.store import Image
    from engine.registry.auth import AuthConfig
    from engine.registry.service import SearchResult

Progress = Callable[[dict[str, Any]], None]


class ImagesBackend(Protocol):
    """routes/images.py: the image verbs (engine.images.service.ImageService)."""

    def get(self, ref: str) -> Image: ...
    def list_filtered(self, flt: dict[str, list[str]], *, all_: bool, shared_size: bool,
                      count_containers: bool) -> list[Listed]: ...
    def graph_driver(self, image: Image) -> dict[str, Any]: ...
    def history(self, ref: str) -> list[HistoryEntry]: ...
    async def import_upload(self, upload: AsyncIterator[bytes], *, repo_tag: str | None,
                            changes: list[str], message: str) -> str: ...
    def load(self, archive: Reader, *, progress: Progress, quiet: bool) -> list[str]: ...
    def tag(self, source: str, repo: str, tag: str) -> None: ...
    def remove(self, name: str, *, force: bool, noprune: bool) -> list[dict[str, str]]: ...
    def prune(self, flt: dict[str, list[str]]) -> PruneReport: ...
    def images_to_save(self, names: list[str]) -> list[str]: ...
    def save(self, names: list[str], fileobj: BinaryIO) -> None: ...
    def saved(self, image_ids: list[str]) -> None: ...


class DistributionBackend(Protocol):
    """routes/distribution.py: the registry (engine.registry.service.RegistryService). All blocking."""

    def pull(self, ref: Reference, auth: AuthConfig, emit: Progress, platform: str = "") -> list[str]: ...
    def push(self, name: str, tag: str, auth: AuthConfig, emit: Progress) -> None: ...
    def login(self, auth: AuthConfig) -> str: ...
    def inspect_distribution(self, name: str, auth: AuthConfig) -> dict[str, Any]: ...
    def search(self, term: str, limit: int, flt: dict[str, list[str]]) -> list[SearchResult]: ...


class ContainerContentsBackend(Protocol):
    """routes/container_extra.py: top, diff, export, commit (engine.containers.contents)."""

    async def top(self, ref: str, ps_args: str | None) -> ProcessList: ...
    async def changes(self, ref: str) -> list[Change]: ...
    def export(self, ref: str) -> AsyncGenerator[bytes, None]: ...
    async def commit(self, container: str, opts: CommitOptions) -> str: ...


if TYPE_CHECKING:
    from engine.engine import Engine

    def _engine_serves_every_route(engine: Engine) -> None:
        images: ImagesBackend = engine.image_service
        registry: DistributionBackend = engine.registry
        contents: ContainerContentsBackend = engine.container_contents
        del images, registry, contents
