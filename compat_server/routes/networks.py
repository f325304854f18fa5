"""The network API: list, inspect, create, delete, prune, connect, disconnect."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import timeutil
from engine.errors import InvalidParameter, NotFound
from engine.types import EndpointConfig

from .. import gotypes, netcodec, unsupported
from ..backends import NetworksBackend
from ..errors import BadRequest
from ..responses import api_version, docker_json, json_body, qfilters


def _engine(request: Request) -> NetworksBackend:
    backend: NetworksBackend = request.app.state.engine
    return backend


def _name_of(engine: NetworksBackend) -> Callable[[str], str]:
    def name(cid: str) -> str:
        try:
            return str(engine.containers.get(cid).name)
        except NotFound:
            return ""
    return name


async def list_networks(request: Request) -> Response:
    engine = _engine(request)
    svc = engine.networks
    nets = netcodec.filter_networks(svc.networks(), svc, qfilters(request))
    version = api_version(request)
    return docker_json([netcodec.encode_network(n, svc, version) for n in nets])


async def inspect_network(request: Request) -> Response:
    engine = _engine(request)
    svc = engine.networks
    scope = request.query_params.get("scope", "")
    n = svc.get(request.path_params["id"])
    if scope and scope != n.scope:
        raise NotFound(f"network {request.path_params['id']} not found")
    return docker_json(netcodec.encode_network(n, svc, api_version(request), _name_of(engine)))


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"json: cannot unmarshal into Go struct field {what} of type map[string]string")
    return {str(k): str(v) for k, v in value.items()}


async def create_network(request: Request) -> Response:
    engine = _engine(request)
    body = await json_body(request, allow_empty=False, go_type=gotypes.NETWORK_CREATE)
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON body")
    ipam = body.get("IPAM") or {}
    if body.get("Ingress"):
        raise InvalidParameter("ingress networks need swarm mode")
    if body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
        raise InvalidParameter("config-only networks are not supported by pydockerd yet")
    n = await engine.networks.create(
        str(body.get("Name") or ""), str(body.get("Driver") or "bridge"),
        internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
        enable_ipv6=bool(body.get("EnableIPv6")), ipam_driver=str(ipam.get("Driver") or "default"),
        ipam_configs=list(ipam.get("Config") or []), ipam_options=_str_map(ipam.get("Options"), "IPAM.Options"),
        options=_str_map(body.get("Options"), "Options"), labels=_str_map(body.get("Labels"), "Labels"))
    return docker_json({"Id": n.id, "Warning": ""}, status=201)


async def delete_network(request: Request) -> Response:
    await _engine(request).networks.remove(request.path_params["id"])
    return Response(status_code=204)


def _endpoint_config(raw: Any) -> EndpointConfig:
    ep = raw or {}
    ipam_cfg = ep.get("IPAMConfig") or {}
    return EndpointConfig(
        aliases=tuple(ep.get("Aliases") or ()), links=tuple(ep.get("Links") or ()),
        ipv4_address=str(ipam_cfg.get("IPv4Address") or ""), ipv6_address=str(ipam_cfg.get("IPv6Address") or ""),
        link_local_ips=tuple(ipam_cfg.get("LinkLocalIPs") or ()), mac_address=str(ep.get("MacAddress") or ""),
        driver_opts=dict(ep.get("DriverOpts") or {}), gw_priority=int(ep.get("GwPriority") or 0))


async def connect(request: Request) -> Response:
    engine = _engine(request)
    body = await json_body(request, go_type=gotypes.NETWORK_CONNECT) or {}
    c = engine.containers.get(str(body.get("Container") or ""))
    unsupported.check_connect(body)
    await engine.networks.endpoints.connect(c, request.path_params["id"], _endpoint_config(body.get("EndpointConfig")),
                                  running=engine.containers.is_running(c))
    return Response(status_code=200)


async def disconnect(request: Request) -> Response:
    engine = _engine(request)
    body = await json_body(request, go_type=gotypes.NETWORK_DISCONNECT) or {}
    c = engine.containers.get(str(body.get("Container") or ""))
    await engine.networks.endpoints.disconnect(c, request.path_params["id"], force=bool(body.get("Force")))
    return Response(status_code=200)


async def prune(request: Request) -> Response:
    engine = _engine(request)
    svc = engine.networks
    flt = qfilters(request)
    for key in flt:
        if key not in ("until", "label", "label!"):
            raise InvalidParameter(f"invalid filter '{key}'")
    until_ns = None
    untils = flt.get("until", [])
    if len(untils) > 1:
        raise InvalidParameter("more than one until filter specified")
    if untils:
        try:
            until_ns = timeutil.parse_timestamp_arg(untils[0])
        except ValueError:
            raise InvalidParameter(f'failed to parse value as time or duration: "{untils[0]}"') from None
    deleted = []
    for n in svc.networks():
        if n.predefined or svc.in_use_live(n):
            continue
        if until_ns is not None and timeutil.parse_ns(n.created) > until_ns:
            continue
        if not all(netcodec.label_match(n.labels, e) for e in flt.get("label", [])):
            continue
        if any(netcodec.label_match(n.labels, e) for e in flt.get("label!", [])):
            continue
        await svc.remove(n.id)
        deleted.append(n.name)
    return docker_json({"NetworksDeleted": deleted or None})


routes = [
    Route("/networks", list_networks, methods=["GET"]),
    Route("/networks/create", create_network, methods=["POST"]),
    Route("/networks/prune", prune, methods=["POST"]),
    Route("/networks/{id:path}/connect", connect, methods=["POST"]),
    Route("/networks/{id:path}/disconnect", disconnect, methods=["POST"]),
    Route("/networks/{id:path}", inspect_network, methods=["GET"]),
    Route("/networks/{id:path}", delete_network, methods=["DELETE"]),
]
