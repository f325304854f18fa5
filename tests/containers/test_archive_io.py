"""The docker cp helper's socket I/O (archive_io.py): the tar it writes is byte for byte
tarfile's, and a tar read off a socket in chunked coding extracts to the same files."""
from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest

from engine.containers import archive_helper
from engine.containers.archive_io import BodyReader, Sink, write_tar


def _tree(root: Path) -> Path:
    top = root / "top"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "small").write_bytes(b"small\n")
    (top / "big").write_bytes(os.urandom(300_000))
    (top / "sub" / "deeper" / ("long-name-" * 12)).write_bytes(b"x" * 513)
    (top / "sub" / "empty").write_bytes(b"")
    (top / "sub" / "été").write_bytes(b"accents")
    os.link(top / "big", top / "sub" / "hardlink")
    os.symlink("../small", top / "sub" / "link")
    os.mkfifo(top / "fifo")
    os.chmod(top / "small", 0o4751)
    return top


def _drain(sock: socket.socket, out: bytearray) -> None:
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        out += data


def _through_socket(chunked: bool, write: object) -> bytes:
    a, b = socket.socketpair()
    a.setblocking(False)       # as the client's socket the daemon shares
    got = bytearray()
    t = threading.Thread(target=_drain, args=(b, got))
    t.start()
    try:
        write(Sink(a.fileno(), chunked=chunked))  # type: ignore[operator]
    finally:
        a.shutdown(socket.SHUT_WR)
        t.join(10)
        a.close()
        b.close()
    return bytes(got)


def _dechunk(data: bytes) -> bytes:
    """(the last chunk is the daemon's to send: the sink never writes it)"""
    out, pos = bytearray(), 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        assert size > 0
        out += data[end + 2:end + 2 + size]
        assert data[end + 2 + size:end + 4 + size] == b"\r\n"
        pos = end + 4 + size
    return bytes(out)


@pytest.mark.parametrize("chunked", [True, False])
def test_write_tar_is_what_tarfile_writes(tmp_path: Path, chunked: bool) -> None:
    top = _tree(tmp_path)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.add(str(top), arcname="top")
    raw = _through_socket(chunked, lambda sink: write_tar(str(top), "top", sink))
    assert (_dechunk(raw) if chunked else raw) == expected.getvalue()


def _chunked_body(data: bytes, piece: int) -> bytes:
    return b"".join(b"%x\r\n" % len(data[i:i + piece]) + data[i:i + piece] + b"\r\n"
                    for i in range(0, len(data), piece)) + b"0\r\n\r\n"


@pytest.mark.parametrize("piece", [512, 32768, 1 << 20])
def test_put_from_a_chunked_socket_extracts_the_tree(tmp_path: Path, piece: int) -> None:
    top = _tree(tmp_path)
    os.unlink(top / "fifo")
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        tf.add(str(top), arcname="top")
    body = _chunked_body(tar.getvalue(), piece)
    dest = tmp_path / "dest"
    dest.mkdir()
    a, b = socket.socketpair()
    b.setblocking(False)
    feeder = threading.Thread(target=lambda: (a.sendall(body[1000:]), a.shutdown(socket.SHUT_WR)))
    feeder.start()
    try:
        reader = BodyReader(b.fileno(), body[:1000], chunked=True)
        archive_helper.do_put(str(dest), reader, {})
        reader.drain(1 << 20)
    finally:
        feeder.join(10)
        a.close()
        b.close()
    for name in ("small", "big", "sub/hardlink", "sub/empty", "sub/été", "sub/deeper/" + "long-name-" * 12):
        assert (dest / "top" / name).read_bytes() == (top / name).read_bytes()
    assert os.readlink(dest / "top" / "sub" / "link") == "../small"
    assert os.stat(dest / "top" / "small").st_mode & 0o7777 == 0o4751
    assert os.stat(dest / "top" / "big").st_ino == os.stat(dest / "top" / "sub" / "hardlink").st_ino


def test_put_with_a_length_and_a_gzipped_body(tmp_path: Path) -> None:
    import gzip
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        info = tarfile.TarInfo("zipped")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    body = gzip.compress(tar.getvalue())
    a, b = socket.socketpair()
    b.setblocking(False)
    a.sendall(body)
    try:
        archive_helper.do_put(str(tmp_path), BodyReader(b.fileno(), b"", chunked=False, length=len(body)), {})
    finally:
        a.close()
        b.close()
    assert (tmp_path / "zipped").read_bytes() == b"hello"


@pytest.mark.parametrize("entries, needle", [
    ([("../../escape", "file", "")], "is outside of"),
    ([("esc", "sym", "../../.."), ("esc/evil", "file", "")], "invalid symlink"),
    ([("hl", "lnk", "../../etc/passwd")], "invalid hardlink"),
])
def test_hostile_tar_from_the_socket_is_refused(tmp_path: Path, entries: list[tuple[str, str, str]],
                                                needle: str) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        for name, kind, target in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = 1
                tf.addfile(info, io.BytesIO(b"x"))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = target
                tf.addfile(info)
    body = _chunked_body(tar.getvalue(), 100)
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    a, b = socket.socketpair()
    b.setblocking(False)
    a.sendall(body)
    try:
        with pytest.raises(archive_helper.Failure) as err:
            archive_helper.do_put(str(dest), BodyReader(b.fileno(), b"", chunked=True), {})
    finally:
        a.close()
        b.close()
    assert needle in err.value.message
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"], "nothing written outside"
