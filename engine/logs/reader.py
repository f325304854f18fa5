"""Reading json-file logs: since/until/tail/follow, across rotated files.

All file access runs in threads (asyncio.to_thread); the event loop only waits.  Follow mode
wakes on inotify events for the log's directory (ctypes; a short poll is the fallback and a
safety net) and follows the live file across rotation and truncation.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gzip
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_BATCH_BYTES = 256 * 1024
_BACK_BLOCK = 64 * 1024
_POLL_SECONDS = 1.0          # safety net even when inotify works
_POLL_SECONDS_NO_INOTIFY = 0.1

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class LogEntry:
    stream: str                 # "stdout" / "stderr"
    data: bytes                 # the message, newline included unless it was a partial line
    time: str                   # as written in the file (RFC3339Nano)
    time_ns: int                # unix nanoseconds
    attrs: dict[str, str] = field(default_factory=dict)


def parse_time(text: str) -> int:
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"bad log time {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    import calendar

    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_line(line: bytes) -> LogEntry | None:
    """One file line -> LogEntry; None for a line that is not a log entry (torn write, garbage)."""
    try:
        obj = json.loads(line)
        text = obj.get("log", "")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone \\udXXX escape: Go decodes it as U+FFFD.
            data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
        stamp = obj.get("time", "")
        attrs = obj.get("attrs") or {}
        return LogEntry(stream=obj.get("stream", ""), data=data, time=stamp, time_ns=parse_time(stamp),
                        attrs={str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else {})
    except (ValueError, AttributeError, TypeError):
        return None


def log_files(path: Path) -> list[Path]:
    """The log's files, oldest first: rotated ones (path.N[.gz] ... path.1[.gz]), then path."""
    rotated: dict[int, Path] = {}
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        gz = rest.endswith(".gz")
        num = rest[:-3] if gz else rest
        if num.isdigit():
            # While dockerd-style compression runs, path.1 and path.1.gz may both exist
            # (same content): prefer the plain one.
            if gz and int(num) in rotated:
                continue
            rotated[int(num)] = path.parent / name
    return [rotated[n] for n in sorted(rotated, reverse=True)] + [path]


