"""Exec routes: create, inspect, resize (start is hijacked: compat_server.hijack)."""
from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.containers.exec import parse_detach_keys
from engine.errors import go_json_kind as _go_kind

from .. import gotypes, versions
from ..backends import ExecBackend
from ..errors import BadRequest
from ..responses import api_version, docker_json, json_body, qint


def _strlist(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    # Go's encoding/json words (dockerd 20.10 names the struct ExecConfig, newer ExecOptions)
    if not isinstance(value, list):
        raise BadRequest(
            f"json: cannot unmarshal {_go_kind(value)} into Go struct field ExecOptions.{field} of type []string"
        )
    for v in value:
        if not isinstance(v, str):
            raise BadRequest(
                f"json: cannot unmarshal {_go_kind(v)} into Go struct field ExecOptions.{field} of type string"
            )
    return value


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise BadRequest(f"json: cannot unmarshal {_go_kind(value)} into Go struct field ExecOptions.ConsoleSize "
                         "of type [2]uint")
    return (value[0], value[1]) if value[0] or value[1] else None


async def create(request: Request) -> Response:
    engine: ExecBackend = request.app.state.engine
    body = await json_body(request, go_type=gotypes.EXEC_OPTIONS) or {}
    cmd = _strlist(body.get("Cmd"), "Cmd")
    if not cmd:
        raise BadRequest("No exec command specified")
    inst = engine.execs.create(
        request.path_params["id"], cmd=cmd, env=_strlist(body.get("Env"), "Env"), user=body.get("User") or "",
        working_dir=body.get("WorkingDir") or "", tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")), attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")), privileged=bool(body.get("Privileged")),
        detach_keys=body.get("DetachKeys") or "",
        # ConsoleSize arrived in API 1.42; dockerd ignores it from older clients
        console_size=_console_size(body.get("ConsoleSize")) if versions.at_least(api_version(request), "1.42")
        else None,
    )
    return docker_json({"Id": inst.id}, status=201)


async def inspect(request: Request) -> Response:
    engine: ExecBackend = request.app.state.engine
    inst = engine.execs.get(request.path_params["id"])
    return docker_json({
        "CanRemove": False,
        "ContainerID": inst.container_id,
        # dockerd keeps the parsed byte sequence: Go encodes []byte as base64
        "DetachKeys": base64.b64encode(parse_detach_keys(inst.detach_keys)).decode() if inst.detach_keys else "",
        "ExitCode": inst.exit_code,
        "ID": inst.id,
        "OpenStderr": inst.open_stderr,
        "OpenStdin": inst.open_stdin,
        "OpenStdout": inst.open_stdout,
        "ProcessConfig": {
            "arguments": inst.args[1:],
            "entrypoint": inst.args[0],
            "privileged": inst.privileged,
            "tty": inst.tty,
            "user": inst.user,
        },
        "Running": inst.running,
        "Pid": inst.pid,
    })


async def resize(request: Request) -> Response:
    engine: ExecBackend = request.app.state.engine
    await engine.execs.resize(request.path_params["id"], qint(request, "h", 0) or 0, qint(request, "w", 0) or 0)
    return Response(status_code=200)


routes = [
    Route("/containers/{id}/exec", create, methods=["POST"]),
    Route("/exec/{id}/json", inspect, methods=["GET"]),
    Route("/exec/{id}/resize", resize, methods=["POST"]),
]
