"""dockerd's json-file log driver: the writer (used in the shim) and the format helpers.

The writer runs inside the per-container shim, a fresh interpreter on the hot path of
`docker run`, so this module imports only light stdlib modules.  The async reader lives
in `engine.logs.reader` and is re-exported here lazily (`read_logs`, `LogEntry`).

Byte compatibility with dockerd (checked against a dockerd 20.10 log file, see
tests/support/fixtures/): one JSON object per line, keys in the order log, stream,
time; the string escaping of moby's hand-written encoder (which differs from Go's
encoding/json: TAB, BS and FF become \\u0009/\\u0008/\\u000c, DEL passes raw); Go's
RFC3339Nano time with the fraction's trailing zeros trimmed.
"""
from __future__ import annotations

import os
import re
import time

from engine.timeutil import format_ns

TYPE_CHECKING = False
if TYPE_CHECKING:     # pathlib and typing cost ~6 ms at import; the shim needs neither
    from typing import Any

# dockerd's log copier reads into a 16 KiB buffer; a line longer than that is logged as
# 16 KiB "partial" messages (no trailing newline in "log") followed by the rest.
PARTIAL_LINE_LIMIT = 16 * 1024

_HEX = "0123456789abcdef"


def _escape_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for b in range(0x20):
        table[chr(b)] = "\\u00" + _HEX[b >> 4] + _HEX[b & 0xF]
    table["\n"] = "\\n"
    table["\r"] = "\\r"
    table['"'] = '\\"'
    table["\\"] = "\\\\"
    # HTML-sensitive characters are escaped like Go does.
    for ch in "<>&":
        table[ch] = "\\u00" + _HEX[ord(ch) >> 4] + _HEX[ord(ch) & 0xF]
    # JavaScript line terminators.
    table["\u2028"] = "\\u2028"
    table["\u2029"] = "\\u2029"
    # Invalid UTF-8: decoding with surrogateescape turns each bad byte into one lone
    # surrogate, and Go's DecodeRune also rejects exactly one byte at a time, so each
    # becomes one \ufffd — the same count as dockerd writes.
    for b in range(0x80, 0x100):
        table[chr(0xDC00 + b)] = "\\ufffd"
    return table


# The slow path's table and regex are built on first use: most containers never print a
# byte that needs them, and building them costs ~1.5 ms of every shim's start.
_slow: tuple[re.Pattern[str], dict[str, str]] | None = None


def _escape_text(text: str) -> str:
    global _slow
    if _slow is None:
        _slow = (re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]'), _escape_table())
    pattern, table = _slow
    return pattern.sub(lambda m: table[m.group()], text)


# Bytes that never need escaping: printable ASCII other than " \\ < > &.
_PLAIN = re.compile(rb'[^\x20-\x7e]|["\\<>&]')


def encode_string(data: bytes) -> bytes:
    """`data` as a JSON string literal (with quotes), escaped exactly like dockerd's jsonlog."""
    # Fast path for the common log line: plain ASCII with a final newline.
    body = data[:-1] if data.endswith(b"\n") else data
    if not _PLAIN.search(body):
        return b'"' + body + (b'\\n"' if body is not data else b'"')
    text = data.decode("utf-8", "surrogateescape")
    return b'"' + _escape_text(text).encode("utf-8") + b'"'


format_time = format_ns  # Go's RFC3339Nano, as everywhere else (engine.timeutil)


def encode_entry(stream: str, data: bytes, time_ns: int, attrs: bytes | None = None) -> bytes:
    """One log file line, newline included.  `attrs` is a pre-encoded JSON object or None."""
    suffix = _entry_suffix(stream, attrs, format_time(time_ns))
    if not data:
        # dockerd omits an empty "log" (only an empty partial message could be one).
        return b"{" + suffix[1:]
    return b'{"log":' + encode_string(data) + suffix


def _entry_suffix(stream: str, attrs: bytes | None, stamp: str) -> bytes:
    """Everything after the "log" value: `,"stream":...,"attrs":...,"time":"..."}\n`."""
    parts = []
    if stream:
        parts.append(b'"stream":' + encode_string(stream.encode()))
    if attrs:
        parts.append(b'"attrs":' + attrs)
    parts.append(b'"time":"' + stamp.encode() + b'"')
    return b"," + b",".join(parts) + b"}\n"


def rotated_paths(path: str | os.PathLike[str], max_files: int) -> list[str]:
    """All files of one (uncompressed) log, oldest first: path.(N-1) ... path.1, path."""
    base = os.fspath(path)
    return [f"{base}.{i}" for i in range(max_files - 1, 0, -1)] + [base]


