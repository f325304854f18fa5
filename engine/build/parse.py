"""A Dockerfile, parsed by moby's own parser (the ``dockerfile`` package), into stages.

The parser gives one ``Command`` per instruction (flags, arguments, JSON
form, line numbers, and the ``# escape=`` directive already applied).  Here
they are checked as the classic builder's instruction parser checks them
(argument counts, known flags, stage names), with its error texts, and cut
into build stages.  ``# syntax=`` is ignored, as the classic builder does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile  # type: ignore[import-not-found]  # moby's parser; ships no stubs

from ..errors import InvalidParameter

KNOWN = {"from", "run", "cmd", "entrypoint", "label", "maintainer", "expose", "env", "add", "copy",
         "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell"}

# Flags each instruction accepts (those that exist only in BuildKit are refused at dispatch).
_FLAGS: dict[str, set[str]] = {
    "from": {"platform"},
    "copy": {"from", "chown", "chmod"},
    "add": {"chown", "chmod"},
    "run": {"mount"},
    "healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
}

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class ParseError(InvalidParameter):
    pass


@dataclass
class Instruction:
    cmd: str                        # lower case: "run"
    original: str                   # the line(s) as written, for "Step N/M : ..."
    args: tuple[str, ...]
    flags: dict[str, str]
    json: bool
    line: int
    sub: Instruction | None = None    # ONBUILD's trigger

    def flag(self, name: str, default: str = "") -> str:
        return self.flags.get(name, default)


@dataclass
class Stage:
    name: str                       # "" when unnamed
    base: str                       # FROM's image, unexpanded
    platform: str
    index: int
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Parsed:
    escape: str
    meta_args: list[Instruction]
    stages: list[Stage]


def _error(line: int, msg: str) -> ParseError:
    return ParseError(f"dockerfile parse error line {line}: {msg}")


def _flags(cmd: str, raw: tuple[str, ...], line: int) -> dict[str, str]:
    out: dict[str, str] = {}
    allowed = _FLAGS.get(cmd, set())
    for f in raw:
        body = f[2:] if f.startswith("--") else f.lstrip("-")
        name, eq, value = body.partition("=")
        if name not in allowed:
            raise _error(line, f"Unknown flag: {name}")
        if name in out:
            raise _error(line, f"Duplicate flag specified: {name}")
        if not eq and name not in ("link",):
            # Every flag the classic builder knows takes a value.
            value = ""
        out[name] = value
    return out


def _escape_of(text: str) -> str:
    """The ``# escape=`` directive (the parser applies it; we need it for word expansion)."""
    for line in text.splitlines():
        m = re.match(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("`", "\\"):
            return m.group(2)
    return "\\"


def _instruction(c: dockerfile.Command) -> Instruction:
    cmd = c.cmd.lower()
    line = c.start_line
    if c.heredocs:
        # The classic builder's parser has no heredocs: the body reads as instructions.
        body = c.heredocs[0].content.strip().split()
        word = body[0].upper() if body else c.heredocs[0].name
        raise _error(line + 1, f"unknown instruction: {word}")
    if cmd not in KNOWN:
        raise _error(line, f"unknown instruction: {c.cmd.upper()}")
    args = tuple(c.value)
    inst = Instruction(cmd, c.original, args, {}, c.json, line)
    if cmd == "onbuild":
        sub = (c.sub_cmd or "").lower()
        if sub == "onbuild":
            raise _error(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if sub in ("from", "maintainer"):
            raise _error(line, f"{sub.upper()} isn't allowed as an ONBUILD trigger")
        if not sub:
            raise _error(line, "ONBUILD requires at least one argument")
        # Re-parse the trigger on its own to check it like a top-level instruction.
        text = c.original.split(None, 1)[1] if len(c.original.split(None, 1)) > 1 else ""
        inner = dockerfile.parse_string(text + "\n")[0]
        inst.sub = _instruction(inner)
        inst.sub.line = line
        return inst
    inst.flags = _flags(cmd, c.flags, line)
    _check_args(inst)
    return inst


def _check_args(inst: Instruction) -> None:
    cmd, args, line = inst.cmd, inst.args, inst.line
    name = cmd.upper()
    nonempty = [a for a in args if a != ""]
    if cmd in ("env", "label", "expose", "volume", "arg", "from") and not nonempty:
        raise _error(line, f"{name} requires at least one argument")
    if cmd in ("maintainer", "workdir", "user", "stopsignal") and len(nonempty) != 1:
        raise _error(line, f"{name} requires exactly one argument")
    if cmd in ("copy", "add") and len(nonempty) < 2:
        raise _error(line, f"{name} requires at least two arguments, but only one was provided. "
                               "Destination could not be determined")
    if cmd == "env" and not inst.json and len(args) % 2 == 1:
        raise ParseError("failed to parse Dockerfile: ENV must have two arguments")
    if cmd == "healthcheck":
        kind = args[0].upper() if args else ""
        if kind not in ("CMD", "NONE"):
            raise _error(line, "Unknown type for healthcheck: " + (args[0] if args else ""))
        if kind == "NONE" and len(args) > 1:
            raise _error(line, "HEALTHCHECK NONE takes no arguments")
        if kind == "CMD" and len(args) < 2:
            raise _error(line, "Missing command after HEALTHCHECK CMD")
        from ..images.changes import parse_duration
        for key in ("interval", "timeout", "start-period", "start-interval"):
            raw = inst.flags.get(key)
            if raw:
                try:
                    parse_duration(raw)
                except Exception:  # noqa: BLE001
                    unit = "missing unit in duration" if raw.lstrip("-").replace(".", "").isdigit() \
                        else "invalid duration"
                    raise _error(line, f'time: {unit} "{raw}"') from None
        if "retries" in inst.flags:
            try:
                int(inst.flags["retries"])
            except ValueError:
                raise _error(line, f'strconv.ParseInt: parsing "{inst.flags["retries"]}": invalid syntax') \
                    from None
    if cmd == "shell" and not inst.json:
        raise _error(line, "SHELL requires the arguments to be in JSON form")


def parse(text: str, name: str = "Dockerfile") -> Parsed:
    if text == "":
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        raise ParseError(f"failed to parse Dockerfile: {err}") from None
    escape = _escape_of(text)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for c in commands:
        inst = _instruction(c)
        if inst.cmd == "from":
            stages.append(_stage(inst, len(stages)))
        elif not stages:
            if inst.cmd != "arg":
                raise InvalidParameter("no build stage in current context")
            meta.append(inst)
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise InvalidParameter("no build stage in current context")
    return Parsed(escape, meta, stages)


def _stage(inst: Instruction, index: int) -> Stage:
    args = [a for a in inst.args if a != ""]
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _error(inst.line, f'invalid name for build stage: "{args[2]}", '
                                    "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise _error(inst.line, "FROM requires either one or three arguments")
    return Stage(name, args[0], inst.flag("platform"), index, inst)


def parse_trigger(text: str) -> Instruction:
    """One ONBUILD trigger stored in an image (``RUN echo hi``)."""
    commands = dockerfile.parse_string(text + "\n")
    return _instruction(commands[0])
