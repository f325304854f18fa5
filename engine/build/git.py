"""``remote=`` a git repository: which URLs are git, and the checkout that becomes the context.

As dockerd's classic builder: an http(s) URL whose path ends in ``.git`` (with
an optional ``#fragment``), or one starting with ``git://``, ``git@``,
``ssh://`` or ``github.com/``, is a repository.  The fragment is
``ref:subdir`` (ref defaults to ``master``).  The checkout is ``git init``,
``git remote add origin``, ``git fetch [--depth 1] origin -- <ref>`` (shallow
unless the server is a dumb HTTP one), ``git checkout <ref>`` (else
``FETCH_HEAD``), submodules, then the subdirectory (resolved inside the
checkout).  git runs with the system and user configs ignored, file://
submodules refused and user-only transports off.  Errors use dockerd's words.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineError
from . import fsutil

_GIT_SUFFIX = re.compile(r"\.git(?:#.+)?$")


def is_url(s: str) -> bool:
    return s.startswith(("https://", "http://"))


def is_git_url(s: str) -> bool:
    if is_url(s) and _GIT_SUFFIX.search(s):
        return True
    return s.startswith(("git://", "github.com/", "git@", "ssh://"))


@dataclass(frozen=True)
class GitRepo:
    remote: str
    ref: str
    subdir: str


def _scheme(address: str) -> str:
    try:
        return urllib.parse.urlsplit(address).scheme.lower()
    except ValueError:
        return ""


def parse_remote(url: str) -> GitRepo:
    if not (url.startswith("git@") or _scheme(url) in ("git", "http", "https", "ssh")):
        url = "https://" + url
    if url.startswith("git@"):   # scp-like: not a URL
        remote, _, fragment = url.partition("#")
    else:
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError as err:
            raise EngineError(f'parse "{url}": {err}') from None
        fragment = parts.fragment
        remote = urllib.parse.urlunsplit(parts._replace(fragment=""))
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise EngineError(f"invalid refspec: {ref}")
    return GitRepo(remote, ref, subdir)


def _shallow_ok(remote: str) -> bool:
    """Non-HTTP transports always; HTTP only when the server is a smart one."""
    if _scheme(remote) not in ("http", "https"):
        return True
    service = remote + "/info/refs?service=git-upload-pack"
    for method in ("HEAD", "GET"):
        try:
            with urllib.request.urlopen(urllib.request.Request(service, method=method), timeout=60) as resp:
                return bool(resp.headers.get("Content-Type") == "application/x-git-upload-pack-advertisement")
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_PROTOCOL_FROM_USER": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/dev/null",
                "GIT_TERMINAL_PROMPT": "0"})
    return env


async def _git(cwd: Path, *args: str, guarded: bool = True) -> tuple[int, str]:
    """Run git in ``cwd``; (exit status, combined output).  A cancelled build kills it."""
    argv = ["git", *(("-c", "protocol.file.allow=never") if guarded else ()), *args]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=_env(), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode("utf-8", "replace")


def _failed(what: str, output: str, code: int) -> EngineError:
    return EngineError(f"{what}: {output}: exit status {code}")


async def checkout(repo: GitRepo, root: Path) -> Path:
    """Fetch ``repo`` into the empty directory ``root``; returns the context directory."""
    code, out = await _git(root, "init")
    if code:
        raise _failed(f"failed to init repo at {root}", out, code)
    code, out = await _git(root, "remote", "add", "origin", repo.remote)
    if code:
        raise _failed(f"failed add origin repo at {repo.remote}", out, code)
    fetch = ["fetch", *(["--depth", "1"] if await asyncio.to_thread(_shallow_ok, repo.remote) else []),
             "origin", "--", repo.ref]
    code, out = await _git(root, *fetch)
    if code:
        raise _failed("error fetching", out, code)
    code, out = await _git(root, "checkout", repo.ref)
    if code:
        code2, _ = await _git(root, "checkout", "FETCH_HEAD")
        if code2:
            raise _failed(f"error checking out {repo.ref}", out, code)
    code, out = await _git(root, "submodule", "update", "--init", "--recursive", "--depth=1", guarded=False)
    if code:
        raise _failed("error initializing submodules", out, code)
    if not repo.subdir:
        return root
    ctx = fsutil.resolve(root, repo.subdir)
    if not ctx.exists():
        raise EngineError(f"stat {ctx}: no such file or directory")
    if not ctx.is_dir():
        raise EngineError(f"error setting git context, not a directory: {ctx}")
    return ctx


async def context_tar(url: str, tmp_dir: Path) -> Path:
    """The repository's checkout as a tar file in ``tmp_dir`` (the caller removes it)."""
    repo = parse_remote(url)
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="docker-build-git", dir=tmp_dir))
    try:
        ctx = await checkout(repo, root)
        fd, name = tempfile.mkstemp(prefix="context-", dir=tmp_dir)
        os.close(fd)

        def pack() -> None:
            with tarfile.open(name, "w") as tar:
                for entry in sorted(os.listdir(ctx)):
                    tar.add(ctx / entry, arcname=entry)
        try:
            await asyncio.to_thread(pack)
        except BaseException:
            os.unlink(name)
            raise
        return Path(name)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
