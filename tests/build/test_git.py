"""Which remotes are git repositories, and how their fragment names the ref and subdirectory
(dockerd's rules, as its urlutil and gitutils tables give them)."""
from __future__ import annotations

import pytest

from engine.build.git import GitRepo, is_git_url, parse_remote
from engine.errors import EngineError


@pytest.mark.parametrize("url,git", [
    ("https://example.invalid/r.git", True),
    ("http://example.invalid/r.git#main:dir", True),
    ("https://example.invalid/r.git/Dockerfile", False),
    ("https://example.invalid/ctx.tar.gz", False),
    ("git://127.0.0.1/r", True),
    ("git@example.invalid:r.git", True),
    ("ssh://git@example.invalid/r", True),
    ("github.com/user/r", True),
    ("ftp://example.invalid/r.git", False),
])
def test_is_git_url(url: str, git: bool) -> None:
    assert is_git_url(url) is git


@pytest.mark.parametrize("url,repo", [
    ("git://h/r.git", GitRepo("git://h/r.git", "master", "")),
    ("git://h/r.git#mytag", GitRepo("git://h/r.git", "mytag", "")),
    ("git://h/r.git#:dir", GitRepo("git://h/r.git", "master", "dir")),
    ("https://h/r.git#pull/42/head:a/b", GitRepo("https://h/r.git", "pull/42/head", "a/b")),
    ("git@h:r.git#branch:dir", GitRepo("git@h:r.git", "branch", "dir")),
    ("github.com/u/r#x", GitRepo("https://github.com/u/r", "x", "")),
])
def test_parse_remote(url: str, repo: GitRepo) -> None:
    assert parse_remote(url) == repo


def test_refspec_starting_with_a_dash_is_refused() -> None:
    with pytest.raises(EngineError, match="^invalid refspec: --upload-pack=x$"):
        parse_remote("git://h/r.git#--upload-pack=x")
