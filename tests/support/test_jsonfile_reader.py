"""read_logs: tail/since/until, follow (inotify), rotation, and reading dockerd's own files."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.logs import reader as reader_module
from engine.logs.jsonfile import JsonFileWriter, LogEntry, encode_entry, read_logs
from engine.logs.reader import _tail_start, log_files, parse_line

FIXTURES = Path(__file__).parent / "fixtures"


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _collect(path: Path, **kw: Any) -> list[LogEntry]:
    kw.setdefault("since_ns", None)
    kw.setdefault("until_ns", None)
    kw.setdefault("tail", None)
    kw.setdefault("follow", False)
    if "stopped" not in kw:
        kw["stopped"] = asyncio.Event()
    return [e async for e in read_logs(path, **kw)]


def _write_numbered(path: Path, n: int, start: int = 0, t0: int = 1_000_000_000_000_000_000) -> None:
    """Entries "0000\\n"... with times t0 + i seconds, written directly (deterministic times)."""
    with open(path, "ab") as f:
        for i in range(start, start + n):
            f.write(encode_entry("stdout" if i % 2 == 0 else "stderr", b"%04d\n" % i, t0 + i * 10**9))


def _numbers(entries: list[LogEntry]) -> list[int]:
    return [int(e.data) for e in entries]


def test_reads_dockerd_file() -> None:
    entries = _run(_collect(FIXTURES / "dockerd-20.10-json-file.log"))
    assert [e.stream for e in entries][:2] == ["stderr", "stdout"]
    tricky = entries[3]
    assert tricky.data == ('a<b>&c"q\\ \t|\x01\x02\x08\x0c\x1b|\x7f|\u2028\u2029|\ufffd|\ufffd\ufffd|'
                           '\ufffd\ufffd\ufffd|é😀|\r\n').encode()
    assert tricky.time == "2026-11-22T21:27:40.871243483Z"
    assert tricky.time_ns == 1795382860_871243483
    assert b"".join(e.data for e in entries if e.stream == "stdout").endswith(b"y" * 16384 + b"\nno newline at end")
    assert [len(e.data) for e in entries[4:7]] == [16384, 16384, 7233]


def test_parse_line_rejects_garbage() -> None:
    assert parse_line(b"{not json") is None
    assert parse_line(b'{"log":"x","stream":"stdout","time":"yesterday"}') is None
    e = parse_line(b'{"log":"\\ud800x","stream":"stdout","attrs":{"a":"b"},"time":"2026-01-01T00:00:00+01:00"}')
    assert e is not None and e.data == "\ufffdx".encode() and e.attrs == {"a": "b"}
    assert e.time_ns == 1767222000 * 10**9


def test_all_tail_since_until(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    _write_numbered(log, 10)
    t0 = 1_000_000_000_000_000_000
    assert _numbers(_run(_collect(log))) == list(range(10))
    assert _numbers(_run(_collect(log, tail=3))) == [7, 8, 9]
    assert _numbers(_run(_collect(log, tail=0))) == []
    assert _numbers(_run(_collect(log, tail=100))) == list(range(10))
    assert _numbers(_run(_collect(log, since_ns=t0 + 4 * 10**9))) == [4, 5, 6, 7, 8, 9]
    assert _numbers(_run(_collect(log, until_ns=t0 + 2 * 10**9))) == [0, 1, 2]
    # tail first, then since (dockerd's order).
    assert _numbers(_run(_collect(log, tail=5, since_ns=t0 + 7 * 10**9))) == [7, 8, 9]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert _run(_collect(tmp_path / "nope.log")) == []
    assert _run(_collect(tmp_path / "nope.log", tail=3)) == []


def test_tail_across_rotated_files(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    _write_numbered(Path(f"{log}.2"), 4, 0)
    _write_numbered(Path(f"{log}.1"), 4, 4)
    _write_numbered(log, 2, 8)
    assert log_files(log) == [Path(f"{log}.2"), Path(f"{log}.1"), log]
    assert _numbers(_run(_collect(log))) == list(range(10))
    for n in range(12):
        assert _numbers(_run(_collect(log, tail=n))) == (list(range(10))[max(0, 10 - n):] if n else [])


def test_tail_start_with_big_lines(tmp_path: Path) -> None:
    # Lines longer than the backwards-read block, and a file without a final newline.
    f = tmp_path / "big"
    lines = [b"a" * 100_000, b"b" * 10, b"c" * 70_000]
    f.write_bytes(b"\n".join(lines) + b"\n")
    with open(f, "rb") as fh:
        assert _tail_start([fh], 1) == (0, 100_012)
        assert _tail_start([fh], 2) == (0, 100_001)
        assert _tail_start([fh], 3) == (0, 0)
        assert _tail_start([None, fh], 4) == (0, 0)
    f.write_bytes(b"x\ny")
    with open(f, "rb") as fh:
        assert _tail_start([fh], 1) == (0, 2)


def test_follow_sees_new_lines_and_drains_after_stop(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"

    async def main() -> list[LogEntry]:
        w = JsonFileWriter(log)
        w.write("stdout", b"before\n")
        stopped = asyncio.Event()
        got: list[LogEntry] = []

        async def reader() -> None:
            async for e in read_logs(log, since_ns=None, until_ns=None, tail=None, follow=True,
                                     stopped=stopped):
                got.append(e)
                if e.data == b"before\n":
                    w.write("stdout", b"live 1\n")
                elif e.data == b"live 1\n":
                    # The container's last words, then it stops: they must not be lost.
                    w.write("stderr", b"last")
                    w.close()
                    stopped.set()

        await reader()
        return got

    got = _run(main())
    assert [(e.stream, e.data) for e in got] == [("stdout", b"before\n"), ("stdout", b"live 1\n"),
                                                 ("stderr", b"last")]


def test_follow_with_tail_zero_shows_only_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "c-json.log"
    _write_numbered(log, 5)
    waiting: list[asyncio.Event] = []
    real_wait = reader_module._Waker.wait

    async def wait_and_tell(self: Any, stopped: asyncio.Event, timeout: float | None) -> None:
        waiting[0].set()  # the follower read everything there is and now waits for the file to change
        await real_wait(self, stopped, timeout)

    monkeypatch.setattr(reader_module._Waker, "wait", wait_and_tell)

    async def main() -> list[int]:
        waiting.append(asyncio.Event())
        stopped = asyncio.Event()
        it = read_logs(log, since_ns=None, until_ns=None, tail=0, follow=True, stopped=stopped)
        first = asyncio.ensure_future(it.__anext__())
        await waiting[0].wait()
        assert not first.done()
        _write_numbered(log, 2, 5)
        out = [int((await first).data)]
        stopped.set()
        out += [int(e.data) async for e in it]
        return out

    assert _run(main()) == [5, 6]


@pytest.mark.parametrize("max_files,ahead", [(1, 4), (3, 12)])
def test_follow_across_rotation_loses_nothing(tmp_path: Path, max_files: int, ahead: int) -> None:
    """The writer stays `ahead` entries in front of the reader (7 entries fit in one file):
    with max-file=1 less than one file ahead (more is lost by dockerd too); with max-file=3
    more than one rotation ahead, which the reader must follow through the rotated files."""
    log = tmp_path / "c-json.log"
    total = 300

    async def main() -> list[int]:
        w = JsonFileWriter(log, max_size=500, max_files=max_files)
        stopped = asyncio.Event()
        got: list[int] = []
        for i in range(ahead):
            w.write("stdout", b"%04d\n" % i)
        i = ahead
        async for e in read_logs(log, since_ns=None, until_ns=None, tail=None, follow=True, stopped=stopped):
            got.append(int(e.data))
            if i < total:
                w.write("stdout", b"%04d\n" % i)
                i += 1
            elif not stopped.is_set():
                w.close()
                stopped.set()
        return got

    got = _run(main())
    assert got == list(range(total))
    assert len(list(tmp_path.iterdir())) == max_files


def test_follow_until_in_the_future_ends(tmp_path: Path) -> None:
    import time

    log = tmp_path / "c-json.log"
    log.touch()
    until = time.time_ns() + 200_000_000
    out = _run(_collect(log, follow=True, until_ns=until))
    assert out == [] and time.time_ns() >= until


def test_follow_of_a_stopped_container_just_reads(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    _write_numbered(log, 3)
    stopped = asyncio.Event()
    stopped.set()
    assert _numbers(_run(_collect(log, follow=True, stopped=stopped))) == [0, 1, 2]


def test_torn_last_line_is_held_back(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    _write_numbered(log, 2)
    with open(log, "ab") as f:
        f.write(b'{"log":"half')
    assert _numbers(_run(_collect(log))) == [0, 1]


def test_copy_of_fixture_round_trips_through_writer(tmp_path: Path) -> None:
    # What we read from dockerd's file, written again by our writer, reads the same.
    src = tmp_path / "src.log"
    shutil.copy(FIXTURES / "dockerd-20.10-json-file.log", src)
    entries = _run(_collect(src))
    dst = tmp_path / "dst.log"
    with open(dst, "wb") as f:
        for e in entries:
            f.write(encode_entry(e.stream, e.data, e.time_ns))
    # Not byte-identical: dockerd wrote \ufffd for invalid bytes; re-encoding the (valid) U+FFFD
    # writes it raw, as Go would.  The entries themselves must survive.
    assert _run(_collect(dst)) == entries
    assert all(json.loads(line) for line in dst.read_bytes().splitlines())


def test_compressed_rotation_written_and_read_back(tmp_path: Path, ticking_clock: None) -> None:
    import gzip
    import struct

    log = tmp_path / "c-json.log"
    with JsonFileWriter(log, max_size=300, max_files=3, compress=True) as w:
        for i in range(30):
            w.write("stdout", b"%04d\n" % i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    raw = (tmp_path / "c-json.log.1.gz").read_bytes()
    # A gzip member with FEXTRA holding dockerd's {"lastTime": ...} metadata.
    assert raw[:4] == b"\x1f\x8b\x08\x04"
    xlen = struct.unpack("<H", raw[10:12])[0]
    meta = json.loads(raw[12:12 + xlen])
    last_in_file = [json.loads(x) for x in gzip.decompress(raw).splitlines()][-1]
    assert meta == {"lastTime": last_in_file["time"]}

    every = _numbers(_run(_collect(log)))
    assert every == list(range(every[0], 30)) and every[0] > 0     # the oldest were rotated away
    assert _numbers(_run(_collect(log, tail=7))) == list(range(23, 30))
    assert log_files(log) == [tmp_path / "c-json.log.2.gz", tmp_path / "c-json.log.1.gz", log]


def test_follow_through_compressed_rotations(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    total = 120

    async def main() -> list[int]:
        # 4 entries fit in one file: stay 2 ahead, so the reader never needs a compressed file.
        w = JsonFileWriter(log, max_size=300, max_files=3, compress=True)
        stopped = asyncio.Event()
        got: list[int] = []
        for i in range(2):
            w.write("stdout", b"%04d\n" % i)
        i = 2
        async for e in read_logs(log, since_ns=None, until_ns=None, tail=None, follow=True, stopped=stopped):
            got.append(int(e.data))
            if i < total:
                w.write("stdout", b"%04d\n" % i)
                i += 1
            elif not stopped.is_set():
                w.close()
                stopped.set()
        return got

    assert _run(main()) == list(range(total))


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct, increasing entry times that all print with 9 fraction digits, so entries have
    equal lengths and the number of rotations is fixed."""
    import itertools

    import engine.logs.jsonfile as jf

    ticks = itertools.count(1_795_381_200_123_456_789, 1000)
    monkeypatch.setattr(jf.time, "time_ns", lambda: next(ticks))


