from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.runtime import fs
from engine.runtime import protocol as P
from engine.runtime import syscalls as S


def test_secure_join_stays_in_root(tmp_path: Path) -> None:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    os.symlink("/etc/../../../../etc/shadow", r / "etc" / "abs")
    os.symlink("../../..", r / "etc" / "up")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    assert fs.secure_join(str(r), "/etc/abs") == f"{r}/etc/shadow"
    assert fs.secure_join(str(r), "/etc/up/x") == f"{r}/x"
    assert fs.secure_join(str(r), "../../a/./b") == f"{r}/a/b"
    assert fs.secure_join(str(r), "/") == str(r)
    with pytest.raises(OSError):
        fs.secure_join(str(r), "/loop1")


def test_parse_mount_options() -> None:
    o = fs.parse_mount_options(["nosuid", "noexec", "nodev", "mode=1777", "size=65536k", "rprivate", "ro"])
    assert o.flags == S.MS_NOSUID | S.MS_NOEXEC | S.MS_NODEV | S.MS_RDONLY
    assert o.propagation == S.MS_PRIVATE | S.MS_REC
    assert o.data == "mode=1777,size=65536k"
    assert fs.parse_mount_options(["rbind", "rw"]).flags == S.MS_BIND | S.MS_REC


def test_look_path(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "prog"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "bin" / "data").write_text("x")
    assert fs.look_path("prog", f"/nope:{tmp_path}/bin") == f"{tmp_path}/bin/prog"
    with pytest.raises(fs.ExecLookupError) as ei:
        fs.look_path("data", f"{tmp_path}/bin")
    assert ei.value.exit_code == 127
    with pytest.raises(fs.ExecLookupError) as ei:
        fs.look_path(str(tmp_path / "bin" / "data"), "")
    assert ei.value.exit_code == 126 and "permission denied" in ei.value.message


def test_frames_roundtrip() -> None:
    buf = bytearray(P.ctrl({"op": "hello", "id": 1}) + P.frame(P.STDOUT, b"abc") + P.frame(P.STDIN, b"x")[:3])
    frames = P.parse_frames(buf)
    assert frames == [(P.CTRL, b'{"op":"hello","id":1}'), (P.STDOUT, b"abc")]
    assert len(buf) == 3
    buf += P.frame(P.STDIN, b"x")[3:]
    assert P.parse_frames(buf) == [(P.STDIN, b"x")] and not buf
    with pytest.raises(P.FrameError):
        P.parse_frames(bytearray(b"\x09\x00\x00\x00\x01x"))
