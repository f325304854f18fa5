"""Parsing JSON that clients send, with the limits and the words of Go's encoding/json.

dockerd decodes every body, ``filters=`` argument, auth header and seccomp profile with Go's
decoder, whose nesting is limited to 10,000 levels: one level more is a syntax error,
``invalid character '[' exceeded max depth``, never a crash.  Python's own decoder recurses and
gives up far below that (``RecursionError``), so documents nested that deep are parsed here by a
small iterative parser instead, which also phrases syntax errors as Go does.

Floating-point numbers decode as ``GoFloat``, a float that remembers its literal, because Go
quotes the literal (``number 1.5``) when a number does not fit an integer field.
"""
from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Self

from .errors import InvalidParameter

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
