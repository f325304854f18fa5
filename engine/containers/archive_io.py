"""Big-block I/O of the docker cp helper on the client's own connection.

For a plain (unix or TCP) connection the daemon hands the helper a duplicate of the client's
socket, so a 100 MB copy does not pass through the daemon's event loop, its HTTP parser and a
pipe: the helper reads the request body itself (``BodyReader``: the bytes the daemon had
already received, then the socket; the body framed by HTTP/1.1's chunked coding or by a
length) and writes the response body itself (``Sink``: chunked coding, file contents by
sendfile).  The daemon keeps the HTTP exchange (request head, response head, last chunk).

The socket is non-blocking (the flag belongs to the open file the daemon shares): every read
and write here waits with poll when the kernel says EAGAIN.  The body is read ahead by a
thread (2 MiB at most), so the client's upload goes on while files are written, as dockerd's
reading and untar processes overlap.
"""
from __future__ import annotations

import io
import os
import queue
import select
import stat as st
import tarfile
import threading
from typing import Any

_BUF = 1 << 20
# The blocks the body is read in (by a thread, ahead of the file writes): small enough to stay
# in the CPU cache between the socket read and the file write (cold 1 MiB buffers made those
# copies several times slower here).
_RING = 64 << 10
_SMALL_FILE = 64 << 10       # smaller files are read and gathered; bigger ones go by sendfile
_MAX_LINE = 4096             # a chunk-size line (with extensions) or a trailer line


class BodyError(Exception):
    """The request body is not what its framing says (or the client went away in it)."""


def _wait(fd: int, events: int) -> None:
    poller = select.poll()
    poller.register(fd, events)
    poller.poll()


def write_all(fd: int, pieces: list[bytes | bytearray | memoryview]) -> None:
    views = [memoryview(p) for p in pieces if len(p)]
    while views:
        try:
            n = os.writev(fd, views[:512])
        except BlockingIOError:
            _wait(fd, select.POLLOUT)
            continue
        except InterruptedError:
            continue
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