class _Cursor:
    """A sequential reader of one open file that returns complete lines only (sync)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.rest = b""
        self.retired = False    # rotated away; read what is left, then move on

    @property
    def ino(self) -> int:
        return os.fstat(self.f.fileno()).st_ino

    def read_lines(self, limit: int = _BATCH_BYTES) -> list[bytes]:
        chunk = self.f.read(limit)
        if not chunk:
            return []
        data = self.rest + chunk
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        return data[:cut].splitlines()

    def close(self) -> None:
        self.f.close()


def _open(path: Path, offset: int = 0) -> _Cursor | None:
    try:
        if path.name.endswith(".gz"):
            f = _decompressed(path)
        else:
            f = open(path, "rb")
    except (FileNotFoundError, OSError, EOFError, zlib.error):
        return None
    if offset:
        f.seek(offset)
    return _Cursor(f)


def _decompressed(path: Path) -> BinaryIO:
    """A rotated, gzipped log file as an anonymous temp file (gone when closed)."""
    tmp = tempfile.TemporaryFile()
    try:
        with gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp


def _open_all(path: Path, since_ns: int | None = None) -> list[_Cursor | None]:
    """Open every file of the log at once, so a rotation while we read cannot shift names under us.

    A compressed file whose last entry is older than `since` is not even decompressed
    (dockerd's gzip header carries that time)."""
    out: list[_Cursor | None] = []
    for p in log_files(path):
        if since_ns is not None and p.name.endswith(".gz"):
            last = _gz_last_time(p)
            if last is not None and last < since_ns:
                out.append(None)
                continue
        out.append(_open(p))
    return out


def _gz_last_time(path: Path) -> int | None:
    """The `lastTime` in a gzip member's FEXTRA field, as written by dockerd and by us."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:3] != b"\x1f\x8b\x08" or not head[3] & 0x04:
                return None
            xlen = int.from_bytes(head[10:12], "little")
            meta = json.loads(f.read(xlen))
        return parse_time(meta["lastTime"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _tail_start(files: list[BinaryIO | None], n: int) -> tuple[int, int]:
    """Where to start reading so that exactly the last `n` lines come out: (file index, offset).

    Reads backwards in blocks from the newest file; the files are open and positioned at 0.
    """
    last = len(files) - 1
    if n <= 0:
        f = files[last]
        return last, (os.fstat(f.fileno()).st_size if f is not None else 0)
    need = n
    for idx in range(last, -1, -1):
        f = files[idx]
        if f is None:
            continue
        end = os.fstat(f.fileno()).st_size
        pos = end
        first = True
        while pos > 0:
            start = max(0, pos - _BACK_BLOCK)
            block = os.pread(f.fileno(), pos - start, start)
            if first and block.endswith(b"\n"):
                # A trailing newline ends the last line; it does not start another one.
                block = block[:-1]
            first = False
            i = len(block)
            while True:
                i = block.rfind(b"\n", 0, i)
                if i < 0:
                    break
                need -= 1
                if need == 0:
                    return idx, start + i + 1
            pos = start
        if end > 0:
            need -= 1       # the file's first line
            if need == 0:
                return idx, 0
    return 0, 0


def _successor(cur: _Cursor, path: Path) -> _Cursor | None:
    """The file written after `cur`'s, which has been rotated away.

    If our file is now path.K, the next one is path.(K-1) (or path itself): reading that
    instead of jumping to the live file loses nothing even when the writer rotated more
    than once since our last read.  With max-file=1 the old file is unlinked: go live.
    """
    ino = cur.ino
    files = log_files(path)
    for i, p in enumerate(files[:-1]):
        try:
            if os.stat(p).st_ino == ino:
                nxt = _open(files[i + 1])
                if nxt is not None:
                    return nxt
                break
        except FileNotFoundError:
            continue
    return _open(path)


class _Waker:
    """Wakes a follower when the log's directory changes (inotify), else by polling."""

    IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = \
        0x2, 0x8, 0x40, 0x80, 0x100, 0x200
    IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
    _libc: ctypes.CDLL | None = None

    def __init__(self, directory: Path) -> None:
        self.fd = -1
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        try:
            libc = self._load()
            fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
            if fd < 0:
                return
            mask = (self.IN_MODIFY | self.IN_CLOSE_WRITE | self.IN_MOVED_FROM | self.IN_MOVED_TO
                    | self.IN_CREATE | self.IN_DELETE)
            if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
                os.close(fd)
                return
            self.fd = fd
            self.loop.add_reader(fd, self._on_ready)
        except (OSError, AttributeError):
            self.fd = -1

    @classmethod
    def _load(cls) -> ctypes.CDLL:
        if cls._libc is None:
            cls._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return cls._libc

    def _on_ready(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass
        except OSError:
            pass
        self.event.set()

    async def wait(self, stopped: asyncio.Event, timeout: float | None) -> None:
        poll = _POLL_SECONDS if self.fd >= 0 else _POLL_SECONDS_NO_INOTIFY
        if timeout is not None:
            poll = max(0.0, min(poll, timeout))
        waiters = [asyncio.ensure_future(self.event.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self.event.clear()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


async def read_logs(path: Path, *, since_ns: int | None, until_ns: int | None, tail: int | None,
                    follow: bool, stopped: asyncio.Event) -> AsyncIterator[LogEntry]:
    """Yield a container's log entries, oldest first.

    tail: None = all, N = only the last N lines (0 = none; then follow shows only new ones).
    since/until filter by entry time (tail is applied first, as dockerd does).  With `follow`,
    new entries keep coming until `stopped` is set; then the file is drained to its end.
    """
    path = Path(path)
    cursors = await asyncio.to_thread(_open_all, path, since_ns) or [None]
    idx, offset = 0, 0
    if tail is not None:
        idx, offset = await asyncio.to_thread(_tail_start, [c.f if c else None for c in cursors], tail)
    for i, c in enumerate(cursors):
        if c is not None and (i < idx):
            c.close()
    if cursors[idx] is not None and offset:
        cursors[idx].f.seek(offset)  # type: ignore[union-attr]  # checked not None on the line above
    pending = cursors[idx:]

    def keep(e: LogEntry) -> int:
        """1 = yield, 0 = skip, -1 = past `until`: stop."""
        if until_ns is not None and e.time_ns > until_ns:
            return -1
        if since_ns is not None and e.time_ns < since_ns:
            return 0
        return 1

    def read_batch(cur: _Cursor) -> list[LogEntry]:
        out = []
        for line in cur.read_lines():
            e = parse_line(line)
            if e is not None:
                out.append(e)
        return out

    cur: _Cursor | None = None
    waker: _Waker | None = None
    try:
        # History: the rotated files, each read to its end.
        while len(pending) > 1:
            c = pending.pop(0)
            if c is None:
                continue
            try:
                while batch := await asyncio.to_thread(read_batch, c):
                    for e in batch:
                        k = keep(e)
                        if k < 0:
                            return
                        if k:
                            yield e
            finally:
                c.close()   # closing a regular file does not block; safe even when cancelled
        cur = pending.pop(0) if pending else None
        # The live file, and with `follow` whatever comes after it.
        while True:
            final = stopped.is_set() or not follow
            if cur is None:
                cur = await asyncio.to_thread(_open, path, 0)
            if cur is not None:
                batch = await asyncio.to_thread(read_batch, cur)
                if batch:
                    for e in batch:
                        k = keep(e)
                        if k < 0:
                            return
                        if k:
                            yield e
                    continue
                change = "rotated" if cur.retired else await asyncio.to_thread(_replaced, cur, path)
                if change == "rotated":
                    if not cur.retired:
                        # Renamed or unlinked after the writer's last write to it, which may
                        # have landed after our last read: read it to its end once more.
                        cur.retired = True
                        continue
                    old = cur
                    cur = await asyncio.to_thread(_successor, old, path)
                    old.close()
                    continue
                if change == "truncated":
                    cur.f.seek(0)
                    cur.rest = b""
                    continue
            if final:
                return
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if waker is None:
                waker = _Waker(path.parent)
            timeout = None if until_ns is None else max(0.0, (until_ns - time.time_ns()) / 1e9)
            await waker.wait(stopped, timeout)
    finally:
        if waker is not None:
            waker.close()
        for c in [cur, *pending]:
            if c is not None:
                c.close()


def _replaced(cur: _Cursor, path: Path) -> str:
    """At EOF of `cur`: "rotated" (a new file is at `path`), "truncated" (max-file=1) or ""."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ""
    if st.st_ino != cur.ino:
        return "rotated"
    if st.st_size < cur.f.tell():
        return "truncated"
    return ""
