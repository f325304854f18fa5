"""Throttled transfer progress in dockerd's shape."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..images.progress import progress_message

Emit = Callable[[dict[str, Any]], None]


def status(emit: Emit, ident: str, action: str) -> None:
    """``progress.Update``: ``{"status", "progressDetail": {}, "id"}``."""
    emit({"status": action, "progressDetail": {}, "id": ident})


def message(emit: Emit, ident: str, text: str) -> None:
    """``progress.Message``: ``{"status", "id"}`` (no progressDetail)."""
    emit({"status": text, "id": ident} if ident else {"status": text})


class Meter:
    """Counts bytes; reports at most every 1% (512 kB cap) and 10 times a second, and at the end."""

    def __init__(self, emit: Emit, ident: str, action: str, total: int) -> None:
        self.emit, self.ident, self.action, self.total = emit, ident, action, total
        self.current = 0
        self._last_bytes = 0
        self._last_time = 0.0
        self._every = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024

    def add(self, n: int) -> None:
        self.current += n
        if self.current - self._last_bytes <= self._every and self.current != self.total:
            return
        now = time.monotonic()
        if self.current != self.total and now - self._last_time < 0.1:
            return
        self._last_time = now
        self._last_bytes = self.current
        self.emit(progress_message(self.action, self.ident, self.current, self.total))
