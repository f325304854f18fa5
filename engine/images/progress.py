"""dockerd's JSON progress messages (``{"status": ..., "progressDetail": ...}``)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, BinaryIO

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits ("1.295MB", "512B")."""
    i = 0
    while size >= 1000 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int) -> str:
    """The ``progress`` text dockerd sends when it has no terminal (width 200)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * max(50 - pct, 0) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else ""
    return bar + numbers


def progress_message(action: str, ident: str, current: int, total: int) -> dict[str, Any]:
    detail: dict[str, int] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    return {"status": action, "progressDetail": detail, "progress": progress_bar(current, total), "id": ident}


class ProgressReader:
    """Wraps a file; reports reads like dockerd's progress.Reader: at most every
    1% (or 512 kB) and 10 times a second, and always once at the end."""

    def __init__(self, raw: BinaryIO, total: int, ident: str, action: str,
                 emit: Callable[[dict[str, Any]], None]) -> None:
        self._raw = raw
        self.total = total
        self.current = 0
        self._ident = ident
        self._action = action
        self._emit = emit
        self._last_update = 0
        self._last_time = 0.0
        self._every = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024
        self._finished = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.current += len(data)
        if not data or self.current - self._last_update > self._every:
            self._update(last=not data)
            self._last_update = self.current
        return data

    def _update(self, last: bool) -> None:
        # Like dockerd: the end is reported when reached and again at EOF.
        now = time.monotonic()
        if last or self.current == self.total or now - self._last_time >= 0.1:
            if last:
                if self._finished:
                    return
                self._finished = True
            if not (last or self.current == self.total):
                self._last_time = now
            self._emit(progress_message(self._action, self._ident, self.current, self.total))

    def advance_to(self, position: int) -> None:
        """Report progress made without ``read`` (contents copied by the kernel)."""
        self.current = min(position, self.total) if self.total > 0 else position
        if self.current - self._last_update > self._every:
            self._update(last=False)
            self._last_update = self.current

    def finish(self) -> None:
        """Report the end if the reader was not read to EOF."""
        if not self._finished:
            self._update(last=True)

    def readable(self) -> bool:
        return True
