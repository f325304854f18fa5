"""`POST /containers/prune` (other object types' prune routes can live here too)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..backends import PruneBackend
from ..responses import docker_json, qfilters


async def prune_containers(request: Request) -> Response:
    engine: PruneBackend = request.app.state.engine
    report = await engine.container_pruner.prune(qfilters(request))
    # dockerd answers null, not [], when nothing was deleted.
    return docker_json({"ContainersDeleted": list(report.deleted) or None, "SpaceReclaimed": report.reclaimed})


routes = [
    Route("/containers/prune", prune_containers, methods=["POST"]),
]
