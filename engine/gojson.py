"""Decoding JSON that clients send, with the limits and the words of Go's encoding/json.

dockerd decodes every body, ``filters=`` argument, auth header and seccomp
profile with Go's decoder.  Two of its properties matter to clients:

* nesting is limited to 10,000 levels; one level more is a syntax error,
  ``invalid character '[' exceeded max depth``, never a crash (``loads``, from
  ``gojson_parse``);
* a value of the wrong JSON kind is an ``UnmarshalTypeError`` that names the
  innermost Go struct, the path of JSON keys to the field and the field's Go
  type: ``json: cannot unmarshal string into Go struct field
  HealthConfig.Healthcheck.Interval of type time.Duration``.

``check`` gives the second, against a description of the Go types built from
``Struct``, ``Slice``, ``Map``, ``Scalar``, ``StrSlice`` and ``Array``;
``canonical`` spells keys as Go's case-insensitive field matching does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameter, go_json_kind
from .gojson_parse import MAX_DEPTH as MAX_DEPTH
from .gojson_parse import GoFloat as GoFloat
from .gojson_parse import JSONSyntaxError as JSONSyntaxError
from .gojson_parse import loads as loads

# ---------------------------------------------------------------- Go types


@dataclass(frozen=True)
class Scalar:
    """string, bool, a sized integer, or a float; name is the Go type as errors print it."""

    name: str
    kind: str  # "string" | "bool" | "int" | "uint" | "float"
    bits: int = 64


@dataclass(frozen=True)
class Slice:
    elem: GoType
    name: str


@dataclass(frozen=True)
class Map:
    elem: GoType
    name: str


@dataclass(frozen=True)
class Array:
    elem: GoType
    length: int
    name: str


@dataclass(frozen=True)
class StrSlice:
    """strslice.StrSlice: a string or an array of strings; its own decoder reports the whole value."""

    name: str = "strslice.StrSlice"


@dataclass(frozen=True)
class AnyValue:
    name: str = "interface {}"


@dataclass(frozen=True)
class Struct:
    """name: the Go type as errors print it (``container.HostConfig``); short: the bare struct name."""

    name: str
    short: str
    fields: dict[str, GoType] = field(default_factory=dict)

    def lookup(self, key: str) -> GoType | None:
        if key in self.fields:
            return self.fields[key]
        low = key.lower()  # Go matches keys case-insensitively when no exact match exists
        for k, t in self.fields.items():
            if k.lower() == low:
                return t
        return None


GoType = Scalar | Slice | Map | Array | StrSlice | AnyValue | Struct

STRING = Scalar("string", "string")
BOOL = Scalar("bool", "bool")
INT = Scalar("int", "int")
INT64 = Scalar("int64", "int")
UINT = Scalar("uint", "uint")
UINT16 = Scalar("uint16", "uint", 16)
UINT32 = Scalar("uint32", "uint", 32)
UINT64 = Scalar("uint64", "uint")
DURATION = Scalar("time.Duration", "int")
STRINGS = Slice(STRING, "[]string")
STRING_MAP = Map(STRING, "map[string]string")


def named(base: Scalar, name: str) -> Scalar:
    """A named Go type over a scalar (``type NetworkMode string``)."""
    return Scalar(name, base.kind, base.bits)


# The JSON kind Go's decoder names in "cannot unmarshal <kind> into ..." errors (one helper).
kind_of = go_json_kind


class GoTypeError(InvalidParameter):
    """Go's UnmarshalTypeError."""


def check(value: Any, go_type: GoType) -> None:
    """Raise GoTypeError, in Go's words, for the first value (in document order) of the wrong kind."""
    _check(value, go_type, "", ())


def canonical(value: Any, go_type: GoType) -> Any:
    """`value` with every struct key spelled as its Go field is: Go's decoder matches keys without
    regard to case (an exact match first), so ``{"memory": 1}`` sets HostConfig.Memory.  Of several
    spellings of one field the last in the document wins, as in Go.  Unknown keys stay as they are."""
    if isinstance(go_type, Struct) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _field_name(go_type, key)
            ft = go_type.fields.get(name) if name is not None else None
            if name is None or ft is None:
                out[key] = item
            else:
                out.pop(name, None)      # keep document order for the winner
                out[name] = canonical(item, ft)
        return out
    if isinstance(go_type, (Slice, Array)) and isinstance(value, list):
        return [canonical(v, go_type.elem) for v in value]
    if isinstance(go_type, Map) and isinstance(value, dict):
        return {k: canonical(v, go_type.elem) for k, v in value.items()}
    return value


def _field_name(t: Struct, key: str) -> str | None:
    if key in t.fields:
        return key
    low = key.lower()
    for k in t.fields:
        if k.lower() == low:
            return k
    return None


def decode_as(value: Any, go_type: GoType) -> Any:
    """What dockerd's decoder makes of `value`: the kinds checked (Go's errors), the keys canonical."""
    check(value, go_type)
    return canonical(value, go_type)


def _fail(value: Any, type_name: str, struct: str, path: tuple[str, ...], literal: bool = False) -> GoTypeError:
    what = kind_of(value)
    if literal:
        what += " " + (value.text if isinstance(value, GoFloat) else str(value))
    if not struct:
        return GoTypeError(f"json: cannot unmarshal {what} into Go value of type {type_name}")
    return GoTypeError(f"json: cannot unmarshal {what} into Go struct field {struct}.{'.'.join(path)} "
                       f"of type {type_name}")


def _check(value: Any, t: GoType, struct: str, path: tuple[str, ...]) -> None:
    if value is None or isinstance(t, AnyValue):
        return
    if isinstance(t, Scalar):
        _check_scalar(value, t, struct, path)
    elif isinstance(t, StrSlice):
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise _fail(value, "string", struct, path)
    elif isinstance(t, Struct):
        if not isinstance(value, dict):
            raise _fail(value, t.name, struct, path)
        for key, item in value.items():
            ft = t.lookup(key)
            if ft is not None:
                _check(item, ft, t.short, path + (key,))
    elif isinstance(t, (Slice, Array)):
        if not isinstance(value, list):
            raise _fail(value, t.name, struct, path)
        items = value if isinstance(t, Slice) else value[:t.length]
        for item in items:
            _check(item, t.elem, struct, path)
    elif isinstance(t, Map):
        if not isinstance(value, dict):
            raise _fail(value, t.name, struct, path)
        for item in value.values():
            _check(item, t.elem, struct, path)


def _check_scalar(value: Any, t: Scalar, struct: str, path: tuple[str, ...]) -> None:
    kind = kind_of(value)
    if t.kind == "string":
        if kind != "string":
            raise _fail(value, t.name, struct, path)
    elif t.kind == "bool":
        if kind != "bool":
            raise _fail(value, t.name, struct, path)
    elif t.kind == "float":
        if kind != "number":
            raise _fail(value, t.name, struct, path)
    else:
        if kind != "number":
            raise _fail(value, t.name, struct, path)
        if isinstance(value, float):
            raise _fail(value, t.name, struct, path, literal=True)
        if t.kind == "int":
            lo, hi = -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
        else:
            lo, hi = 0, (1 << t.bits) - 1
        if not lo <= value <= hi:
            raise _fail(value, t.name, struct, path, literal=True)