def test_since_skips_old_compressed_files_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   ticking_clock: None) -> None:
    import engine.logs.reader as reader

    log = tmp_path / "c-json.log"
    with JsonFileWriter(log, max_size=300, max_files=4, compress=True) as w:
        for i in range(14):
            w.write("stdout", b"%04d\n" % i)
    files = log_files(log)
    assert [p.name for p in files] == ["c-json.log.3.gz", "c-json.log.2.gz", "c-json.log.1.gz", "c-json.log"]
    newest_gz_last = reader._gz_last_time(files[2])
    assert newest_gz_last is not None and reader._gz_last_time(files[0]) <= newest_gz_last
    opened: list[str] = []
    real = reader._decompressed

    def spy(p: Path):  # type: ignore[no-untyped-def]
        opened.append(p.name)
        return real(p)

    monkeypatch.setattr(reader, "_decompressed", spy)
    entries = _run(_collect(log, since_ns=newest_gz_last + 1))
    assert opened == []           # every compressed file ends before `since`
    assert entries and all(e.time_ns > newest_gz_last for e in entries)
    assert _numbers(_run(_collect(log))) == _numbers(_run(_collect(log, since_ns=0)))
    assert len(opened) == 6       # without since (and with since=0) all three are read


def test_matches_docker_logs_of_the_reference() -> None:
    """What `docker logs` printed for the same container output on dockerd 20.10."""
    entries = _run(_collect(FIXTURES / "dockerd-20.10-json-file.log"))
    out = b"".join(e.data for e in entries if e.stream == "stdout")
    err = b"".join(e.data for e in entries if e.stream == "stderr")
    assert out == (FIXTURES / "dockerd-20.10-json-file.stdout").read_bytes()
    assert err == (FIXTURES / "dockerd-20.10-json-file.stderr").read_bytes()
    tail4 = _run(_collect(FIXTURES / "dockerd-20.10-json-file.log", tail=4))
    assert b"".join(e.data for e in tail4 if e.stream == "stdout") == \
        (FIXTURES / "dockerd-20.10-json-file.tail4.stdout").read_bytes()


def test_cancelled_follower_closes_its_files(tmp_path: Path) -> None:
    import os

    log = tmp_path / "c-json.log"
    _write_numbered(Path(f"{log}.1"), 2)
    _write_numbered(log, 2, 2)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> tuple[int, int, int]:
        before = open_fds()
        stopped = asyncio.Event()
        got: list[int] = []
        four_read = asyncio.Event()

        async def follow() -> None:
            async for e in read_logs(log, since_ns=None, until_ns=None, tail=None, follow=True, stopped=stopped):
                got.append(int(e.data))
                if len(got) >= 4:
                    four_read.set()

        task = asyncio.ensure_future(follow())
        await four_read.wait()
        during = open_fds()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return before, during, open_fds()

    before, during, after = _run(main())
    assert during > before and after == before
