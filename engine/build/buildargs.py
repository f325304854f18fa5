"""Build arguments: what ``--build-arg`` gave, what ``ARG`` declared, what was used.

As in the classic builder: a value from ``--build-arg`` wins over the ``ARG``
default; only declared args (and the predefined proxy args) reach RUN's
environment; declared, non-predefined args that RUN sees become part of the
step's cache key (``|N a=b ...``); args given but never declared are reported
once at the end ("were not consumed").
"""
from __future__ import annotations

PREDEFINED = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class BuildArgs:
    def __init__(self, given: dict[str, str | None]) -> None:
        self.given = dict(given)
        self.meta: dict[str, str | None] = {}      # ARGs before the first FROM
        self.allowed: dict[str, str | None] = {}   # ARGs declared in the current stage
        self.referenced: set[str] = set()

    def clone_for_stage(self) -> BuildArgs:
        out = BuildArgs(self.given)
        out.meta = dict(self.meta)
        out.referenced = self.referenced   # shared: the warning covers the whole build
        return out

    def add_meta(self, name: str, default: str | None) -> None:
        self.meta[name] = default
        self.referenced.add(name)

    def declare(self, name: str, default: str | None) -> None:
        if default is None and name in self.meta:
            default = self.meta[name] if name not in self.given else None
        self.allowed[name] = default
        self.referenced.add(name)

    def _value(self, name: str, default: str | None) -> str | None:
        if name in self.given and self.given[name] is not None:
            return self.given[name]
        return default

    def meta_env(self) -> list[str]:
        """The meta args' values, for expanding FROM."""
        out = []
        for name, default in self.meta.items():
            value = self._value(name, default)
            if value is not None:
                out.append(f"{name}={value}")
        return out

    def filtered(self, env: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
        """Declared args with a value, minus those ENV already sets (ENV wins)."""
        set_by_env = {e.split("=", 1)[0] for e in env}
        out: list[tuple[str, str]] = []
        for name, default in self.allowed.items():
            value = self._value(name, default)
            if value is not None and name not in set_by_env:
                out.append((name, value))
        return out

    def predefined(self, env: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
        """Proxy args given with --build-arg: in RUN's env, not in the cache key or history."""
        set_by_env = {e.split("=", 1)[0] for e in env}
        declared = set(self.allowed)
        return [(n, v) for n in PREDEFINED if (v := self.given.get(n)) is not None
                and n not in set_by_env and n not in declared]

    def unused(self) -> list[str]:
        return sorted(n for n in self.given if n not in self.referenced and n not in PREDEFINED)
