"""COPY and ADD: sources from the context, a stage, an image or a URL, written into a
scratch snapshot of the current image (the classic builder's copy rules and words)."""
from __future__ import annotations

import asyncio
import fnmatch
import os
import posixpath
from pathlib import Path

from . import fsutil
from .builder import Builder, StageState, StepError, needs_buildkit
from .parse import Instruction


async def dispatch_copy(b: Builder, st: StageState, inst: Instruction) -> None:
    await _copy(b, st, inst, "COPY")


async def dispatch_add(b: Builder, st: StageState, inst: Instruction) -> None:
    await _copy(b, st, inst, "ADD")


class _Source:
    def __init__(self, root: Path | None, path: Path | None, name: str, hash_: str, *,
                 url: str = "", mtime: float | None = None, context_rel: str = "") -> None:
        self.root = root          # where path lives (context or a stage's rootfs)
        self.path = path
        self.name = name          # base name for "dest/" targets
        self.hash = hash_
        self.url = url
        self.mtime = mtime
        self.context_rel = context_rel   # a context path not unpacked yet (path is None)


async def _copy(b: Builder, st: StageState, inst: Instruction, what: str) -> None:
    if "chmod" in inst.flags:
        raise StepError(needs_buildkit("--chmod"))
    args = [a for a in inst.args if a != ""]
    raw_sources, raw_dest = args[:-1], args[-1]
    sources_words = [b.expand(st, s) for s in raw_sources]
    dest = b.expand(st, raw_dest)
    chown = b.expand(st, inst.flag("chown")) if inst.flag("chown") else ""
    from_ = inst.flag("from")
    if from_ and what == "ADD":
        raise StepError("ADD does not support --from")
    if from_:
        await _copy_from(b, st, inst, from_, sources_words, dest, chown)
        return
    sources: list[_Source] = []
    for s in sources_words:
        if what == "ADD" and s.startswith(("http://", "https://")):
            sources.append(await _fetch(b, s, dest))
            continue
        sources.extend(await _context_sources(b, s, what))
    await _do_copy(b, st, what, sources, dest, chown, decompress=(what == "ADD"), label_dest=raw_dest)


async def _copy_from(b: Builder, st: StageState, inst: Instruction, from_: str, words: list[str], dest: str,
                     chown: str) -> None:
    name = b.expand(st, from_) if "$" in from_ else from_
    stage = b.stage_by_name(name)
    if stage is st:
        raise StepError(f"invalid from flag value {name}: refers to current build stage")
    image = stage.image if stage is not None else None
    if stage is None:
        image = await b.backend.get_image(name)
        if image is None:
            try:
                image = await b.backend.pull_image(name, b.opts.platform, b.opts.registry_auth, b.emit)
            except Exception as err:  # noqa: BLE001
                raise StepError(f"invalid from flag value {name}: {err}") from None
    if image is None:
        raise StepError(f"invalid from flag value {name}: no image")
    async with b.backend.mount_image(image) as root:
        sources: list[_Source] = []
        for w in words:
            sources.extend(_rootfs_sources(root, w))
        await _do_copy(b, st, "COPY", sources, dest, chown, decompress=False, label_dest=dest)


def _has_wildcards(s: str) -> bool:
    return any(c in s for c in "*?[")


async def _context_sources(b: Builder, src: str, what: str) -> list[_Source]:
    rel = posixpath.normpath(src) if src else "."
    if rel == ".." or rel.startswith("../"):
        raise StepError(f"{what} failed: forbidden path outside the build context: {src} ()")
    rel = rel.lstrip("/") or "."
    ctx = b.context
    if not _has_wildcards(rel):
        # Hashed from the context's index: nothing is unpacked unless the step misses the cache.
        digest = ctx.checksum(rel)
        if digest is not None:
            kind = "dir" if ctx.is_dir(rel) else "file"
            return [_Source(None, None, posixpath.basename(rel) if rel != "." else "", f"{kind}:{digest}",
                            context_rel=rel)]
        if ctx.missing(rel):
            raise _not_found(what, rel)

    def on_disk() -> list[_Source]:
        return _scoped_sources(ctx.unpack(), rel, what, src)
    return await asyncio.to_thread(on_disk)


def _not_found(what: str, rel: str) -> StepError:
    return StepError(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                     f"stat {rel}: file does not exist")


def _rootfs_sources(root: Path, src: str) -> list[_Source]:
    rel = posixpath.normpath("/" + src).lstrip("/") or "."
    return _scoped_sources(root, rel, "COPY", src)


