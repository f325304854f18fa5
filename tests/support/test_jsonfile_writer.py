"""The json-file writer against a log file written by a real dockerd (20.10).

The fixture was produced by running fixtures/dockerd-20.10-json-file.sh in a busybox
container on the reference daemon; TRICKY_* below are the exact bytes that script prints.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine.logs.jsonfile import PARTIAL_LINE_LIMIT, JsonFileWriter, encode_entry, encode_string, format_time

FIXTURES = Path(__file__).parent / "fixtures"

TRICKY_LINE = (b'a<b>&c"q\\ \t|\x01\x02\x08\x0c\x1b|\x7f|\xe2\x80\xa8\xe2\x80\xa9|\xff|\xe2\x82|'
               b'\xed\xa0\x80|\xc3\xa9\xf0\x9f\x98\x80|\r\n')
TRICKY_STDOUT = (b"plain\n" + b"\n" + TRICKY_LINE + b"x" * 40000 + b"\n" + b"y" * 16384 + b"\n"
                 + b"no newline at end")
TRICKY_STDERR = b"err\n"

_TIME = re.compile(rb'"time":"[^"]*"')


def _per_stream(lines: list[bytes]) -> dict[str, list[bytes]]:
    """Lines grouped by stream, with the time value blanked (it is the only varying part)."""
    out: dict[str, list[bytes]] = {}
    for line in lines:
        out.setdefault(json.loads(line)["stream"], []).append(_TIME.sub(b'"time":"T"', line))
    return out


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1, 7, 2048, 4096, 65536, 10**6])
def test_byte_identical_to_dockerd(tmp_path: Path, chunk: int) -> None:
    reference = (FIXTURES / "dockerd-20.10-json-file.log").read_bytes().splitlines(keepends=True)
    path = tmp_path / "c-json.log"
    w = JsonFileWriter(path)
    for part in _chunks(TRICKY_STDOUT, chunk):
        w.write("stdout", part)
    for part in _chunks(TRICKY_STDERR, chunk):
        w.write("stderr", part)
    w.close()
    ours = path.read_bytes().splitlines(keepends=True)
    assert _per_stream(ours) == _per_stream(reference)


def test_escaping_details() -> None:
    assert encode_string(b"\t\x08\x0c\x7f") == b'"\\u0009\\u0008\\u000c\x7f"'
    assert encode_string(b"<>&") == b'"\\u003c\\u003e\\u0026"'
    assert encode_string("\u2028\u2029".encode()) == b'"\\u2028\\u2029"'
    # One U+FFFD per rejected byte, as Go's utf8.DecodeRune does.
    assert encode_string(b"\xe2\x82\xe2\x82\xac") == '"\\ufffd\\ufffd€"'.encode()
    assert encode_string(b"\xc0\xaf\xf5") == b'"\\ufffd\\ufffd\\ufffd"'


def test_time_format_trims_like_go() -> None:
    assert format_time(1_795_381_200_123_456_789) == "2026-11-22T21:00:00.123456789Z"
    assert format_time(1_795_381_200_120_000_000) == "2026-11-22T21:00:00.12Z"
    assert format_time(1_795_381_200_000_000_000) == "2026-11-22T21:00:00Z"
    assert format_time(1_795_381_200_000_000_100) == "2026-11-22T21:00:00.0000001Z"


def test_entry_layout() -> None:
    line = encode_entry("stdout", b"hi\n", 1_795_381_200_5 * 10**8)
    assert line == b'{"log":"hi\\n","stream":"stdout","time":"2026-11-22T21:00:00.5Z"}\n'
    assert encode_entry("stderr", b"x", 0, attrs=b'{"a":"b"}') == \
        b'{"log":"x","stream":"stderr","attrs":{"a":"b"},"time":"1970-01-01T00:00:00Z"}\n'


def test_partial_lines_are_split_at_16k_and_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JsonFileWriter(path)
    w.write("stdout", b"a" * (PARTIAL_LINE_LIMIT * 2 + 5))
    w.write("stderr", b"half")
    assert [len(json.loads(x)["log"]) for x in path.read_bytes().splitlines()] == [16384, 16384]
    w.write("stdout", b"b\nc")
    w.write("stdout", b"z" * (PARTIAL_LINE_LIMIT - 2) + b"\n")
    w.close()
    logs = [(json.loads(x)["stream"], json.loads(x)["log"]) for x in path.read_bytes().splitlines()]
    assert logs[2:] == [("stdout", "aaaaab\n"), ("stdout", "c" + "z" * 16382 + "\n"), ("stderr", "half")]


def test_interleaved_streams_keep_their_own_partials(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with JsonFileWriter(path) as w:
        w.write("stdout", b"out-")
        w.write("stderr", b"err-")
        w.write("stdout", b"1\n")
        w.write("stderr", b"2\n")
    logs = [(json.loads(x)["stream"], json.loads(x)["log"]) for x in path.read_bytes().splitlines()]
    assert logs == [("stdout", "out-1\n"), ("stderr", "err-2\n")]


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with JsonFileWriter(str(path)) as w:
        w.write("stdout", b"one\n")
    with JsonFileWriter(path) as w:
        w.write("stdout", b"two\n")
    assert [json.loads(x)["log"] for x in path.read_bytes().splitlines()] == ["one\n", "two\n"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """Entries of equal length: the time is fixed (Go trims the fraction, so it varies)."""
    import engine.logs.jsonfile as jf

    ns = 1_795_381_200_123_456_789
    monkeypatch.setattr(jf.time, "time_ns", lambda: ns)
    return ns


def test_rotation_keeps_max_files(tmp_path: Path, fixed_clock: int) -> None:
    path = tmp_path / "log"
    line_len = len(encode_entry("stdout", b"0000\n", fixed_clock))
    with JsonFileWriter(path, max_size=3 * line_len, max_files=3) as w:
        for i in range(20):
            w.write("stdout", b"%04d\n" % i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "log.1", "log.2"]

    def numbers(p: Path) -> list[int]:
        return [int(json.loads(x)["log"]) for x in p.read_bytes().splitlines()]

    # dockerd checks the size before writing, so each file holds exactly 3 entries here.
    assert numbers(tmp_path / "log.2") == [12, 13, 14]
    assert numbers(tmp_path / "log.1") == [15, 16, 17]
    assert numbers(path) == [18, 19]


def test_rotation_with_one_file_starts_a_new_file(tmp_path: Path, fixed_clock: int) -> None:
    path = tmp_path / "log"
    line_len = len(encode_entry("stdout", b"0000\n", fixed_clock))
    with JsonFileWriter(path, max_size=2 * line_len, max_files=1) as w:
        for i in range(5):
            w.write("stdout", b"%04d\n" % i)
    assert [p.name for p in tmp_path.iterdir()] == ["log"]
    assert [int(json.loads(x)["log"]) for x in path.read_bytes().splitlines()] == [4]


def test_writer_module_stays_light() -> None:
    """The shim imports the writer; it must not pull in asyncio (≈10 ms per container start)."""
    import subprocess
    import sys

    code = ("import sys; import engine.logs.jsonfile as j; "
            "print('asyncio' in sys.modules, 'json' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_attrs_like_dockerd_log_opts(tmp_path: Path, fixed_clock: int) -> None:
    # dockerd 20.10 with --log-opt labels=app,zed --log-opt env=FOO, FOO='<x>', labels app=web zed=1:
    # {"log":"hi\n","stream":"stdout","attrs":{"FOO":"\u003cx\u003e","app":"web","zed":"1"},"time":...}
    path = tmp_path / "log"
    with JsonFileWriter(path, attrs={"zed": "1", "app": "web", "FOO": "<x>"}) as w:
        w.write("stdout", b"hi\n")
    assert path.read_bytes() == (b'{"log":"hi\\n","stream":"stdout","attrs":{"FOO":"\\u003cx\\u003e",'
                                 b'"app":"web","zed":"1"},"time":"2026-11-22T21:00:00.123456789Z"}\n')
