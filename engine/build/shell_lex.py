"""Variable substitution in Dockerfile words, as the classic builder does it.

The rules are those of moby's shell lexer (the one both builders use):

- outside quotes the escape token (``\\`` or the ``# escape=`` one) takes the
  next character literally; single quotes keep everything literally; inside
  double quotes the escape token only escapes ``"``, ``$`` and itself;
- ``$name``, ``${name}``, ``${name:-word}`` / ``${name-word}`` (default),
  ``${name:+word}`` / ``${name+word}`` (alternative) and ``${name:?msg}`` /
  ``${name?msg}`` (required) are replaced from the environment given;
- ``process_words`` also splits on unquoted whitespace (for instructions that
  take a list: EXPOSE, VOLUME's plain form, ...).
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidParameter

Lookup = Callable[[str], "str | None"]


def env_lookup(env: list[str] | tuple[str, ...]) -> Lookup:
    """A lookup in KEY=VALUE entries; the first entry for a key wins (moby's order)."""
    table: dict[str, str] = {}
    for entry in env:
        key, sep, value = entry.partition("=")
        if key not in table:
            table[key] = value if sep else ""
    return table.get


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class ShellLex:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def process_word(self, word: str, lookup: Lookup) -> str:
        words = self._process(word, lookup, split=False)
        return words[0] if words else ""

    def process_words(self, word: str, lookup: Lookup) -> list[str]:
        return self._process(word, lookup, split=True)

    # ------------------------------------------------------------------ core
    def _process(self, word: str, lookup: Lookup, *, split: bool) -> list[str]:
        sc = _Scanner(word)
        words: list[str] = []
        current: list[str] = []
        in_word = False   # a word has started (even an empty quoted one)
        while sc.peek():
            ch = sc.peek()
            if split and ch in " \t\r\n":
                sc.next()
                if in_word:
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            in_word = True
            if ch == "'":
                sc.next()
                current.append(self._single_quoted(sc))
            elif ch == '"':
                sc.next()
                current.append(self._double_quoted(sc, lookup))
            elif ch == "$":
                value = self._dollar(sc, lookup)
                if split:
                    # An unquoted expansion is split into words too.
                    parts = value.split()
                    if not parts:
                        continue
                    if value[:1].isspace() and current:
                        words.append("".join(current))
                        current = []
                    current.append(parts[0])
                    for p in parts[1:]:
                        words.append("".join(current))
                        current = [p]
                    if value[-1:].isspace():
                        words.append("".join(current))
                        current, in_word = [], False
                else:
                    current.append(value)
            elif ch == self.escape:
                sc.next()
                nxt = sc.next()
                current.append(nxt if nxt else ch)
            else:
                current.append(sc.next())
        if in_word or (not split and not words):
            words.append("".join(current))
        return words

    @staticmethod
    def _single_quoted(sc: _Scanner) -> str:
        out: list[str] = []
        while True:
            ch = sc.next()
            if not ch:
                raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quoted(self, sc: _Scanner, lookup: Lookup) -> str:
        out: list[str] = []
        while True:
            ch = sc.peek()
            if not ch:
                raise InvalidParameter("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                sc.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar(sc, lookup))
                continue
            sc.next()
            if ch == self.escape and sc.peek() in ('"', "$", self.escape) and sc.peek():
                ch = sc.next()
            out.append(ch)

    def _dollar(self, sc: _Scanner, lookup: Lookup) -> str:
        sc.next()  # the $
        ch = sc.peek()
        if ch == "{":
            sc.next()
            return self._braced(sc, lookup)
        name = self._name(sc)
        if not name:
            return "$"
        return lookup(name) or ""

    @staticmethod
    def _name(sc: _Scanner) -> str:
        out: list[str] = []
        first = sc.peek()
        if first.isdigit() or first in ("@", "*", "#", "?", "$", "!", "-"):
            # positional/special parameters: one character, expanded to nothing
            if first.isdigit():
                sc.next()
                return first
            return ""
        while sc.peek() and (sc.peek().isalnum() or sc.peek() == "_"):
            out.append(sc.next())
        return "".join(out)

    def _braced(self, sc: _Scanner, lookup: Lookup) -> str:
        name = self._name(sc)
        if not name:
            raise InvalidParameter(f"missing ':' in substitution: {sc.text}" if sc.peek() == "}" else
                                   f"bad substitution: {sc.text}")
        ch = sc.next()
        if ch == "}":
            return lookup(name) or ""
        if not ch:
            raise InvalidParameter("missing ':' in substitution")
        colon = False
        if ch == ":":
            colon = True
            ch = sc.next()
        if ch not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({ch}) in substitution")
        word = self._modifier_word(sc, lookup)
        value = lookup(name)
        is_set = value is not None
        is_full = bool(value) if colon else is_set
        if ch == "-":
            return value if is_full and value is not None else word
        if ch == "+":
            return word if is_full else ""
        if not is_full:
            msg = word or "is not allowed to be unset"
            raise InvalidParameter(f"{name}: {msg}")
        return value or ""

    def _modifier_word(self, sc: _Scanner, lookup: Lookup) -> str:
        """The word after a modifier, up to the closing brace (itself expanded)."""
        out: list[str] = []
        while True:
            ch = sc.peek()
            if not ch:
                raise InvalidParameter(f"syntax error: missing '}}' in substitution: {sc.text}")
            if ch == "}":
                sc.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar(sc, lookup))
            elif ch == "'":
                sc.next()
                out.append(self._single_quoted(sc))
            elif ch == '"':
                sc.next()
                out.append(self._double_quoted(sc, lookup))
            elif ch == self.escape:
                sc.next()
                out.append(sc.next())
            else:
                out.append(sc.next())
