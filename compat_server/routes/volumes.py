"""Volume routes: create, inspect, list, remove, prune."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import go_json_kind

from .. import versions
from ..backends import VolumesBackend
from ..errors import BadRequest
from ..responses import api_version, docker_json, json_body, no_content, qbool, qfilters


def _engine(request: Request) -> VolumesBackend:
    backend: VolumesBackend = request.app.state.engine
    return backend


def encode_volume(vol: Any, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "CreatedAt": vol.created_at,
        "Driver": vol.driver,
        "Labels": vol.labels,
        "Mountpoint": vol.mountpoint,
        "Name": vol.name,
        "Options": vol.options,
        "Scope": vol.scope,
    }
    if usage is not None:
        out["UsageData"] = {"RefCount": usage[1], "Size": usage[0]}
    return out


def _check_map(body: dict[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"json: cannot unmarshal {go_json_kind(value)} into Go struct field "
                         f"CreateOptions.{key} of type map[string]string")
    for v in value.values():
        if not isinstance(v, str):
            raise BadRequest(f"json: cannot unmarshal {go_json_kind(v)} into Go struct field "
                             f"CreateOptions.{key} of type string")
    return dict(value)


async def create(request: Request) -> Response:
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {go_json_kind(body)} into Go value of type volume.CreateOptions")
    for key in ("Name", "Driver"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            raise BadRequest(f"json: cannot unmarshal {go_json_kind(body[key])} into Go struct field "
                             f"CreateOptions.{key} of type string")
    vol = await _engine(request).volumes.create(
        body.get("Name") or None, driver=body.get("Driver") or "",
        labels=_check_map(body, "Labels"), options=_check_map(body, "DriverOpts"))
    return docker_json(encode_volume(vol), status=201)


async def inspect(request: Request) -> Response:
    vol = _engine(request).volumes.get(request.path_params["name"])
    return docker_json(encode_volume(vol))


async def list_volumes(request: Request) -> Response:
    vols, warnings = _engine(request).volumes.find(qfilters(request))
    return docker_json({"Volumes": [encode_volume(v) for v in vols], "Warnings": warnings or None})


async def remove(request: Request) -> Response:
    await _engine(request).volumes.remove(request.path_params["name"], force=qbool(request, "force"))
    return no_content()


async def prune(request: Request) -> Response:
    filters = qfilters(request)
    if not versions.at_least(api_version(request), "1.42"):
        filters.setdefault("all", ["true"])  # before API 1.42 prune took named volumes too
    deleted, reclaimed = await _engine(request).volumes.prune(filters)
    return docker_json({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


routes = [
    Route("/volumes", list_volumes, methods=["GET"]),
    Route("/volumes/create", create, methods=["POST"]),
    Route("/volumes/prune", prune, methods=["POST"]),
    Route("/volumes/{name:path}", inspect, methods=["GET"]),
    Route("/volumes/{name:path}", remove, methods=["DELETE"]),
]
