"""Response helpers: Docker's JSON encoding and query-string parsing."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

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


def qfilters(request: Request) -> dict[str, list[str]]:
    """Decode the `filters` JSON argument: {"k": ["v"]} or the old {"k": {"v": true}}."""
    raw = request.query_params.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise BadRequest(f"invalid filter: {err.msg}") from err
    if not isinstance(data, dict):
        raise BadRequest("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise BadRequest(f"invalid filter: value of {key} must be a list or map")
    return out


async def json_body(request: Request, *, allow_empty: bool = True) -> Any:
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if body and ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(f"Content-Type specified ({ctype}) must be 'application/json'")
    if not body.strip():
        if allow_empty:
            return None
        raise BadRequest("invalid JSON: got EOF while reading request body")
    try:
        return json.loads(body)
    except json.JSONDecodeError as err:
        raise BadRequest(go_json_error(body, err)) from err
    except UnicodeDecodeError:
        raise BadRequest("invalid character in request body: not UTF-8") from None


def go_json_error(body: bytes, err: json.JSONDecodeError) -> str:
    """Phrase a JSON syntax error the way Go's encoding/json does (dockerd's text)."""
    if err.pos >= len(err.doc.rstrip()):
        return "unexpected EOF"
    ch = _char_at(body, err.pos)
    if err.msg.startswith("Expecting property name"):
        return f"invalid character '{ch}' looking for beginning of object key string"
    if err.msg.startswith("Expecting value"):
        return f"invalid character '{ch}' looking for beginning of value"
    if err.msg.startswith("Expecting ':'"):
        return f"invalid character '{ch}' after object key"
    if err.msg.startswith("Expecting ',' delimiter"):
        return f"invalid character '{ch}' after object key:value pair"
    if err.msg.startswith("Extra data"):
        return f"invalid character '{ch}' after top-level value"
    return f"invalid character '{ch}': {err.msg}"


def _char_at(body: bytes, pos: int) -> str:
    try:
        return body.decode("utf-8", "replace")[pos]
    except IndexError:
        return "EOF"


def api_version(request: Request) -> str:
    version: str = request.scope.get("api_version") or request.app.state.default_version
    return version