def _scoped_sources(root: Path, rel: str, what: str, orig: str) -> list[_Source]:
    if _has_wildcards(rel):
        matches: list[_Source] = []
        for entry in fsutil.walk(root):
            r = str(entry.relative_to(root)) if entry != root else "."
            if r != "." and fnmatch.fnmatchcase(r, rel) and _same_depth(r, rel):
                matches.append(_source(root, entry, r))
        if not matches:
            raise StepError(f"{what} failed: no source files were specified")
        return matches
    path = fsutil.resolve(root, rel)
    if not path.exists() and not path.is_symlink():
        raise _not_found(what, rel)
    return [_source(root, path, rel)]


def _same_depth(path: str, pattern: str) -> bool:
    # filepath.Match: '*' never crosses '/'
    return path.count("/") == pattern.count("/")


def _source(root: Path, path: Path, rel: str) -> _Source:
    kind = "dir" if path.is_dir() and not path.is_symlink() else "file"
    return _Source(root, path, posixpath.basename(rel) if rel != "." else "", f"{kind}:{fsutil.checksum(path)}")


async def _fetch(b: Builder, url: str, dest: str) -> _Source:
    if b.fetch_url is None:
        raise StepError("ADD of a URL is not available")
    import hashlib
    import tempfile
    tmpdir = Path(tempfile.mkdtemp(prefix="add-url-", dir=b.context.root.parent))
    try:
        path, mtime = await b.fetch_url(url, tmpdir)
    except StepError:
        raise
    except Exception as err:  # noqa: BLE001
        raise StepError(str(err)) from None
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "__unnamed__"
    return _Source(path.parent, path, name, f"file:{h}", url=url, mtime=mtime)


async def _do_copy(b: Builder, st: StageState, what: str, sources: list[_Source], dest: str, chown: str, *,
                   decompress: bool, label_dest: str) -> None:
    if len(sources) > 1 and not dest.endswith("/"):
        raise StepError(f"When using {what} with more than one source file, "
                        "the destination must be a directory and end with a /")
    workdir = st.config.get("WorkingDir") or "/"
    full_dest = dest if dest.startswith("/") else posixpath.join(workdir, dest)
    if dest.endswith(("/", "/.")) or dest == ".":
        full_dest = full_dest.rstrip("/.") + "/" if full_dest.rstrip("/.") else "/"
    if len(sources) == 1:
        src_hash = sources[0].hash
    else:
        import hashlib
        src_hash = "multi:" + hashlib.sha256(",".join(s.hash for s in sources).encode()).hexdigest()
    comment = f"{what} {src_hash} in {dest} "

    def apply(root: Path) -> None:
        uid, gid = _chown(root, chown)
        for s in sources:
            if s.path is None and s.context_rel:
                s.root = b.context.unpack()
                s.path = fsutil.resolve(s.root, s.context_rel)
            assert s.path is not None
            dir_dest = full_dest.endswith("/")
            target = fsutil.resolve(root, full_dest)
            is_dir_target = dir_dest or (target.is_dir() and not s.url)
            if s.url:
                name = posixpath.join(full_dest, s.name) if dir_dest else full_dest
                fsutil.copy_tree(s.path, root, name, uid, gid, contents=False)
                out = fsutil.resolve(root, name)
                os.chmod(out, 0o600)
                if s.mtime is not None:
                    os.utime(out, (s.mtime, s.mtime))
                continue
            if s.path.is_dir() and not s.path.is_symlink():
                fsutil.copy_tree(s.path, root, full_dest, uid, gid, contents=True)
                continue
            if decompress and fsutil.is_archive(s.path):
                # Unpacked as if chrooted into the destination (dockerd's untar).
                dest_dir = fsutil.mkdir_all(root, full_dest, uid, gid)
                with open(s.path, "rb") as f, fsutil.open_archive(f) as tar:
                    fsutil.extract(tar, dest_dir, "/")
                continue
            name = posixpath.join(full_dest, s.name) if is_dir_target else full_dest
            fsutil.copy_tree(s.path, root, name, uid, gid, contents=False)

    await b.commit_files(st, comment, apply)


def _chown(root: Path, chown: str) -> tuple[int, int]:
    """--chown=user[:group] by name or number, names looked up in the image's /etc/passwd and
    /etc/group; a lone user is also the group (the classic builder's rule)."""
    if not chown:
        return 0, 0
    user, _, group = chown.partition(":")
    group = group or user
    prefix = "unable to convert uid/gid chown string to host mapping: "
    uid = _lookup_id(root, "/etc/passwd", user)
    if uid is None:
        raise StepError(f"{prefix}can't find uid for user {user}: no such user: {user}")
    gid = _lookup_id(root, "/etc/group", group)
    if gid is None:
        raise StepError(f"{prefix}can't find gid for group {group}: no such group: {group}")
    return uid, gid


def _lookup_id(root: Path, table: str, name: str) -> int | None:
    if name.isdigit():
        return int(name)
    path = fsutil.resolve(root, table)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None
