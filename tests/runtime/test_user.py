"""resolve_user: results observed on dockerd 20.10 with the same passwd/group files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.containers.hostaccess import resolve_user
from engine.errors import InvalidParameter


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
        "user1:x:1000:1000::/home/user1:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\ngrp1:x:1000:\nextra:x:2000:user1,nobody\n")
    return tmp_path


@pytest.mark.parametrize("user,expected", [
    ("", (0, 0, [0])),
    ("root", (0, 0, [0])),
    ("0", (0, 0, [0])),
    ("user1", (1000, 1000, [1000, 2000])),
    ("user1:grp1", (1000, 1000, [1000])),
    ("user1:extra", (1000, 2000, [2000])),
    ("user1:3000", (1000, 3000, [3000])),
    ("1000", (1000, 1000, [1000, 2000])),
    ("1000:2000", (1000, 2000, [2000])),
    ("5000", (5000, 0, [0])),
    ("5000:5000", (5000, 5000, [5000])),
    ("nobody", (65534, 65534, [65534, 2000])),
    ("user1:", (1000, 1000, [1000, 2000])),
    (":1000", (0, 1000, [1000])),
])
def test_like_dockerd(rootfs: Path, user: str, expected: tuple[int, int, list[int]]) -> None:
    assert resolve_user(rootfs, user) == expected


@pytest.mark.parametrize("user,message", [
    ("nobody2", "unable to find user nobody2: no matching entries in passwd file"),
    ("0:nosuchgrp", "unable to find group nosuchgrp: no matching entries in group file"),
    ("-1", "uids and gids must be in range 0-2147483647"),
    ("99999999999", "uids and gids must be in range 0-2147483647"),
])
def test_errors(rootfs: Path, user: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as ei:
        resolve_user(rootfs, user)
    assert ei.value.message == message


def test_missing_files(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "") == (0, 0, [0])
    assert resolve_user(tmp_path, "123:456") == (123, 456, [456])
    with pytest.raises(InvalidParameter):
        resolve_user(tmp_path, "someone")


def test_symlink_out_of_rootfs_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # absolute target: resolved inside the rootfs, where it does not exist
    os.symlink(str(outside / "passwd"), root / "etc" / "passwd")
    with pytest.raises(InvalidParameter):
        resolve_user(root, "evil")
    os.unlink(root / "etc" / "passwd")
    os.symlink("../../outside/passwd", root / "etc" / "passwd")
    with pytest.raises(InvalidParameter):
        resolve_user(root, "evil")
