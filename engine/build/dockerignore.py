"""``.dockerignore`` with the semantics of Go's patternmatcher (what the CLI and dockerd use).

- One pattern a line; ``#`` lines are comments; blank lines are skipped;
  each pattern is trimmed, cleaned like ``filepath.Clean`` and loses a
  leading ``/`` (patterns are relative to the context root).
- ``*`` matches within one path element, ``?`` one character, ``[...]`` a
  class, ``\\`` escapes, ``**`` any number of elements (also none).
- ``!pattern`` re-includes what earlier patterns excluded; the last
  matching pattern decides.
- A path is excluded when a pattern matches it or one of its parent directories.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def read_patterns(content: str) -> list[str]:
    out: list[str] = []
    for raw in content.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        out.append(("!" if invert else "") + line)
    return out


_META = set(".+()|{}$^")


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
        elif ch in _META:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch) if ch not in "/-!" else ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(r"(?!)")


class PatternMatcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for p in patterns:
            excl = p.startswith("!")
            body = p[1:] if excl else p
            if not body:
                continue
            self.patterns.append(Pattern(body, excl, _compile(body)))

    @classmethod
    def from_file_content(cls, content: str) -> PatternMatcher:
        return cls(read_patterns(content))

    def matches(self, path: str) -> bool:
        """Is ``path`` (relative, '/'-separated) excluded?"""
        path = posixpath.normpath(path.lstrip("/"))
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            hit = bool(p.regex.match(path))
            if not hit and parents:
                for i in range(len(parents)):
                    if p.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched
