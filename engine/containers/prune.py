"""`POST /containers/prune`: remove every stopped container the filters select.

dockerd's rules: accepted filters are `until` (one value: a timestamp or a duration ago; containers
created after it are kept), `label` (all given `key` / `key=value` must match) and `label!` (a
container matching all of them is kept).  Running (and restarting, paused) containers are never
touched; a container whose removal fails is skipped.  Each removal emits `destroy`; the prune
itself emits a container `prune` event with the reclaimed bytes (newer Docker).  One prune runs
at a time.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import timeutil
from ..errors import Conflict, InvalidParameter
from ..types import Container

log = logging.getLogger(__name__)

ACCEPTED = ("label", "label!", "until")


@dataclass(frozen=True)
class PruneReport:
    deleted: tuple[str, ...]
    reclaimed: int


def _labels_match(values: list[str], labels: Mapping[str, str]) -> bool:
    """All `key` / `key=value` expressions hold for `labels` (an empty list holds)."""
    for expr in values:
        key, sep, value = expr.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def build_predicate(filters: Mapping[str, list[str]], now_s: float | None = None) -> Callable[[Container], bool]:
    for key in filters:
        if key not in ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")
    until_ns: int | None = None
    untils = filters.get("until") or []
    if len(untils) > 1:
        raise InvalidParameter("more than one until filter specified")
    if untils:
        try:
            until_ns = timeutil.parse_timestamp_arg(untils[0], now_s)
        except ValueError:
            raise InvalidParameter(
                f"failed to parse value as time or duration: {untils[0]!r}".replace("'", '"')
            ) from None
    keep = list(filters.get("label") or [])
    drop = list(filters.get("label!") or [])

    def predicate(c: Container) -> bool:
        if c.state.running:
            return False
        if until_ns is not None and timeutil.parse_ns(c.created) > until_ns:
            return False
        if not _labels_match(keep, c.config.labels):
            return False
        if drop and _labels_match(drop, c.config.labels):
            return False
        return True

    return predicate


class ContainerPruner:
    def __init__(self, containers: Any, rw_size: Callable[[str], int]) -> None:
        self.containers = containers
        self._rw_size = rw_size          # blocking: bytes in the container's writable layer
        self._running = False

    async def prune(self, filters: Mapping[str, list[str]]) -> PruneReport:
        if self._running:
            raise Conflict("a prune operation is already running")
        predicate = build_predicate(filters)
        self._running = True
        try:
            deleted: list[str] = []
            reclaimed = 0
            for c in self.containers.list():
                if not predicate(c):
                    continue
                try:
                    size = await asyncio.to_thread(self._rw_size, c.id)
                except Exception:  # noqa: BLE001 - size is informational
                    size = 0
                try:
                    await self.containers.remove(c.id)
                except Exception as err:  # noqa: BLE001 - dockerd skips what it cannot remove
                    log.warning("failed to prune container %s: %s", c.id[:12], err)
                    continue
                deleted.append(c.id)
                reclaimed += max(0, int(size or 0))
            self.containers.events.publish_action("container", "prune", "", {"reclaimed": str(reclaimed)})
            return PruneReport(tuple(deleted), reclaimed)
        finally:
            self._running = False
