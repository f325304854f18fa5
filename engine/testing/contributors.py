"""A start contributor that records what the container service asks of it.

Use it to check the seam's promises (contributors.py): what is called when,
in which order, and that a plan's mounts, env, hosts lines, resolv.conf and
hostname reach the container's files and spec."""
from __future__ import annotations

from collections.abc import Callable

from ..containers.contributors import BaseContributor, StartPlan
from ..errors import EngineError
from ..types import Container


class RecordingContributor(BaseContributor):
    def __init__(self, name: str = "recording", *, log: list[tuple[str, str, str]] | None = None,
                 edit_plan: Callable[[StartPlan], None] | None = None) -> None:
        self.name = name
        self.log: list[tuple[str, str, str]] = log if log is not None else []   # (contributor, call, id)
        self.edit_plan = edit_plan
        self.fail_created: EngineError | None = None
        self.fail_prepare: EngineError | None = None
        self.prepared: set[str] = set()      # containers prepared and not released yet
        self.plans: list[StartPlan] = []

    def _note(self, call: str, c: Container) -> None:
        self.log.append((self.name, call, c.id))

    def calls(self, container_id: str) -> list[str]:
        return [call for name, call, cid in self.log if name == self.name and cid == container_id]

    async def created(self, c: Container) -> None:
        self._note("created", c)
        if self.fail_created is not None:
            raise self.fail_created

    async def prepare(self, plan: StartPlan) -> None:
        self._note("prepare", plan.container)
        if self.fail_prepare is not None:
            raise self.fail_prepare
        self.prepared.add(plan.container.id)
        self.plans.append(plan)
        if self.edit_plan is not None:
            self.edit_plan(plan)

    async def release(self, c: Container) -> None:
        self._note("release", c)
        self.prepared.discard(c.id)

    async def removed(self, c: Container, *, volumes: bool) -> None:
        self._note("removed-volumes" if volumes else "removed", c)

    async def restore(self, c: Container, *, running: bool) -> None:
        self._note("restore-running" if running else "restore-stopped", c)
        if not running:
            self.prepared.discard(c.id)
