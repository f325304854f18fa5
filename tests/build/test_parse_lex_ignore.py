"""The parser checks, word expansion and .dockerignore matching (expected values from dockerd 20.10)."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from engine.build import fsutil
from engine.build.dockerignore import PatternMatcher
from engine.build.parse import ParseError, parse
from engine.build.shell_lex import ShellLex, env_lookup
from engine.errors import InvalidParameter

ENV = env_lookup(["A=a", "EMPTY=", "SP=x y"])


@pytest.mark.parametrize("word,expected", [
    ("$A", "a"), ("${A}b", "ab"), ("'$A'", "$A"), ('"$A"', "a"), ("\\$A", "$A"), ('"\\$A"', "$A"),
    ("${NOPE:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""), ("${A:+alt}", "alt"),
    ("${NOPE:+alt}", ""), ("${A:-$SP}", "a"), ("$NOPE", ""), ('"a b"c', "a bc"), ("a\\ b", "a b"),
    ('"x\\y"', "x\\y"),
])
def test_process_word(word: str, expected: str) -> None:
    assert ShellLex().process_word(word, ENV) == expected


def test_process_words_splits_unquoted() -> None:
    assert ShellLex().process_words('80 "a b" $SP', ENV) == ["80", "a b", "x", "y"]


def test_escape_directive() -> None:
    assert ShellLex("`").process_word("`$A", ENV) == "$A"
    parsed = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
    assert parsed.escape == "`" and parsed.stages[0].instructions[0].args == ("echo a   b",)


def test_bad_substitution() -> None:
    with pytest.raises(InvalidParameter, match="missing ':' in substitution"):
        ShellLex().process_word("${A", ENV)


@pytest.mark.parametrize("text,message", [
    ("FROM busybox\nCOPY --foo=1 a b\n", "dockerfile parse error line 2: Unknown flag: foo"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n",
     "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM busybox\nMAINTAINER\n", "dockerfile parse error line 2: MAINTAINER requires exactly one argument"),
    ("FROM busybox\nLABEL\n", "dockerfile parse error line 2: LABEL requires at least one argument"),
    ("FROM busybox\nRUN --network=none x\n", "dockerfile parse error line 2: Unknown flag: network"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(text)
    assert err.value.message == message


def test_stages_and_meta_args() -> None:
    p = parse("# syntax=docker/dockerfile:1\nARG V=1\nFROM busybox:${V} AS Build\nRUN x\nFROM build\n")
    assert [a.original for a in p.meta_args] == ["ARG V=1"]
    assert [(s.name, s.base) for s in p.stages] == [("build", "busybox:${V}"), ("", "build")]


@pytest.mark.parametrize("patterns,path,excluded", [
    ("*.log", "a.log", True), ("*.log", "sub/a.log", False), ("**/*.log", "sub/deep/a.log", True),
    ("sub", "sub/x/y", True), ("/sub", "sub/x", True), ("*.log\n!keep.log", "keep.log", False),
    ("**", "anything/at/all", True), ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True),
    ("a?c", "abc", True), ("a?c", "a/c", False), ("[ab]x", "bx", True), ("# comment", "# comment", False),
    ("dir/\n!dir/keep", "dir/keep", False), ("dir/\n!dir/keep", "dir/other", True),
])
def test_dockerignore(patterns: str, path: str, excluded: bool) -> None:
    assert PatternMatcher.from_file_content(patterns).matches(path) is excluded


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for ti in entries:
            payload = data.get(ti.name)
            if payload is not None:
                ti.size = len(payload)
                t.addfile(ti, io.BytesIO(payload))
            else:
                t.addfile(ti)
    return buf.getvalue()


def test_hostile_tar_writes_inside_root_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    rel = tarfile.TarInfo("rel")
    rel.type = tarfile.SYMTYPE
    rel.linkname = "../../outside"
    entries = [link, tarfile.TarInfo("link/through"), rel, tarfile.TarInfo("rel/through2"),
               tarfile.TarInfo(str(outside / "abs"))]
    data = {"link/through": b"1", "rel/through2": b"2", str(outside / "abs"): b"3"}
    with tarfile.open(fileobj=io.BytesIO(_tar(entries, data))) as t:
        fsutil.extract(t, root)
    assert list(outside.iterdir()) == []
    assert (root / outside.relative_to("/") / "through").read_bytes() == b"1"
    assert (root / "outside" / "through2").read_bytes() == b"2"

    dotdot = tarfile.TarInfo("../../escape")
    with tarfile.open(fileobj=io.BytesIO(_tar([dotdot], {"../../escape": b"x"}))) as t:
        fsutil.extract(t, root)
    assert not (tmp_path / "escape").exists() and (root / "escape").read_bytes() == b"x"

    hard = tarfile.TarInfo("hard")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "../../etc/passwd"
    with tarfile.open(fileobj=io.BytesIO(_tar([hard], {}))) as t, pytest.raises(InvalidParameter):
        fsutil.extract(t, root)


def test_resolve_scopes_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "up").symlink_to("../../../..")
    (tmp_path / "abs").symlink_to("/etc")
    assert fsutil.resolve(tmp_path, "a/up/x") == tmp_path / "x"
    assert fsutil.resolve(tmp_path, "abs/passwd") == tmp_path / "etc" / "passwd"