class JsonFileWriter:
    """Appends a container's output to its json-file log, splitting it into messages like dockerd.

    Not thread-safe; the shim calls it from its single loop.
    """

    def __init__(self, path: str | os.PathLike[str], max_size: int | None = None, max_files: int = 1,
                 attrs: dict[str, str] | None = None, compress: bool = False) -> None:
        self.path = os.fspath(path)
        self.max_size = max_size if max_size and max_size > 0 else None
        self.max_files = max(1, max_files)
        # Like dockerd: rotated files are gzipped (path.N.gz) when compress and max-file > 1.
        self.compress = compress and self.max_files > 1
        self._compressor: Any = None       # the thread gzipping the last rotated file
        self._last_ns = 0
        self._attrs = _encode_attrs(attrs) if attrs else None
        self._partial: dict[str, bytearray] = {}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Log a chunk of a stream's output: every complete line becomes one message."""
        buf = self._partial.get(stream)
        if buf is None:
            buf = self._partial[stream] = bytearray()
        buf += data
        start = 0
        out = []
        now = time.time_ns()
        # All messages of one chunk share the time, so their common tail is built once.
        suffix = _entry_suffix(stream, self._attrs, format_time(now))
        limit = PARTIAL_LINE_LIMIT
        while True:
            # dockerd's buffer holds 16 KiB from the start of the current line: a newline
            # within it ends a message; a full buffer without one is flushed as a partial
            # message (so a line of exactly 16 KiB comes out as 16 KiB, then a lone "\n").
            nl = buf.find(b"\n", start, start + limit)
            if nl >= 0:
                out.append(b'{"log":' + encode_string(bytes(buf[start:nl + 1])) + suffix)
                start = nl + 1
            elif len(buf) - start >= limit:
                out.append(b'{"log":' + encode_string(bytes(buf[start:start + limit])) + suffix)
                start += limit
            else:
                break
        if start:
            del buf[:start]
        if out:
            self._write_lines(out)
            self._last_ns = now

    def flush_partial(self, stream: str | None = None) -> None:
        """Log what is left of unterminated lines (dockerd does this when a stream ends)."""
        streams = [stream] if stream is not None else list(self._partial)
        now = time.time_ns()
        for name in streams:
            buf = self._partial.get(name)
            if buf:
                self._write_lines([encode_entry(name, bytes(buf), now, self._attrs)])
                buf.clear()
                self._last_ns = now

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush_partial()
        finally:
            os.close(self._fd)
            self._fd = -1
            self._wait_compressor()

    def __enter__(self) -> JsonFileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _write_lines(self, lines: list[bytes]) -> None:
        """Append entries with as few write(2)s as rotation allows."""
        batch: list[bytes] = []
        pending = 0
        for line in lines:
            # dockerd checks the size before each entry, so a file may exceed max-size by one entry.
            if self.max_size is not None and self._size + pending >= self.max_size:
                self._write_all(b"".join(batch))
                batch, pending = [], 0
                self._rotate()
            batch.append(line)
            pending += len(line)
        self._write_all(b"".join(batch) if len(batch) > 1 else batch[0])

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.max_files > 1:
            self._wait_compressor()
            ext = ".gz" if self.compress else ""
            _unlink(f"{self.path}.{self.max_files - 1}{ext}")
            for i in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}{ext}", f"{self.path}.{i}{ext}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
            if self.compress:
                # dockerd compresses in the background too; readers find either the plain
                # path.1 or the finished path.1.gz (written aside, then renamed).
                import threading

                last = self._last_ns
                self._compressor = threading.Thread(target=gzip_rotated, args=(f"{self.path}.1", last),
                                                    name="log-compress", daemon=True)
                self._compressor.start()
        else:
            # max-file=1: like current dockerd, unlink rather than truncate, so that a
            # reader still in the middle of the old file can finish it.
            _unlink(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        self._size = 0

    def _wait_compressor(self) -> None:
        if self._compressor is not None:
            self._compressor.join()
            self._compressor = None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def gzip_rotated(src: str, last_ns: int) -> None:
    """src -> src.gz, then unlink src.  The gzip header's extra field carries
    {"lastTime": ...} (the last entry's time) like dockerd's, so readers can skip the file
    for a later `since` without decompressing it."""
    import struct
    import zlib

    extra = b'{"lastTime":"' + format_time(last_ns).encode() + b'"}' if last_ns else b"{}"
    tmp = f"{src}.gz.tmp"
    crc = 0
    size = 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        # gzip member: magic, deflate, FEXTRA, mtime 0, xfl 0, OS unknown (as Go writes it).
        fout.write(b"\x1f\x8b\x08\x04" + struct.pack("<I", 0) + b"\x00\xff"
                   + struct.pack("<H", len(extra)) + extra)
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        while chunk := fin.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            fout.write(comp.compress(chunk))
        fout.write(comp.flush())
        fout.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    os.chmod(tmp, 0o640)
    os.rename(tmp, f"{src}.gz")
    _unlink(src)


def _encode_attrs(attrs: dict[str, str]) -> bytes:
    # Go marshals a map[string]string with sorted keys.
    items = [encode_string(k.encode()) + b":" + encode_string(v.encode()) for k, v in sorted(attrs.items())]
    return b"{" + b",".join(items) + b"}"


def __getattr__(name: str) -> Any:
    # The reader needs asyncio; import it only when someone asks (never in the shim).
    if name in ("read_logs", "LogEntry", "parse_line"):
        from . import reader
        return getattr(reader, name)
    raise AttributeError(name)
