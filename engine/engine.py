"""The composition root: builds every engine service, in order, from one Config."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from . import timeutil
from .build.backend import EngineBackend as BuildEngineBackend
from .build.service import BuildService
from .config import Config
from .containers import names as container_names
from .containers.archive import ContainerArchive
from .containers.commit import Committer
from .containers.contents import ContainerContents
from .containers.exec import ExecService
from .containers.health import HealthMonitors
from .containers.hostaccess import resolve_user
from .containers.prune import ContainerPruner
from .containers.service import ContainerService
from .content.store import ContentStore
from .errors import InvalidParameter, NotFound
from .events import filters as event_filters
from .events.bus import Event, EventBus
from .images import reference
from .images.service import ImageService
from .images.store import ImageStore
from .logs import drivers as log_drivers
from .logs.reader import read_logs
from .network.contributor import NetworkContributor
from .network.firewall import firewall_for
from .network.service import NetworkService
from .oci.spec import SpecInput, build_spec
from .plugins import DEFAULT_RUNTIME, NATIVE_RUNTIME_PATH, Plugins
from .registry.client import RegistryConfig
from .registry.service import RegistryService
from .runtime.api import RuntimeExecutor
from .runtime.client import ShimRuntime
from .runtime.linux import malloc_trim
from .snapshots import make_snapshotter
from .snapshots.mount import is_mounted
from .state import Database
from .system import HostFacts, daemon_id, host_facts, source_commit
from .types import Container
from .volumes.contributor import VolumeMounts
from .volumes.service import VolumeService

log = logging.getLogger(__name__)


class Events:
    """The engine's event bus, with the one helper every service uses to publish."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._listeners = 0

    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.bus.publish(Event(type=type_, action=action, actor_id=actor_id,
                               attributes=dict(attributes), scope="local", time_nano=timeutil.now_ns()))

    async def subscribe(self, since_ns: int | None, until_ns: int | None,
                        predicate: Callable[[Event], bool]) -> AsyncIterator[Event]:
        self._listeners += 1
        try:
            async for ev in self.bus.subscribe(since_ns, until_ns, predicate):
                yield ev
        finally:
            self._listeners -= 1

    def listener_count(self) -> int:
        return self._listeners


TRIM_DELAY = 0.5  # seconds without a container removal before memory is given back


async def _trim_after_removals(bus: EventBus) -> None:
    """When containers have been removed (and none for TRIM_DELAY): collect, and return
    the C heap's free pages to the kernel.  A burst of removals otherwise leaves the
    daemon holding the memory its containers' records, streams and logs used."""
    loop = asyncio.get_running_loop()
    pending: asyncio.TimerHandle | None = None

    def trim() -> None:
        gc.collect()
        malloc_trim()

    async for _ev in bus.subscribe(None, None, lambda e: e.type == "container" and e.action == "destroy"):
        if pending is not None:
            pending.cancel()
        pending = loop.call_later(TRIM_DELAY, trim)


