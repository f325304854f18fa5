"""Response helpers: Docker's JSON encoding and query-string parsing."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine import gojson

from .errors import BadRequest


def dumps(obj: Any) -> bytes:
    """Compact JSON with a trailing newline, escaping <, > and & like Go's encoder."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8") + b"\n"


def docker_json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json", headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


_TRUE = {"1", "true", "True", "TRUE", "yes", "t"}
_FALSE = {"0", "false", "False", "FALSE", "no", "f", ""}


def qbool(request: Request, name: str, default: bool = False) -> bool:
    """dockerd's BoolValue: present and not 0/false/no/empty means true."""
    if name not in request.query_params:
        return default
    value = request.query_params[name].strip().lower()
    return value not in ("", "0", "no", "false", "none")


def qint(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {raw!r}: strconv.Atoi: parsing {raw!r}: invalid syntax") from None


_FILTERS = gojson.Map(gojson.Map(gojson.BOOL, "map[string]bool"), "map[string]map[string]bool")
_LEGACY_FILTERS = gojson.Map(gojson.STRINGS, "map[string][]string")


def qfilters(request: Request) -> dict[str, list[str]]:
    """Decode the `filters` JSON argument: {"k": ["v"]} or the old {"k": {"v": true}}."""
    raw = request.query_params.get("filters")
    if not raw:
        return {}
    data = gojson.loads(raw)
    if data is None:
        return {}
    try:
        gojson.check(data, _FILTERS)
    except gojson.GoTypeError:
        # the legacy {"key": ["value"]} form; dockerd names the current form when neither fits
        try:
            gojson.check(data, _LEGACY_FILTERS)
        except gojson.GoTypeError:
            gojson.check(data, _FILTERS)
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:  # null: no values
            out[key] = []
    return out


async def json_body(request: Request, *, allow_empty: bool = True, go_type: gojson.GoType | None = None) -> Any:
    """The request's JSON body, decoded as dockerd's json.Decoder does (and checked against go_type)."""
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if body and ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(f"Content-Type specified ({ctype}) must be 'application/json'")
    if not body.strip():
        if allow_empty:
            return None
        raise BadRequest("invalid JSON: got EOF while reading request body")
    value = gojson.loads(body, stream=True)
    if go_type is not None:
        value = gojson.decode_as(value, go_type)   # Go's type errors; keys matched regardless of case
    return value


def api_version(request: Request) -> str:
    version: str = request.scope.get("api_version") or request.app.state.default_version
    return version
