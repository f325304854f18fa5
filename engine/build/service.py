"""The build service: a context tar and options in, an image (and its tags) out.

``prepare`` does everything that can fail before the output stream starts
(unpack the context, find and parse the Dockerfile, check the target), so
those errors get an HTTP status; ``run`` streams the steps.  The unpacked
context lives in a scratch directory removed when the build ends.
"""
from __future__ import annotations

import asyncio
import logging
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import EngineError, InvalidParameter
from . import fsutil
from .backend import BuildBackend, BuildImage, Emit
from .builder import Builder, BuildOptions, StepError
from .context import BuildContext
from .dockerignore import PatternMatcher
from .parse import Parsed, parse

log = logging.getLogger(__name__)


@dataclass
class PreparedBuild:
    opts: BuildOptions
    context: BuildContext
    parsed: Parsed
    workdir: Path

    def cleanup(self) -> None:
        self.context.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class BuildService:
    def __init__(self, backend: BuildBackend, tmp_root: Path) -> None:
        self.backend = backend
        self.tmp_root = tmp_root

    # ------------------------------------------------------------ prepare
    async def prepare(self, opts: BuildOptions, context: BinaryIO) -> PreparedBuild:
        """``context``: the tar stream (read in a worker thread, so it may be a pipe fed by the client)."""
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="build-", dir=self.tmp_root))
        try:
            root = workdir / "context"
            root.mkdir()
            ctx = await asyncio.to_thread(BuildContext.receive, context, root, workdir / "context.spool")
            text = await asyncio.to_thread(self._dockerfile, ctx, opts)
            parsed = parse(text, opts.dockerfile or "Dockerfile")
            if opts.labels:
                _append_labels(parsed, opts)
            prepared = PreparedBuild(opts, ctx, parsed, workdir)
            Builder(self.backend, opts, parsed, ctx, lambda m: None).check_target()
            return prepared
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    @staticmethod
    def _dockerfile(ctx: BuildContext, opts: BuildOptions) -> str:
        name = opts.dockerfile or "Dockerfile"
        rel = posixpath.normpath(name)
        if rel == ".." or rel.startswith("../"):
            raise EngineError(f"forbidden path outside the build context: {name} ()")
        rel = rel.lstrip("/") or "."
        raw = _context_file(ctx, rel)
        if raw is None and not opts.dockerfile:
            raw = _context_file(ctx, "dockerfile")
        if raw is None:
            raise EngineError(f"Cannot locate specified Dockerfile: {name}")
        text = raw.decode("utf-8", "replace")
        text = text.removeprefix("\ufeff")
        ignore = _context_file(ctx, ".dockerignore")
        if ignore is not None:
            matcher = PatternMatcher.from_file_content(ignore.decode("utf-8", "replace"))
            # As dockerd: the client applied the patterns; the daemon only drops the Dockerfile and
            # .dockerignore when they are excluded (the CLI's -f - relies on it).
            for name in {rel, ".dockerignore"}:
                if matcher.matches(name):
                    ctx.remove(name)
        return text

    # ----------------------------------------------------------------- run
    async def run(self, prepared: PreparedBuild, emit: Emit, *, fetch_url: Any = None) -> BuildImage:
        opts = prepared.opts
        b = Builder(self.backend, opts, prepared.parsed, prepared.context, emit, fetch_url=fetch_url)
        image = await b.build()
        unused = b.args.unused()
        if unused:
            b.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        b.out(f"Successfully built {image.id.split(':', 1)[-1][:12]}\n")
        for t in opts.tags:
            familiar = await self.backend.tag(image.id, t)
            b.out(f"Successfully tagged {familiar}\n")
        return image


def _context_file(ctx: BuildContext, rel: str) -> bytes | None:
    """A regular file of the context (symlinks followed inside it), or None."""
    data = ctx.read_file(rel)
    if data is not None:
        return data
    if ctx.missing(rel) or ctx.is_dir(rel):
        return None
    path = fsutil.resolve(ctx.unpack(), rel)
    return path.read_bytes() if path.is_file() else None


def _append_labels(parsed: Parsed, opts: BuildOptions) -> None:
    """--label: one LABEL step per key (sorted), after the last stage to build (current dockerd;
    20.10 appended one LABEL line to the file's last stage). The values are not expanded."""
    from .parse import parse_trigger
    stages = parsed.stages
    stage = stages[-1]
    if opts.target:
        stage = next((s for s in stages if s.name == opts.target.lower()), stage)
    for key, value in sorted(opts.labels.items()):
        inst = parse_trigger("LABEL " + _go_quote(key) + "='" + value.replace("'", "'\\''") + "'")
        inst.original = f"LABEL {key}={value}"
        stage.instructions.append(inst)


def _go_quote(s: str) -> str:
    import json
    return json.dumps(s, ensure_ascii=False)


_ = (InvalidParameter, StepError, BinaryIO)
