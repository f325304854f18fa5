"""What this daemon can do, by name: its container runtimes and the drivers it has registered.

`/info` reports exactly this (Plugins, Runtimes), so it says only what is true: a driver appears
the day the code behind it registers itself here in the composition root, never before.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidParameter

# dockerd's name for its stock runtime; pydockerd's own native runtime answers to it.
DEFAULT_RUNTIME = "runc"
# What /info shows as the runtime's path: there is no runc binary, the shim and init are pydockerd's.
NATIVE_RUNTIME_PATH = "pydockerd-native"


@dataclass(frozen=True)
class PluginList:
    """`/info`'s Plugins: driver names per kind, each list sorted like dockerd's."""

    volume: tuple[str, ...]
    network: tuple[str, ...]
    log: tuple[str, ...]


class Plugins:
    """The registry the composition root fills; services ask it instead of hard-coding names."""

    def __init__(self) -> None:
        self._runtimes: dict[str, str] = {}  # name -> what /info shows as its path
        self._volume: set[str] = set()
        self._network: set[str] = set()
        self._log: set[str] = set()

    def register_runtime(self, name: str, path: str) -> None:
        self._runtimes[name] = path

    def register_volume_driver(self, name: str) -> None:
        self._volume.add(name)

    def register_network_driver(self, name: str) -> None:
        self._network.add(name)

    def register_log_driver(self, name: str) -> None:
        self._log.add(name)

    def runtimes(self) -> dict[str, str]:
        return dict(sorted(self._runtimes.items()))

    def listing(self) -> PluginList:
        return PluginList(volume=tuple(sorted(self._volume)), network=tuple(sorted(self._network)),
                          log=tuple(sorted(self._log)))

    def check_runtime(self, name: str) -> None:
        """HostConfig.Runtime: "" means the default; any other name must be registered (dockerd's words)."""
        if name and name not in self._runtimes:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")


def stock_runtimes() -> Plugins:
    """A registry with only the default runtime: for services built without the composition root."""
    plugins = Plugins()
    plugins.register_runtime(DEFAULT_RUNTIME, NATIVE_RUNTIME_PATH)
    return plugins
