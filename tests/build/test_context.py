"""The build context's index: the checksums it gives without unpacking equal those of the
unpacked tree, it declines what it cannot describe, and a fully cached rebuild never unpacks."""
from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from engine.build import fsutil
from engine.build.builder import BuildOptions
from engine.build.context import BuildContext, Spool
from engine.build.service import BuildService

from .fake_backend import FakeBackend


def _tar(entries: list[tuple[str, str, bytes | str, int]], compress: str = "") -> bytes:
    """(name, kind "f"/"d"/"l"/"h", content or link target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compress) as t:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1_700_000_000
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind in ("l", "h"):
                ti.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
                ti.linkname = str(data)
                t.addfile(ti)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                ti.size = len(raw)
                t.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


TREE = [
    ("Dockerfile", "f", "FROM busybox\n", 0o644),
    ("data", "d", "", 0o755),
    ("data/b.bin", "f", b"\x00" * 70_000, 0o600),
    ("data/a", "d", "", 0o700),
    ("data/a/x", "f", "x", 0o4755),
    ("data/a.txt", "f", "dot", 0o644),
    ("data/link", "l", "a/x", 0o777),
    ("empty", "d", "", 0o755),
]


def _receive(tmp_path: Path, raw: bytes, name: str = "c", budget: int | None = None) -> BuildContext:
    root = tmp_path / name
    root.mkdir()
    ctx = BuildContext.receive(io.BufferedReader(io.BytesIO(raw)), root, tmp_path / f"{name}.spool")  # type: ignore[arg-type]
    if budget is not None:
        assert ctx._spool is not None
        ctx._spool._budget = budget
    return ctx


@pytest.mark.parametrize("compress", ["", "gz", "xz"])
def test_index_checksums_equal_the_unpacked_tree(tmp_path: Path, compress: str) -> None:
    ctx = _receive(tmp_path, _tar(TREE, compress))
    rels = [".", "data", "data/a", "data/b.bin", "data/a/x", "empty", "Dockerfile"]
    indexed = {r: ctx.checksum(r) for r in rels}
    assert all(indexed.values()), indexed
    assert ctx.read_file("Dockerfile") == b"FROM busybox\n"
    assert ctx.read_file("data/b.bin") == b"\x00" * 70_000
    assert ctx.is_dir("data") and not ctx.is_dir("data/a.txt") and ctx.missing("nope")
    assert not ctx.unpacked and not any(ctx.root.iterdir())
    root = ctx.unpack()
    assert (root / "data/a/x").read_text() == "x"
    for r in rels:
        assert fsutil.checksum(fsutil.resolve(root, r)) == indexed[r], r
    assert ctx.checksum("data") is None   # unpacked: the tree on disk answers from now on


def test_spilled_spool_reads_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", budget=10)
    spool.write(b"0123456789")
    spool.write(b"abcdef")
    assert spool.pread(8, 5) == b"89abc" and spool.pread(12, 10) == b"cdef"
    assert spool.reader().read() == b"0123456789abcdef"
    spool.close()
    assert not (tmp_path / "s").exists()


def test_spilled_context_unpacks_the_same(tmp_path: Path) -> None:
    raw = _tar(TREE)
    small = _receive(tmp_path, raw, "small")
    big = _receive(tmp_path, raw, "big", budget=4096)
    assert big.checksum(".") is not None
    assert fsutil.checksum(big.unpack() / "data") == fsutil.checksum(small.unpack() / "data")


@pytest.mark.parametrize("extra", [
    [("data/hard", "h", "data/a.txt", 0o644)],                 # a hard link
    [("data/a.txt", "f", "again", 0o644)],                     # a name sent twice
    [("implicit/file", "f", "y", 0o644)],                      # a directory without its entry
    [("data/dirlink", "l", "a", 0o777), ("data/dirlink/in", "f", "z", 0o644)],   # a name under a symlink
])
def test_index_declines_what_it_cannot_describe(tmp_path: Path, extra: list[tuple[str, str, str, int]]) -> None:
    ctx = _receive(tmp_path, _tar(TREE + extra))  # type: ignore[operator]
    assert ctx.unpacked and (ctx.root / "Dockerfile").is_file()   # unpacked at once
    assert ctx.checksum("data") is None and ctx.read_file("Dockerfile") is None and not ctx.missing("nope")


def test_paths_through_symlinks_go_to_disk(tmp_path: Path) -> None:
    ctx = _receive(tmp_path, _tar([*TREE, ("alias", "l", "data", 0o777)]))
    assert ctx.checksum("alias/a.txt") is None and not ctx.missing("alias/a.txt")
    assert ctx.checksum("data/a.txt") is not None


def test_cached_rebuild_never_unpacks(tmp_path: Path) -> None:
    (tmp_path / "fake").mkdir()
    backend = FakeBackend(tmp_path / "fake")
    backend.add_image("busybox")
    service = BuildService(backend, tmp_path)   # type: ignore[arg-type]
    raw = _tar([("Dockerfile", "f", "FROM busybox\nWORKDIR /app\nCOPY data/ ./data/\nRUN echo hi\nCOPY . /all\n",
                 0o644), *TREE[1:]])

    def build() -> tuple[str, bool]:
        async def go() -> tuple[str, bool]:
            prepared = await service.prepare(BuildOptions(), io.BufferedReader(io.BytesIO(raw)))  # type: ignore[arg-type]
            try:
                image = await service.run(prepared, lambda m: None)
                return image.id, prepared.context.unpacked
            finally:
                prepared.cleanup()
        return asyncio.run(go())

    first, unpacked_first = build()
    again, unpacked_again = build()
    assert unpacked_first and not unpacked_again and again == first
    assert (backend.trees[first] / "all/data/a/x").read_text() == "x"
