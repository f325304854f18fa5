"""``docker top``: the host's ``ps``, filtered to the container's processes.

Like dockerd, the host's ``ps`` runs with the client's arguments (default
``-ef``) plus ``-q <pids>``; options that cannot be combined with ``-q`` get a
second run without it.  The rows kept are those whose PID column is one of
the container's processes (the pids in its cgroup).
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from ..errors import Conflict, EngineError

DEFAULT_PS_ARGS = "-ef"
_PID_ASSIGNMENT = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")


@dataclass(frozen=True)
class ProcessList:
    titles: tuple[str, ...]
    processes: tuple[tuple[str, ...], ...]


def validate_ps_args(ps_args: str) -> None:
    """Renaming the PID column (``-o user=PID``) would fool the filter; dockerd refuses it."""
    for key, value in _PID_ASSIGNMENT.findall(ps_args):
        if key != "pid":
            raise EngineError(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    # ASCII whitespace only, as dockerd splits (a command may contain other spaces).
    return [f for f in _ASCII_SPACE.split(line) if f]


def parse_ps_output(output: str, pids: list[int]) -> ProcessList:
    lines = output.split("\n")
    titles = _fields(lines[0])
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise EngineError("Couldn't find PID field in ps output") from None
    wanted = set(pids)
    rows: list[tuple[str, ...]] = []
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        raw = fields[pid_index] if pid_index < len(fields) else ""
        if raw == "-":
            pid = 0
        else:
            try:
                pid = int(raw)
            except ValueError:
                raise EngineError(f"Unexpected pid '{raw}': strconv.Atoi: parsing \"{raw}\": invalid syntax") \
                    from None
        if pid in wanted:
            # The last column (the command) takes the rest of the line.
            rows.append(tuple(fields[:len(titles) - 1]) + (" ".join(fields[len(titles) - 1:]),))
    return ProcessList(tuple(titles), tuple(rows))


async def _ps(args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def run_top(container_id: str, running: bool, pids: list[int], ps_args: str | None) -> ProcessList:
    if not running:
        raise Conflict(f"Container {container_id} is not running")
    ps_args = ps_args or DEFAULT_PS_ARGS
    validate_ps_args(ps_args)
    args = ps_args.split(" ")
    rc, out, err = await _ps(args + ["-q", ",".join(str(p) for p in pids)]) if pids else (1, b"", b"")
    if rc != 0:
        rc, out, err = await _ps(args)
        if rc != 0:
            text = err.decode(errors="replace").strip().split("\n", 1)[0].strip()
            raise EngineError(f"ps: {text or f'exit status {rc}'}")
    return parse_ps_output(out.decode(errors="replace"), pids)
