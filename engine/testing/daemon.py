"""A container service wired to fakes: the daemon's container half without root or a kernel.

``FakeDaemon`` builds ``ContainerService`` (with its exec service and
healthcheck monitors, as the composition root does) on a real SQLite database
and the real event bus, but with ``FakeRuntime`` and ``FakeRootfsImages``.
Two ``FakeDaemon``s built one after the other on the same directory and the
same runtime are a daemon restart: the second one reads the records the first
one wrote and reconnects to the containers the runtime still runs.

The wiring lives here, in one place, so the tests that use it survive the
container service being reshaped.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config
from ..containers import names as container_names
from ..containers.contributors import StartContributor
from ..containers.exec import ExecService
from ..containers.health import HealthMonitors
from ..containers.hostaccess import resolve_user
from ..containers.service import ContainerService
from ..engine import Events
from ..events.bus import Event, EventBus
from ..oci.spec import SpecInput, build_spec
from ..state import Database
from .rootfs import FakeRootfsImages
from .runtime import FakeRuntime


class FakeDaemon:
    def __init__(self, root: Path, runtime: FakeRuntime | None = None,
                 images: FakeRootfsImages | None = None, contributors: Sequence[StartContributor] = ()) -> None:
        self.config = Config(data_root=root / "data", exec_root=root / "exec", cgroup_parent="pydockerd-fake",
                             storage_driver="vfs")
        for path in (self.config.data_root, self.config.exec_root, self.config.containers_root,
                     self.config.bundles_root, self.config.tmp_root):
            path.mkdir(parents=True, exist_ok=True)
        self.runtime = runtime if runtime is not None else FakeRuntime()
        self.images = images if images is not None else FakeRootfsImages()
        self.db = Database(self.config.db_path)
        self.events = Events(EventBus())
        self.containers = ContainerService(
            self.config, self.db, self.images, self.runtime, self.events,
            build_spec=build_spec, spec_input=SpecInput, resolve_user=resolve_user,
            generate_name=container_names.generate_name, validate_name=container_names.validate_name,
        )
        self.execs = ExecService(self.containers)
        self.containers.health = HealthMonitors(self.containers, self.execs)
        for contrib in contributors:
            self.containers.add_contributor(contrib)

    async def open(self) -> FakeDaemon:
        """What the daemon does at start: reconnect, settle, apply restart policies."""
        await self.containers.restore()
        return self

    async def close(self) -> None:
        """The daemon stops; containers keep running in the runtime."""
        await self.containers.close()
        self.db.close()

    def events_of(self, container_id: str) -> list[Event]:
        return [e for e in self.events.bus.history() if e.actor_id == container_id]

    def actions(self, container_id: str) -> list[str]:
        return [e.action for e in self.events_of(container_id)]
