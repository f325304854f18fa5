"""GET /containers/json: filters, limit, sizes, and the summary encoding.

Kept apart from routes/containers.py so the list path can be tuned on its own.
Speed matters here (clients poll it): everything that costs a database query
(resolving the IMAGE column, ancestor images, image sizes) is done once per
distinct image per request, never once per container.
"""
from __future__ import annotations

import asyncio
from typing import Any

from engine.containers import filters as cfilters
from engine.errors import InvalidParameter, NotFound
from engine.types import Container

from . import convert, netcodec, versions
from .backends import ContainersBackend
from .responses import dumps


def _facts(summary: dict[str, Any], c: Container) -> cfilters.Facts:
    networks = {name: (ep or {}).get("NetworkID") or ""
                for name, ep in ((summary.get("NetworkSettings") or {}).get("Networks") or {}).items()}
    mounts = tuple((m.get("Name") or "", m.get("Source") or "", m.get("Destination") or "")
                   for m in summary.get("Mounts") or [])
    ports = tuple((int(p.get("PrivatePort") or 0), int(p.get("PublicPort") or 0), p.get("Type") or "tcp")
                  for p in summary.get("Ports") or [])
    # managed (a swarm task) stays False: there is no swarm mode
    return cfilters.Facts(networks=networks, mounts=mounts, ports=ports, health=_health(c))


def _health(c: Container) -> str:
    """starting/healthy/unhealthy while a healthcheck runs, else "none" (dockerd's Snapshot.Health)."""
    h = getattr(c.state, "health", None)
    if h is None:
        return "none"
    status = h if isinstance(h, str) else getattr(h, "status", None) or getattr(h, "Status", None)
    return str(status) if status else "none"


class _Images:
    """Per-request memo of the image lookups the list needs."""

    def __init__(self, engine: ContainersBackend) -> None:
        self.engine = engine
        self._display: dict[tuple[str, str], str] = {}
        self._size: dict[str, int] = {}

    def display_name(self, c: Container) -> str:
        key = (c.config.image, c.image_id)
        name = self._display.get(key)
        if name is None:
            name = self._display[key] = self.engine.image_display_name(c)
        return name

    def ancestors(self, ref: str) -> set[str]:
        """The image ``ref`` names and every image built on it (dockerd's ancestor filter)."""
        return self.engine.image_service.family(ref)

    def image_size(self, image_id: str) -> int:
        size = self._size.get(image_id)
        if size is None:
            try:
                size = self.engine.image_service.get(image_id).size
            except (NotFound, InvalidParameter):
                size = 0
            self._size[image_id] = size
        return size


async def list_containers(engine: ContainersBackend, *, show_all: bool, limit: int, size: bool,
                          filters: dict[str, list[str]],
                          version: str = versions.DEFAULT_API_VERSION) -> list[dict[str, Any]]:
    containers = engine.containers.list()       # newest first
    images = _Images(engine)
    plan = cfilters.parse(filters, containers, images.ancestors)
    summaries: dict[str, dict[str, Any]] = {}

    def summary(c: Container) -> dict[str, Any]:
        s = summaries.get(c.id)
        if s is None:
            s = summaries[c.id] = convert.encode_summary(c, images.display_name(c), None,
                                                                  engine.volume_mounts.mounts_of(c))
            netcodec.fill_summary(s, c, engine.networks, version)
        return s

    chosen = cfilters.select(plan, containers, show_all=show_all, limit=limit,
                             facts=lambda c: _facts(summary(c), c))
    out = [summary(c) for c in chosen]
    if size and chosen:
        def sizes() -> list[tuple[int, int]]:
            result = []
            for c in chosen:
                try:
                    rw = engine.container_rw_usage(c.id)
                except (OSError, NotFound):
                    rw = 0   # removed meanwhile
                result.append((rw, rw + images.image_size(c.image_id)))
            return result

        for s, (rw, rootfs) in zip(out, await asyncio.to_thread(sizes), strict=True):
            s["SizeRw"], s["SizeRootFs"] = rw, rootfs
    return out


class EncodedSummaries:
    """JSON bytes of each container's summary, reused while the summary is unchanged.

    The summary dict is rebuilt on every request (so it is never stale); only its
    encoding is cached, checked by dict equality, which is far cheaper than encoding.
    ``Status`` ("Up 5 seconds") changes with the clock, so it is spliced in fresh."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[dict[str, Any], bytes, bytes]] = {}

    def encode(self, summaries: list[dict[str, Any]]) -> bytes:
        parts = []
        for s in summaries:
            rest = {k: v for k, v in s.items() if k != "Status"}
            cached = self._cache.get(s.get("Id", ""))
            if cached is None or cached[0] != rest:
                cached = self._cache[s.get("Id", "")] = (rest, *self._split(s))
            parts.append(cached[1] + dumps(s.get("Status", ""))[:-1] + cached[2])
        if len(self._cache) > 2 * len(summaries) + 64:
            keep = {s.get("Id", "") for s in summaries}
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        return b"[" + b",".join(parts) + b"]\n"

    @staticmethod
    def _split(s: dict[str, Any]) -> tuple[bytes, bytes]:
        """The bytes before and after the Status value, in the summary's key order."""
        keys = list(s)
        i = keys.index("Status") if "Status" in keys else len(keys)
        before = {k: s[k] for k in keys[:i]}
        after = {k: s[k] for k in keys[i + 1:]}
        head = dumps(before)[:-2] + (b"," if before else b"") + b'"Status":'
        tail = (b"," + dumps(after)[1:-1]) if after else b"}"
        return head, tail
