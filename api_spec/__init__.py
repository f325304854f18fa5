"""The Engine API contract (api_spec/engine-api.json) and a response validator for tests.

    validate_response("GET", "/v1.50/containers/abc/json", 200, body)   # raises ValidationError
    known_routes()  # [("GET", "/containers/{id}/json"), ...]

Schemas are checked with JSON Schema draft 4 (what swagger 2.0 builds on).  Where dockerd
really returns something the spec does not allow, `_tolerate` relaxes the schema; each
tolerance is listed there with the reason.  Unknown routes and undocumented statuses pass.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).resolve().parent / "engine-api.json"
ValidationError = jsonschema.ValidationError

_VERSION_PREFIX = re.compile(r"^/v\d+(?:\.\d+)?(?=/)")

# Path parameters that may contain slashes: image references (`localhost:5000/ns/app`),
# plugin names, and the distribution endpoint's reference.
_SLASHY_PARAMS = {"name"}
_SLASHY_PREFIXES = ("/images/", "/distribution/", "/plugins/")


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    with open(SPEC_PATH, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def known_routes() -> list[tuple[str, str]]:
    """(METHOD, template) for every documented operation."""
    return sorted((m.upper(), p) for p, ops in spec()["paths"].items() for m in ops)


@functools.lru_cache(maxsize=1)
def _matchers() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in spec()["paths"]:
        parts = []
        for piece in re.split(r"(\{[^}]+\})", template):
            if piece.startswith("{"):
                name = piece[1:-1]
                slashy = name in _SLASHY_PARAMS and template.startswith(_SLASHY_PREFIXES)
                parts.append("(?:.+)" if slashy else "(?:[^/]+)")
            else:
                parts.append(re.escape(piece))
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        out.append((re.compile("^" + "".join(parts) + "$"), template, literal))
    # Most literal characters first: `/images/json` beats `/images/{name}/json`'s cousins.
    out.sort(key=lambda t: -t[2])
    return [(rx, template) for rx, template, _ in out]


def match_route(method: str, path: str) -> str | None:
    """The spec template for a concrete request path (version prefix and query ignored)."""
    path = path.split("?", 1)[0]
    path = _VERSION_PREFIX.sub("", path, count=1) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    m = method.lower()
    for rx, template in _matchers():
        if m in spec()["paths"][template] and rx.match(path):
            return template
    return None


def response_schema(method: str, template: str, status: int) -> dict[str, Any] | None:
    op = spec()["paths"].get(template, {}).get(method.lower())
    if op is None:
        return None
    resp = op["responses"].get(str(status))
    if resp is None:
        return None
    schema: dict[str, Any] | None = resp.get("schema")
    return schema


def validate_response(method: str, path: str, status: int, body: Any) -> None:
    """Validate a response body (parsed JSON, or bytes/str holding JSON) against the spec.

    Raises jsonschema.ValidationError.  Passes for unknown routes, undocumented statuses,
    responses without a schema, and non-JSON bodies of string/binary responses.
    """
    if method.upper() == "HEAD":
        return    # no body by definition
    template = match_route(method, path)
    if template is None:
        return
    validator = _validator(method.lower(), template, int(status))
    if validator is None:
        return
    documents = [body]
    if isinstance(body, (bytes, bytearray, str)):
        try:
            documents = [json.loads(body)]
        except ValueError:
            if _is_string_schema(method.lower(), template, int(status)):
                return
            # A stream of JSON documents, one per line (events, pull/push/load progress):
            # each must match the schema.
            try:
                lines = body.splitlines()
                documents = [json.loads(line) for line in lines if line.strip()]
            except ValueError:
                documents = []
            if not documents:
                raise ValidationError(f"response body of {method} {template} {status} is not JSON") from None
    for doc in documents:
        error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
        if error is not None:
            raise error


def _is_string_schema(method: str, template: str, status: int) -> bool:
    s = response_schema(method, template, status) or {}
    return s.get("type") in ("string", "file")


@functools.cache
def _definitions() -> dict[str, Any]:
    defs = copy.deepcopy(spec()["definitions"])
    return {name: _for_validation(s, path=(name,)) for name, s in defs.items()}


@functools.cache
def _validator(method: str, template: str, status: int) -> jsonschema.Draft4Validator | None:
    s = response_schema(method, template, status)
    if not s:
        return None
    root = dict(_for_validation(copy.deepcopy(s), path=(template, method, str(status))))
    root["definitions"] = _definitions()
    return jsonschema.Draft4Validator(root)


# ---------------------------------------------------------------- swagger -> JSON Schema
def _for_validation(node: Any, path: tuple[str, ...]) -> Any:
    """Swagger 2.0 schema -> draft 4 JSON Schema, with dockerd's real-world tolerances."""
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in ("x-omitempty", "discriminator", "readOnly")}
    if node.get("type") == "file":
        node.pop("type")     # swagger's "file" is a byte stream, not JSON
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _for_validation(node[key], path + (key,))
    if "properties" in node:
        node["properties"] = {n: _for_validation(s, path + (n,)) for n, s in node["properties"].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [_for_validation(s, path + (key,)) for s in node[key]]
    nullable = bool(node.pop("x-nullable", False)) or _tolerate_null(node, path)
    _tolerate(node, path)
    if nullable:
        if "$ref" in node or "allOf" in node:
            return {"anyOf": [node, {"type": "null"}]}
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    return node


def _tolerate_null(node: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Nulls dockerd really sends where the spec does not say x-nullable."""
    # Go encodes a nil slice or nil map as null, and dockerd leaves many of them nil
    # (HostConfig.Binds, Config.Entrypoint, Config.Volumes, Config.OnBuild, Image
    # RepoTags/RepoDigests of dangling images on older daemons, NetworkSettings.Ports on
    # a stopped container...).  The spec marks only some as x-nullable.
    if node.get("type") == "array":
        return True
    if node.get("type") == "object" and "additionalProperties" in node and "properties" not in node:
        return True
    # Go pointer fields that dockerd leaves nil ("unset" rather than a value).
    if len(path) >= 2 and (path[0], path[-1]) in _NIL_POINTER_FIELDS:
        return True
    # Definitions that are maps or lists by reference (PortMap, Mount lists...).
    if "$ref" in node and node["$ref"].rsplit("/", 1)[-1] in _NIL_ABLE_DEFINITIONS:
        return True
    return False


# (definition, property) pairs that are *T in dockerd and null when unset.
_NIL_POINTER_FIELDS = {
    ("Resources", "MemorySwappiness"),  # null in every inspect of a container created without it
    ("Resources", "OomKillDisable"),
    ("Resources", "PidsLimit"),
    ("Resources", "Init"),
    ("HostConfig", "Init"),
    ("ContainerConfig", "StopTimeout"),
    # POST /containers/{id}/wait: dockerd 20.10 sends "Error": null for a clean exit
    # (newer daemons omit it); seen across the conformance suite against the reference.
    ("ContainerWaitResponse", "Error"),
}

# Definitions that are Go maps/slices/pointers dockerd leaves nil (so they encode as null).
_NIL_ABLE_DEFINITIONS = {
    "PortMap",              # NetworkSettings.Ports of a container that is not running
    "HealthConfig",         # Config.Healthcheck is a pointer
    "EndpointIPAMConfig",   # Networks.*.IPAMConfig is a pointer, null without static IPs
    "DriverData",           # GraphDriver of some storage drivers
    "RestartPolicy",
    "OCIDescriptor",        # ImageManifestDescriptor / Descriptor pointers
    "OCIPlatform",
}


def _tolerate(node: dict[str, Any], path: tuple[str, ...]) -> None:
    """Other relaxations, each for a documented dockerd behaviour."""
    # Integers: Go's uint64 fields (e.g. memory counters) can exceed what the spec's
    # `format: int64` suggests; and JSON has only numbers.  Nothing to do for draft 4.
    # `required` lists that dockerd does not honour for older API versions, e.g. fields
    # added after 1.41 which an older daemon (our reference, 20.10) does not send.
    name = path[0] if path else ""
    relaxed = _RELAXED_REQUIRED.get(name)
    if relaxed and len(path) == 1 and "required" in node:
        node["required"] = [r for r in node["required"] if r not in relaxed]
        if not node["required"]:
            node.pop("required")


# definition -> required fields not enforced (because dockerd omits them in real responses).
_RELAXED_REQUIRED: dict[str, set[str]] = {}
