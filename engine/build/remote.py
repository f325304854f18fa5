"""What the builder downloads: ``ADD <url>`` sources and ``remote=`` contexts (a git repository,
a context tarball in any compression, or a plain Dockerfile), with dockerd's error texts."""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from email.utils import parsedate_to_datetime
from pathlib import Path

from ..errors import EngineError, NotFound
from . import git
from .builder import StepError


async def fetch_url(url: str, dest_dir: Path) -> tuple[Path, float | None]:
    """ADD <url>: the body in a scratch file, and the Last-Modified time (the file's mtime)."""
    import httpx
    target = dest_dir / "download"
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client, \
            client.stream("GET", url) as resp:
        if resp.status_code >= 400:
            raise StepError(f"failed to GET {url} with status {resp.status_code} {resp.reason_phrase}: "
                            f"{(await resp.aread()).decode('utf-8', 'replace')}")
        f = await asyncio.to_thread(open, target, "wb")
        try:
            async for chunk in resp.aiter_bytes():
                await asyncio.to_thread(f.write, chunk)
        finally:
            f.close()
        mtime = None
        lm = resp.headers.get("last-modified")
        if lm:
            with contextlib.suppress(Exception):
                mtime = parsedate_to_datetime(lm).timestamp()
    return target, mtime


async def remote_context(url: str, tmp_dir: str, dockerfile_name: str) -> str:
    """``remote``: a git repository (its checkout), or a URL to a context tarball (any compression)
    or to a plain Dockerfile."""
    import httpx

    if git.is_git_url(url):
        return str(await git.context_tar(url, Path(tmp_dir)))
    if not git.is_url(url):
        raise EngineError(f"remoteURL ({url}) could not be recognized as URL")
    fd, path = tempfile.mkstemp(prefix="context-", dir=tmp_dir)
    os.close(fd)
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=120) as client, \
                client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                body = (await resp.aread()).decode("utf-8", "replace")
                msg = (f"error downloading remote context {url}: failed to GET {url} with status "
                       f"{resp.status_code} {resp.reason_phrase}: {body}")
                raise NotFound(msg) if resp.status_code == 404 else EngineError(msg)
            f = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in resp.aiter_bytes():
                    await asyncio.to_thread(f.write, chunk)
            finally:
                f.close()
        if not await asyncio.to_thread(_looks_like_archive, path):
            await asyncio.to_thread(_wrap_dockerfile, path, dockerfile_name)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _looks_like_archive(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return (head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"
            or (len(head) >= 262 and head[257:262] == b"ustar"))


def _wrap_dockerfile(path: str, name: str) -> None:
    """A downloaded Dockerfile becomes a context holding only it."""
    import io
    import tarfile
    with open(path, "rb") as f:
        data = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o600
        t.addfile(ti, io.BytesIO(data))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
