"""Static proof that every implementation satisfies its Protocol: mypy (strict, run on
engine/) checks these assignments; the contract suites in tests/contracts/ check behaviour.
Nothing calls these functions."""
from __future__ import annotations

from ..content.api import ContentStoreAPI, ContentWriter
from ..content.store import ContentStore, Writer
from ..engine import Events, _RootfsImages
from ..events.api import EventBusAPI, EventPublisher
from ..events.bus import EventBus
from ..images.api import ImageCatalog, RootfsImages
from ..images.store import ImageStore
from ..registry.api import RegistryAPI, RepositoryAPI
from ..registry.distribution import HttpRegistry, HttpRepository
from ..runtime.api import ContainerHandle, ExecProcess, RuntimeExecutor, Stream
from ..runtime.client import AttachSession, ExecSession, ShimHandle, ShimRuntime
from .content import FakeContentStore, FakeWriter
from .events import RecordingEventBus
from .images import FakeImageCatalog
from .registry import FakeRegistry, FakeRepository
from .rootfs import FakeRootfsImages
from .runtime import FakeExec, FakeHandle, FakeRuntime, FakeStream


def runtimes(real: ShimRuntime, fake: FakeRuntime) -> tuple[RuntimeExecutor, RuntimeExecutor]:
    return real, fake


def handles(real: ShimHandle, fake: FakeHandle) -> tuple[ContainerHandle, ContainerHandle]:
    return real, fake


def streams(real: AttachSession, fake: FakeStream) -> tuple[Stream, Stream]:
    return real, fake


def execs(real: ExecSession, fake: FakeExec) -> tuple[ExecProcess, ExecProcess]:
    return real, fake


def content(real: ContentStore, fake: FakeContentStore) -> tuple[ContentStoreAPI, ContentStoreAPI]:
    return real, fake


def writers(real: Writer, fake: FakeWriter) -> tuple[ContentWriter, ContentWriter]:
    return real, fake


def buses(real: EventBus, fake: RecordingEventBus) -> tuple[EventBusAPI, EventBusAPI]:
    return real, fake


def publishers(real: Events) -> EventPublisher:
    return real


def catalogs(real: ImageStore, fake: FakeImageCatalog) -> tuple[ImageCatalog, ImageCatalog]:
    return real, fake


def rootfs(real: _RootfsImages, fake: FakeRootfsImages) -> tuple[RootfsImages, RootfsImages]:
    return real, fake


def registries(real: HttpRegistry, fake: FakeRegistry) -> tuple[RegistryAPI, RegistryAPI]:
    return real, fake


def repositories(real: HttpRepository, fake: FakeRepository) -> tuple[RepositoryAPI, RepositoryAPI]:
    return real, fake
