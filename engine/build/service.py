"""The build service: a context tar and options in, an image (and its tags) out.

``prepare`` does everything that can fail before the output stream starts
(unpack the context, find and parse the Dockerfile, check the target), so
those errors get an HTTP status; ``run`` streams the steps.  The unpacked
context lives in a scratch directory removed when the build ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import EngineError, InvalidParameter
from . import fsutil
from .backend import BuildBackend, BuildImage, Emit
from .builder import Builder, BuildOptions, StepError
from .dockerignore import PatternMatcher
from .parse import Parsed, parse

log = logging.getLogger(__name__)


@dataclass
class PreparedBuild:
    opts: BuildOptions
    context: Path
    parsed: Parsed
    workdir: Path

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class BuildService:
    def __init__(self, backend: BuildBackend, tmp_root: Path) -> None:
        self.backend = backend
        self.tmp_root = tmp_root

    # ------------------------------------------------------------ prepare
    async def prepare(self, opts: BuildOptions, context_tar: Path) -> PreparedBuild:
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="build-", dir=self.tmp_root))
        try:
            context = workdir / "context"
            context.mkdir()
            await asyncio.to_thread(self._unpack, context_tar, context)
            text = await asyncio.to_thread(self._dockerfile, context, opts)
            parsed = parse(text, opts.dockerfile or "Dockerfile")
            if opts.labels:
                _append_labels(parsed, opts)
            prepared = PreparedBuild(opts, context, parsed, workdir)
            Builder(self.backend, opts, parsed, context, lambda m: None).check_target()
            return prepared
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    @staticmethod
    def _unpack(context_tar: Path, dest: Path) -> None:
        with open(context_tar, "rb") as f:
            head = f.read(1)
            if not head:
                return  # an empty body: an empty context
            f.seek(0)
            try:
                with fsutil.open_archive(f) as tar:
                    fsutil.extract(tar, dest, "/", keep_owner=True)
            except (tarfile.TarError, EOFError):
                raise EngineError("unexpected EOF") from None

    @staticmethod
    def _dockerfile(context: Path, opts: BuildOptions) -> str:
        name = opts.dockerfile or "Dockerfile"
        rel = posixpath.normpath(name)
        if rel == ".." or rel.startswith("../"):
            raise EngineError(f"forbidden path outside the build context: {name} ()")
        path = fsutil.resolve(context, rel)
        if not path.is_file() and not opts.dockerfile:
            alt = fsutil.resolve(context, "dockerfile")
            if alt.is_file():
                path = alt
        if not path.is_file():
            raise EngineError(f"Cannot locate specified Dockerfile: {name}")
        raw = path.read_bytes()
        text = raw.decode("utf-8", "replace")
        text = text.removeprefix("\ufeff")
        ignore = fsutil.resolve(context, ".dockerignore")
        if ignore.is_file():
            matcher = PatternMatcher.from_file_content(ignore.read_text("utf-8", "replace"))
            _apply_ignore(context, matcher, {rel.lstrip("./") or rel, ".dockerignore"})
        return text

    # ----------------------------------------------------------------- run
    async def run(self, prepared: PreparedBuild, emit: Emit, *, fetch_url: Any = None) -> BuildImage:
        opts = prepared.opts
        b = Builder(self.backend, opts, prepared.parsed, prepared.context, emit, fetch_url=fetch_url)
        image = await b.build()
        emit({"aux": {"ID": image.id}})
        unused = b.args.unused()
        if unused:
            b.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        b.out(f"Successfully built {image.id.split(':', 1)[-1][:12]}\n")
        for t in opts.tags:
            familiar = await self.backend.tag(image.id, t)
            b.out(f"Successfully tagged {familiar}\n")
        return image


def _append_labels(parsed: Parsed, opts: BuildOptions) -> None:
    """--label: a LABEL instruction after the last stage's (the classic builder appends one to the file)."""
    from .parse import parse_trigger
    line = "LABEL " + " ".join(f"{_go_quote(k)}='{v}'" for k, v in sorted(opts.labels.items())) + " "
    stages = parsed.stages
    if opts.target:
        for s in stages:
            if s.name == opts.target.lower():
                s.instructions.append(parse_trigger(line))
                return
    stages[-1].instructions.append(parse_trigger(line))


def _go_quote(s: str) -> str:
    import json
    return json.dumps(s, ensure_ascii=False)


def _apply_ignore(context: Path, matcher: PatternMatcher, keep_unless_named: set[str]) -> None:
    """Remove what .dockerignore excludes (the CLI already did; the daemon checks again)."""
    for entry in sorted(fsutil.walk(context), key=lambda p: len(p.parts), reverse=True):
        if entry == context:
            continue
        rel = str(entry.relative_to(context))
        if matcher.matches(rel):
            if entry.is_dir() and not entry.is_symlink():
                # keep the directory while something inside is re-included
                with contextlib.suppress(OSError):
                    entry.rmdir()
            else:
                entry.unlink(missing_ok=True)


_ = (InvalidParameter, StepError, BinaryIO)
