"""Decoding JSON that clients send, with the limits and the words of Go's encoding/json.

dockerd decodes every body, ``filters=`` argument, auth header and seccomp
profile with Go's decoder.  Two of its properties matter to clients:

* nesting is limited to 10,000 levels; one level more is a syntax error,
  ``invalid character '[' exceeded max depth``, never a crash;
* a value of the wrong JSON kind is an ``UnmarshalTypeError`` that names the
  innermost Go struct, the path of JSON keys to the field and the field's Go
  type: ``json: cannot unmarshal string into Go struct field
  HealthConfig.Healthcheck.Interval of type time.Duration``.

``loads`` gives the first: Python's own decoder recurses and gives up far below
Go's limit (``RecursionError``), so documents nested that deep are parsed here
by a small iterative parser instead.  ``check`` gives the second, against a
description of the Go types built from ``Struct``, ``Slice``, ``Map``,
``Scalar``, ``StrSlice`` and ``Array``.

Floating-point numbers decode as ``GoFloat``, a float that remembers its
literal, because Go quotes the literal (``number 1.5``) when a number does not
fit an integer field.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Self

from .errors import InvalidParameter, go_json_kind

MAX_DEPTH = 10000


class JSONSyntaxError(InvalidParameter, ValueError):
    """The text is not JSON (or is nested deeper than Go allows): Go's syntax error words."""


class GoFloat(float):
    """A JSON number with a fraction or exponent, keeping its literal for error messages."""

    text: str

    def __new__(cls, text: str) -> Self:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def loads(data: bytes | str, *, stream: bool = False) -> Any:
    """Decode one JSON document; errors are JSONSyntaxError in Go's words.

    stream=False is Go's json.Unmarshal (trailing data is an error, a cut-off
    document is "unexpected end of JSON input"); stream=True is what dockerd
    does with request bodies, json.NewDecoder(body).Decode: the first value is
    taken, what follows it is ignored, a cut-off document is "unexpected EOF".
    """
    # Go keeps going over bad UTF-8 inside strings (as U+FFFD); so does "replace"
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        if stream:
            start = _WS.match(text)
            value, _ = _DECODER.raw_decode(text, start.end() if start else 0)
            return value
        return json.loads(text, parse_float=GoFloat)
    except (RecursionError, json.JSONDecodeError):
        # too deep for Python's decoder, or not JSON: the iterative parser finds
        # the depth limit and phrases syntax errors as Go does
        return _Iterative(text, stream).parse()


_DECODER = json.JSONDecoder(parse_float=GoFloat)


def _go_quote(ch: str) -> str:
    """Go's quoteChar: ' as \\', " as \\", other characters quoted as strconv.Quote does."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    if ch.isprintable():
        return f"'{ch}'"
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if ch in named:
        return f"'{named[ch]}'"
    code = ord(ch)
    return f"'\\x{code:02x}'" if code < 0x80 else f"'\\u{code:04x}'" if code < 0x10000 else f"'\\U{code:08x}'"


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


class _Iterative:
    """A non-recursive JSON parser for documents nested deeper than Python's recursion limit."""

    def __init__(self, text: str, stream: bool) -> None:
        self.s = text
        self.pos = 0
        self.stream = stream

    def _ws(self) -> None:
        m = _WS.match(self.s, self.pos)
        self.pos = m.end() if m else self.pos

    def _fail(self, context: str) -> JSONSyntaxError:
        if self.pos >= len(self.s):
            return JSONSyntaxError("unexpected EOF" if self.stream else "unexpected end of JSON input")
        return JSONSyntaxError(f"invalid character {_go_quote(self.s[self.pos])} {context}")

    def _string(self) -> str:
        try:
            value, end = scanstring(self.s, self.pos + 1, True)
        except json.JSONDecodeError as err:
            raise self._string_error(err) from None
        self.pos = end
        return str(value)

    def _string_error(self, err: json.JSONDecodeError) -> JSONSyntaxError:
        if err.msg.startswith("Invalid control"):
            self.pos = err.pos
            return self._fail("in string literal")
        if err.msg.startswith("Invalid \\u"):
            # Python points at the backslash, Go at the first character that is not hex
            self.pos = err.pos + 2
            while self.pos < len(self.s) and self.s[self.pos] in "0123456789abcdefABCDEF":
                self.pos += 1
            return self._fail("in \\u hexadecimal character escape")
        if err.msg.startswith("Invalid \\escape"):
            self.pos = err.pos + 1  # Python points at the backslash, Go at the escaped character
            return self._fail("in string escape code")
        self.pos = len(self.s)  # unterminated
        return self._fail("")

    def _scalar(self) -> Any:
        s, pos = self.s, self.pos
        c = s[pos] if pos < len(s) else ""
        if c == '"':
            return self._string()
        if c in _LITERALS:
            word, value = _LITERALS[c]
            for i, want in enumerate(word):
                got = s[pos + i] if pos + i < len(s) else ""
                if got != want:
                    self.pos = pos + i
                    raise self._fail(f"in literal {word} (expecting '{want}')")
            self.pos = pos + len(word)
            return value
        m = _NUMBER.match(s, pos)
        if not m:
            raise self._fail("looking for beginning of value")
        self.pos = m.end()
        if m.group(1) or m.group(2):
            return GoFloat(m.group(0))
        return int(m.group(0))

    def parse(self) -> Any:
        stack: list[tuple[list[Any] | dict[str, Any], str | None]] = []
        value: Any = None
        while True:
            # expecting a value
            self._ws()
            c = self.s[self.pos] if self.pos < len(self.s) else ""
            if c in ("[", "{"):
                if len(stack) >= MAX_DEPTH:
                    raise JSONSyntaxError(f"invalid character '{c}' exceeded max depth")
                self.pos += 1
                self._ws()
                if c == "[":
                    if self.s.startswith("]", self.pos):
                        self.pos += 1
                        value = []
                    else:
                        stack.append(([], None))
                        continue
                else:
                    if self.s.startswith("}", self.pos):
                        self.pos += 1
                        value = {}
                    else:
                        stack.append(({}, self._key()))
                        continue
            else:
                value = self._scalar()
            # a value is complete: attach it, closing containers as they end
            while True:
                if not stack:
                    self._ws()
                    if self.pos < len(self.s) and not self.stream:
                        raise self._fail("after top-level value")
                    return value
                container, key = stack[-1]
                if isinstance(container, list):
                    container.append(value)
                else:
                    container[key or ""] = value
                self._ws()
                c = self.s[self.pos] if self.pos < len(self.s) else ""
                closer = "]" if isinstance(container, list) else "}"
                if c == ",":
                    self.pos += 1
                    if isinstance(container, dict):
                        self._ws()
                        stack[-1] = (container, self._key())
                    break
                if c == closer:
                    self.pos += 1
                    stack.pop()
                    value = container
                    continue
                raise self._fail("after array element" if closer == "]" else "after object key:value pair")

    def _key(self) -> str:
        if not self.s.startswith('"', self.pos):
            raise self._fail("looking for beginning of object key string")
        key = self._string()
        self._ws()
        if not self.s.startswith(":", self.pos):
            raise self._fail("after object key")
        self.pos += 1
        return key


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