class _Prefetch(threading.Thread):
    """Reads the socket ahead (up to 2 MiB) while the files are written: the client's upload
    goes on instead of waiting for each file write."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.blocks: queue.Queue[bytes | OSError] = queue.Queue(maxsize=32)
        self._fd = fd

    def run(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self._fd, _RING)
                except BlockingIOError:
                    _wait(self._fd, select.POLLIN)
                    continue
                except InterruptedError:
                    continue
                self.blocks.put(data)
                if not data:
                    return
        except OSError as err:
            self.blocks.put(err)


class BodyReader:
    """A file-like ``read`` over the request body: ``prefix`` first, then ``fd``.

    ``chunked``: the body is in chunked coding (decoded here, up to its last chunk and
    trailers); otherwise it is ``length`` bytes.  ``tell``/forward ``seek`` let tarfile read
    it in its random-access mode, whose big reads go straight into the extracted files."""

    def __init__(self, fd: int, prefix: bytes, *, chunked: bool, length: int = 0) -> None:
        self._fd = fd
        self._mem = bytes(prefix)
        self._view = memoryview(self._mem)
        self._start, self._end = 0, len(prefix)
        self._chunked = chunked
        self._left = 0 if chunked else length     # data bytes left in this chunk / in the body
        self._after_chunk = False                 # a CRLF follows the current chunk's data
        self._done = not chunked and length == 0
        self._pos = 0
        self._unread = b""
        self._ahead: _Prefetch | None = None

    # -- raw bytes -------------------------------------------------------------------------
    def _fill(self) -> None:
        """The next block read ahead from the socket becomes the buffer (after what is left)."""
        if self._ahead is None:
            self._ahead = _Prefetch(self._fd)
            self._ahead.start()
        block = self._ahead.blocks.get()
        if isinstance(block, OSError):
            raise block
        if not block:
            raise BodyError("unexpected EOF")
        # (a leftover is at most a chunk-size line cut by the block's end)
        data = block if self._start == self._end else bytes(self._view[self._start:self._end]) + block
        self._mem, self._view = data, memoryview(data)
        self._start, self._end = 0, len(data)

    def _line(self) -> bytes:
        while True:
            i = self._mem.find(b"\n", self._start, self._end)
            if i >= 0:
                line = bytes(self._mem[self._start:i + 1])
                self._start = i + 1
                return line
            if self._end - self._start > _MAX_LINE:
                raise BodyError("invalid byte in chunk length")
            self._fill()

    def _next_chunk(self) -> None:
        if self._after_chunk:
            if self._line() not in (b"\r\n", b"\n"):
                raise BodyError("malformed chunked encoding")
            self._after_chunk = False
        text = self._line().rstrip(b"\r\n").split(b";", 1)[0].strip()
        if not text or any(c not in b"0123456789abcdefABCDEF" for c in text):
            raise BodyError("invalid byte in chunk length")
        size = int(text, 16)
        if size == 0:
            while self._line() not in (b"\r\n", b"\n"):    # trailers, up to the empty line
                pass
            self._done = True
            return
        self._left = size
        self._after_chunk = True

    # -- file-like -------------------------------------------------------------------------
    def read(self, n: int | None = -1) -> bytes | bytearray:
        want = (1 << 62) if n is None or n < 0 else n
        first = b""
        if self._unread:
            first, self._unread = self._unread[:want], self._unread[want:]
            self._pos += len(first)
            want -= len(first)
            if not want:
                return first
        out = bytearray(min(want, _BUF))
        got = 0
        while got < want and not self._done:
            if self._left == 0:
                if not self._chunked:
                    self._done = True
                    break
                self._next_chunk()
                continue
            if self._start == self._end:
                self._fill()
            take = min(self._left, want - got, self._end - self._start)
            if got + take > len(out):
                out.extend(bytes(got + take - len(out)))
            out[got:got + take] = self._view[self._start:self._start + take]
            self._start += take
            self._left -= take
            got += take
        self._pos += got
        del out[got:]
        if first:
            return first + out
        return out if got >= _SMALL_FILE else bytes(out)

    def read_view(self, limit: int) -> memoryview:
        """Up to ``limit`` body bytes as they sit in the buffer (valid until the next read);
        empty at the end of the body."""
        if self._unread:
            data = self.read(min(limit, len(self._unread)))
            return memoryview(data)
        while not self._done and self._left == 0:
            if not self._chunked:
                self._done = True
                break
            self._next_chunk()
        if self._done or limit <= 0:
            return memoryview(b"")
        if self._start == self._end:
            self._fill()
        take = min(self._left, limit, self._end - self._start)
        view = self._view[self._start:self._start + take]
        self._start += take
        self._left -= take
        self._pos += take
        return view

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos < self._pos:
            raise io.UnsupportedOperation("the request body can only be skipped forward")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, _BUF)):
                break
        return self._pos

    def drain(self, limit: int) -> None:
        """Read what is left of the body (up to ``limit`` bytes), so the exchange ends cleanly."""
        while not self._done and limit > 0:
            data = self.read(min(limit, _BUF))
            if not data:
                break
            limit -= len(data)

    def unread(self, data: bytes) -> None:
        """Give back bytes just read: the next reads return them first."""
        self._unread = data + self._unread
        self._pos -= len(data)

def extract_file(tf: tarfile.TarFile, info: tarfile.TarInfo, target: str) -> None:
    """tarfile's ``makefile`` for a body read off the socket: the data goes from the socket's
    buffer straight into the file, with no copy in between (a sparse member takes tarfile's way)."""
    source = tf.fileobj
    if not isinstance(source, BodyReader) or info.sparse is not None:
        tarfile.TarFile.makefile(tf, info, target)
        return
    source.seek(info.offset_data)
    left = info.size
    with open(target, "wb", buffering=0) as out:
        while left:
            view = source.read_view(left)
            if not view:
                raise tarfile.ReadError("unexpected end of data")
            left -= len(view)
            while view:
                view = view[out.write(view) or 0:]


class Sink:
    """The response body, written on the client's socket: in chunked coding (one chunk per
    flush) or as it is; small pieces gathered into ~1 MiB writes, file contents by sendfile."""

    def __init__(self, fd: int, *, chunked: bool) -> None:
        self._fd = fd
        self._chunked = chunked
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self._size += len(data)
            if self._size >= _BUF:
                self.flush()

    def _head(self, size: int) -> list[bytes]:
        return [b"%x\r\n" % size] if self._chunked and size else []

    def flush(self) -> None:
        if self._size:
            tail = [b"\r\n"] if self._chunked else []
            write_all(self._fd, [*self._head(self._size), *self._pending, *tail])
            self._pending, self._size = [], 0

    def sendfile(self, src: int, count: int, tail: bytes) -> None:
        """``count`` bytes of file ``src`` then ``tail``, after what is gathered, as one chunk."""
        write_all(self._fd, [*self._head(self._size + count + len(tail)), *self._pending])
        self._pending, self._size = [], 0
        offset = 0
        while offset < count:
            try:
                n = os.sendfile(self._fd, src, offset, count - offset)
            except BlockingIOError:
                _wait(self._fd, select.POLLOUT)
                continue
            except InterruptedError:
                continue
            if n == 0:
                raise OSError("unexpected end of data (the file shrank while it was copied)")
            offset += n
        write_all(self._fd, [tail, b"\r\n" if self._chunked else b""])


def _read_exactly(fd: int, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        data = os.read(fd, size - got)
        if not data:
            raise OSError("unexpected end of data")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def write_tar(src: str, arcname: str, sink: Sink) -> None:
    """``src`` (recursively) as a PAX tar, byte for byte what ``TarFile.add`` writes, with
    file contents sent from the page cache (sendfile) instead of copied through Python."""
    tf = tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)   # headers, link table
    offset = 0

    def add(name: str, arc: str) -> None:
        nonlocal offset
        info = tf.gettarinfo(name, arc)
        if info is None:     # a socket: tarfile leaves it out too
            return
        head: Any = info.tobuf(tf.format, tf.encoding, tf.errors)
        offset += len(head)
        if info.isreg():
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if not st.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(f"{name} changed while it was archived")
                pad = b"\0" * (-info.size % tarfile.BLOCKSIZE)
                if info.size < _SMALL_FILE:
                    sink.write(head + _read_exactly(fd, info.size) + pad)
                else:
                    sink.write(head)
                    sink.sendfile(fd, info.size, pad)
            finally:
                os.close(fd)
            offset += info.size + len(pad)
        else:
            sink.write(head)
            if info.isdir():
                for entry in sorted(os.listdir(name)):
                    add(os.path.join(name, entry), os.path.join(arc, entry))

    add(src, arcname)
    end = tarfile.BLOCKSIZE * 2
    offset += end
    end += -offset % tarfile.RECORDSIZE
    sink.write(b"\0" * end)
    sink.flush()