class Engine:
    def __init__(self, config: Config, *, runtime: RuntimeExecutor | None = None) -> None:
        """``runtime``: the container runtime (default: a shim per container); tests pass
        ``engine.testing.runtime.FakeRuntime``."""
        self.config = config
        self.facts: HostFacts = host_facts()
        self.build_time = timeutil.format_ns(int(os.path.getmtime(__file__) * 1e9))
        self.git_commit = source_commit(Path(__file__).resolve().parents[1])
        for path in (config.data_root, config.exec_root, config.containers_root, config.tmp_root,
                     config.bundles_root):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_root, 0o710)
        # Scratch files of an interrupted upload or save are never needed again.
        for leftover in config.tmp_root.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self.id = daemon_id(config.data_root)
        self.db = Database(config.db_path)
        self.content = ContentStore(config.content_root, config.tmp_root)
        self.snapshotter = make_snapshotter(config.storage_driver, config.snapshots_root, self.db)
        self.images = ImageStore(self.db, self.content, self.snapshotter, config.tmp_root)
        self.events = Events(EventBus())
        self.registry = RegistryService(self.images, self.db, RegistryConfig(
            config.insecure_registries, config.registry_mirrors, config.registry_certs_dir), self.events)
        self.runtime: RuntimeExecutor = runtime if runtime is not None else ShimRuntime(config.python,
                                                                                        config.exec_root)
        self.trimmer: asyncio.Task[None] | None = None
        if isinstance(self.runtime, ShimRuntime):
            # The shim parent starts in the background; the first container start waits for it.
            threading.Thread(target=self.runtime.warm, name="shim-parent-start", daemon=True).start()
        # What /info lists and what create accepts: the drivers whose code runs here.
        self.plugins = Plugins()
        self.plugins.register_runtime(DEFAULT_RUNTIME, NATIVE_RUNTIME_PATH)
        for log_driver in log_drivers.LISTED:     # engine/logs/drivers ("none" is not listed, as in dockerd)
            self.plugins.register_log_driver(log_driver)
        for driver in ("bridge", "host", "null"):     # engine/network
            self.plugins.register_network_driver(driver)
        self.volumes = VolumeService.local(self.db, config.data_root / "volumes", self.events)
        self.plugins.register_volume_driver("local")
        self.containers = ContainerService(
            config,
            self.db,
            _RootfsImages(self.images, self.snapshotter),
            self.runtime,
            self.events,
            build_spec=build_spec,
            spec_input=SpecInput,
            resolve_user=resolve_user,
            generate_name=container_names.generate_name,
            validate_name=container_names.validate_name,
            check_runtime=self.plugins.check_runtime,
        )

        # Volumes, binds and tmpfs of containers (engine/volumes/contributor.py)
        self.volume_mounts = VolumeMounts(self.volumes, self.containers.get,
                                          str(config.exec_root / "volume-subpaths"))
        self.containers.add_contributor(self.volume_mounts)
        # --- networking
        self.networks = NetworkService(
            config, self.db, lambda action, nid, attrs: self.events.publish_action("network", action, nid, attrs),
            firewall_for(config))
        self.networks.open_sync()
        self.network_contributor = NetworkContributor(self.networks, self.containers.get,
                                                      self.containers.is_running)
        self.containers.add_contributor(self.network_contributor)

        self.archive = ContainerArchive(self.containers, self.volume_mounts.mounts_of, self.snapshotter.mounts,
                                        config.python, config.bundles_root, self.events, self.volumes)

        self.execs = ExecService(self.containers)
        # Healthchecks run as execs; the container service tells the monitors about starts/exits.
        self.containers.health = HealthMonitors(self.containers, self.execs)
        self.container_pruner = ContainerPruner(self.containers, self.snapshotter.usage)
        self.container_contents = ContainerContents(
            self.containers, Committer(self.containers, self.images, self.snapshotter, self.events), self.events,
            config.bundles_root)
        self.image_service = ImageService(self.images, self.events, self.containers.users_of_image,
                                          config.tmp_root, self.snapshotter.describe, config.storage_driver)
        # The classic builder: images and containers reached through its own narrow backend.
        self.build_backend = BuildEngineBackend(self.images, self.snapshotter, self.containers, self.registry,
                                                self.events, config.exec_root / "build")
        self.builds = BuildService(self.build_backend, config.tmp_root)

    @classmethod
    async def open(cls, config: Config, *, runtime: RuntimeExecutor | None = None) -> Engine:
        engine = await asyncio.to_thread(lambda: cls(config, runtime=runtime))
        engine.trimmer = asyncio.get_running_loop().create_task(_trim_after_removals(engine.events.bus))
        await engine.containers.restore()
        known = {c.id for c in engine.containers.list()}
        await engine.volume_mounts.settle(known.__contains__)
        await asyncio.to_thread(engine.build_backend.recover)
        # What an ingest (load, pull, import, commit) killed half-way left: nothing runs yet.
        freed = await asyncio.to_thread(engine.images.collect_garbage,
                                        [c.id for c in engine.containers.list()])
        if freed:
            log.info("garbage collection at start freed %d bytes", freed)
        return engine

    async def aclose(self) -> None:
        if self.trimmer is not None:
            self.trimmer.cancel()
        if not self.config.live_restore:
            await self.containers.stop_all()    # --live-restore=false: dockerd's shutdown stops them
        anything_running = any(c.state.running for c in self.containers.list())
        await self.containers.close()
        await self.networks.ports.close()
        await asyncio.to_thread(self.archive.close)   # the docker cp fork server
        await self.network_contributor.dns.close()
        if isinstance(self.runtime, ShimRuntime):
            await asyncio.to_thread(self.runtime.close)
        try:
            await asyncio.to_thread(self.networks.shutdown_sync, anything_running=anything_running)
        except Exception:   # a failed cleanup must not block the shutdown
            log.exception("removing the bridges and rules of a stopped daemon")
        await asyncio.to_thread(self.db.close)

    # ----------------------------------------------------------- for the API
    def driver_status(self) -> list[list[str]]:
        if self.config.storage_driver == "overlay2":
            return [["Backing Filesystem", _backing_fs(self.config.data_root)],
                    ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
                    ["userxattr", "false"]]
        return []

    def warnings(self) -> list[str]:
        out = []
        if self.facts.cgroup_version == "1":
            out.append("WARNING: pydockerd runs on cgroup v1; cgroup v2 is recommended")
        return out

    def event_filter(self, flt: dict[str, list[str]]) -> Callable[[Event], bool]:
        return event_filters.build_predicate(flt)

    def image_matches(self, c: Container, ref: str) -> bool:
        try:
            image = self.images.get(ref)
        except (NotFound, InvalidParameter):
            return False
        return image.id == c.image_id

    def image_display_name(self, c: Container) -> str:
        """`docker ps`'s IMAGE column: the name given at create while it still names
        the container's image, else the image id."""
        try:
            if self.images.get(c.config.image).id == c.image_id:
                return c.config.image
        except (NotFound, InvalidParameter):
            pass
        return c.image_id

    def image_filter(self, flt: dict[str, list[str]]) -> Callable[[Any], bool]:
        return self.images.filter_predicate(flt)

    def graph_driver(self, c: Container) -> dict[str, Any]:
        try:
            data = self.snapshotter.describe(c.id)
        except Exception:  # noqa: BLE001
            data = None
        return {"Data": data, "Name": self.config.storage_driver}

    def image_graph_driver(self, image: Any) -> dict[str, Any]:
        try:
            data = self.snapshotter.describe(image.top_chain_id) if image.top_chain_id else None
        except Exception:  # noqa: BLE001
            data = None
        return {"Data": data, "Name": self.config.storage_driver}

    def container_rw_usage(self, container_id: str) -> int:
        """Blocking: the bytes of a container's writable layer (`SizeRw`)."""
        usage: int = self.snapshotter.usage(container_id)
        return usage

    async def container_size(self, c: Container) -> tuple[int, int]:
        def sizes() -> tuple[int, int]:
            rw = self.snapshotter.usage(c.id)
            try:
                image_size = self.images.get(c.image_id).size
            except NotFound:
                image_size = 0
            return rw, rw + image_size

        return await asyncio.to_thread(sizes)

    def read_logs(self, c: Container, *, since_ns: int | None, until_ns: int | None, tail: int | None,
                  follow: bool, stopped: asyncio.Event | None) -> AsyncIterator[Any]:
        log_drivers.check_readable(c.host_config.log_config.type, c.host_config.log_config.config)
        if stopped is None:
            stopped = asyncio.Event()
            stopped.set()
        return read_logs(Path(c.log_path), since_ns=since_ns, until_ns=until_ns, tail=tail,
                         follow=follow, stopped=stopped)


class _RootfsImages:
    """The slice of the image store and snapshotter the container service uses."""

    def __init__(self, images: ImageStore, snapshotter: Any) -> None:
        self._images = images
        self._snapshotter = snapshotter

    def get(self, ref: str) -> Any:
        return self._images.get(ref)

    def prepare_rootfs(self, key: str, image_id: str) -> None:
        self._images.prepare_rootfs(key, image_id)

    def remove_rootfs(self, key: str) -> None:
        self._images.remove_rootfs(key)

    def mount_rootfs(self, key: str, target: Path) -> None:
        # Never stack a mount on a mounted target (a crash mid-start can leave one).
        self.unmount_rootfs(key, target)
        self._snapshotter.mount_all(self._snapshotter.mounts(key), str(target))

    def unmount_rootfs(self, key: str, target: Path) -> None:
        # By the mount table too: a bind mount (vfs) is invisible to os.path.ismount.
        # Every mount stacked there goes (an older daemon could stack them).
        for _ in range(64):
            if not (os.path.ismount(target) or is_mounted(str(target))):
                return
            self._snapshotter.unmount(str(target))


def _backing_fs(path: Path) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) >= len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


_ = reference
