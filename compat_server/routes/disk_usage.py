"""`GET /system/df` (docker system df): images, containers, volumes and build cache, as dockerd
answers API versions before 1.52 (the legacy shape: LayersSize and four lists)."""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import listing, versions
from ..errors import BadRequest
from ..responses import api_version, docker_json
from .images import image_summary
from .volumes import encode_volume

TYPES = ("container", "image", "volume", "build-cache")


async def disk_usage(request: Request) -> Response:
    engine: Any = request.app.state.engine
    version = api_version(request)
    wanted = set(TYPES)
    types = request.query_params.getlist("type")
    if versions.at_least(version, "1.42") and "type" in request.query_params:
        for t in types:
            if t not in TYPES:
                raise BadRequest(f"unknown object type: {t}")
        wanted = set(types)
    out: dict[str, Any] = {}
    if "image" in wanted:
        def counts(image_id: str) -> int:
            return len(engine.containers.users_of_image(image_id))

        rows = await asyncio.to_thread(engine.images.list_filtered, {}, all_=False, shared_size=True,
                                       containers=counts)
        layers = await asyncio.to_thread(engine.images.disk_usage)
        if layers:
            out["LayersSize"] = layers
        out["Images"] = [image_summary(r.image, version, r.containers, repo_tags=r.repo_tags,
                                       repo_digests=r.repo_digests, shared_size=r.shared_size) for r in rows]
    if "container" in wanted:
        out["Containers"] = await listing.list_containers(engine, show_all=True, limit=-1, size=True, filters={})
    if "volume" in wanted:
        vols = []
        for vol in engine.volumes.find({})[0]:
            if vol.driver != "local" or vol.options:
                continue   # dockerd leaves out volumes with mount options: not local data
            size = await engine.volumes.usage(vol)
            vols.append(encode_volume(vol, (size, len(engine.volumes.refs(vol.name)))))
        out["Volumes"] = vols
    if "build-cache" in wanted:
        out["BuildCache"] = []   # the classic builder keeps no cache of its own (its cache is images)
    return docker_json(out)


routes = [
    Route("/system/df", disk_usage, methods=["GET"]),
]

