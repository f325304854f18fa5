"""The managed-plugins API (``/plugins``) of a daemon that has no plugins.

pydockerd cannot install plugins (they are containers run by a plugin
manager it does not have), so the list is empty and every request naming a
plugin gets dockerd's answer for a plugin that is not installed.  Installing
(pull, create, privileges of a remote plugin) is refused as not implemented
rather than pretended.
"""
from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import gojson
from engine.errors import EngineError, InvalidParameter, NotFound, NotImplementedYet
from engine.images.reference import parse_normalized

from ..responses import docker_json, qfilters

_FILTERS = ("enabled", "capability")
_NOT_INSTALLABLE = "installing plugins is not implemented by pydockerd"


def _missing(name: str) -> NotFound:
    return NotFound(f'plugin "{name}" not found')


def _ref_name(name: str) -> str:
    """A name as dockerd's plugin store spells it in errors once it is a reference: ``foo`` -> ``foo:latest``."""
    return name if re.search(r":[^/]*$", name) else f"{name}:latest"


async def list_plugins(request: Request) -> Response:
    flt = qfilters(request)
    for key, values in flt.items():
        if key not in _FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
        if key == "enabled" and values not in (["true"], ["false"]):
            raise InvalidParameter(f"Invalid filter 'enabled=[{' '.join(values)}]'")
    return docker_json([])


async def privileges(request: Request) -> Response:
    parse_normalized(request.query_params.get("remote", ""))
    raise NotImplementedYet(_NOT_INSTALLABLE)


async def _privileges_body(request: Request) -> None:
    """pull and upgrade carry the privileges the user accepted: a JSON array."""
    body = await request.body()
    if not body.strip():
        raise EngineError("failed to parse privileges: EOF")
    gojson.check(gojson.loads(body, stream=True), gojson.Slice(_PRIVILEGE, "types.PluginPrivileges"))


_PRIVILEGE = gojson.Struct("types.PluginPrivilege", "PluginPrivilege", {
    "Name": gojson.STRING, "Description": gojson.STRING, "Value": gojson.STRINGS,
})


async def pull(request: Request) -> Response:
    await _privileges_body(request)
    parse_normalized(request.query_params.get("remote", ""))
    raise NotImplementedYet(_NOT_INSTALLABLE)


async def create(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        parse_normalized(name)
    except InvalidParameter as err:
        raise InvalidParameter(f"failed to parse reference {name}: {err.message}") from None
    raise NotImplementedYet(_NOT_INSTALLABLE)


async def inspect(request: Request) -> Response:
    raise _missing(request.path_params["name"])


async def remove(request: Request) -> Response:
    raise _missing(request.path_params["name"])


async def enable(request: Request) -> Response:
    raw = request.query_params.get("timeout", "")
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise EngineError(f'strconv.Atoi: parsing "{raw}": invalid syntax')  # dockerd: a 500
    raise _missing(request.path_params["name"])


async def disable(request: Request) -> Response:
    raise _missing(request.path_params["name"])


async def push(request: Request) -> Response:
    raise _missing(request.path_params["name"])


async def set_settings(request: Request) -> Response:
    body = await request.body()
    if not body.strip():
        raise InvalidParameter("got EOF while reading request body")
    gojson.check(gojson.loads(body, stream=True), gojson.STRINGS)
    raise _missing(request.path_params["name"])


async def upgrade(request: Request) -> Response:
    await _privileges_body(request)
    raise _missing(_ref_name(request.path_params["name"]))


routes = [
    Route("/plugins", list_plugins, methods=["GET"]),
    Route("/plugins/privileges", privileges, methods=["GET"]),
    Route("/plugins/pull", pull, methods=["POST"]),
    Route("/plugins/create", create, methods=["POST"]),
    Route("/plugins/{name:path}/json", inspect, methods=["GET"]),
    Route("/plugins/{name:path}/enable", enable, methods=["POST"]),
    Route("/plugins/{name:path}/disable", disable, methods=["POST"]),
    Route("/plugins/{name:path}/push", push, methods=["POST"]),
    Route("/plugins/{name:path}/set", set_settings, methods=["POST"]),
    Route("/plugins/{name:path}/upgrade", upgrade, methods=["POST"]),
    Route("/plugins/{name:path}", remove, methods=["DELETE"]),
]
