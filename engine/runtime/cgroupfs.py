"""The cgroup file system, file by file: what both cgroup versions read and write.

Only the stdlib's os/errno/time are used: the shim imports this module.
"""
from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any


class CgroupValueError(OSError):
    """The kernel did not take a value as given (runc: "error setting cgroup config")."""


def write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def rmdir_retry(path: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup; EBUSY means tasks are still leaving it, so retry briefly."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def read_int(path: str) -> int | None:
    try:
        return int(read(path).strip())
    except (OSError, ValueError):
        return None  # missing file, or "max"


def read_kv(path: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat, cgroup.events) -> dict."""
    out: dict[str, int] = {}
    try:
        text = read(path)
    except OSError:
        return out
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def read_pids(d: str | None) -> list[int]:
    if not d:
        return []
    try:
        return [int(x) for x in read(os.path.join(d, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def wait_for(cond: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not cond():
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, f"timed out {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def as_int(v: Any) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None
