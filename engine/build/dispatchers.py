"""One dispatcher per Dockerfile instruction (the classic builder's semantics and words)."""
from __future__ import annotations

import json
import posixpath
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import InvalidParameter
from ..images.changes import parse_duration
from .builder import DEFAULT_PATH, Builder, StageState, StepError, _config_of, needs_buildkit
from .copy_add import dispatch_add, dispatch_copy
from .parse import Instruction, parse_trigger

Dispatcher = Callable[[Builder, StageState, Instruction], Awaitable[None]]


def meta_arg(b: Builder, inst: Instruction) -> None:
    for name, default in _arg_pairs(inst):
        b.args.add_meta(name, default)


def _arg_pairs(inst: Instruction) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for a in inst.args:
        if not a:
            continue
        name, eq, value = a.partition("=")
        out.append((name, _unquote(value) if eq else None))
    return out


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


# ------------------------------------------------------------------- FROM
async def dispatch_from(b: Builder, st: StageState, inst: Instruction) -> None:
    try:
        name = b.lex.process_word(st.stage.base, _meta_lookup(b))
    except InvalidParameter as err:
        raise StepError(f'failed to process "{st.stage.base}": {err.message}') from None
    if not name:
        raise StepError(f"base name ({st.stage.base}) should not be blank")
    platform = st.stage.platform
    if platform:
        platform = b.lex.process_word(platform, _meta_lookup(b))
    platform = platform or b.opts.platform
    previous = b.stage_by_name(name) if not name.isdigit() else None
    if previous is not None and previous is not st:
        st.image = previous.image
    elif name.lower() == "scratch":
        st.image = None
    else:
        image = None if b.opts.pull else await b.backend.get_image(name)
        if image is None:
            try:
                image = await b.backend.pull_image(name, platform, b.opts.registry_auth, b.emit)
            except InvalidParameter as err:
                raise StepError(err.message) from None
        st.image = image
    st.config = _config_of(st.image) if st.image is not None else st.config
    if not any(e.startswith("PATH=") for e in st.env()):
        st.config["Env"] = st.env() + [DEFAULT_PATH]
    triggers = list(st.config.get("OnBuild") or [])
    st.config["OnBuild"] = None
    if triggers:
        b.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for text in triggers:
            try:
                trig = parse_trigger(text)
            except InvalidParameter as err:
                raise StepError(err.message) from None
            await dispatch(b, st, trig)


def _meta_lookup(b: Builder) -> Callable[[str], str | None]:
    from .shell_lex import env_lookup
    return env_lookup(b.args.meta_env())


# -------------------------------------------------------------------- RUN
def _command(st: StageState, inst: Instruction) -> list[str]:
    if inst.json:
        return list(inst.args)
    return st.shell() + [" ".join(inst.args)]


async def dispatch_run(b: Builder, st: StageState, inst: Instruction) -> None:
    if "mount" in inst.flags:
        raise StepError(needs_buildkit("--mount"))
    cmd = _command(st, inst)
    args = sorted(st.args.filtered(st.env()), key=lambda kv: f"{kv[0]}={kv[1]}")
    probe_cmd = cmd
    if args:
        probe_cmd = [f"|{len(args)}"] + [f"{k}={v}" for k, v in args] + cmd
    env = st.env() + [f"{k}={v}" for k, v in args] + [f"{k}={v}" for k, v in st.args.predefined(st.env())]
    await b.run(st, cmd, probe_cmd, env)


# ---------------------------------------------------------- CMD/ENTRYPOINT
async def dispatch_cmd(b: Builder, st: StageState, inst: Instruction) -> None:
    cmd = _command(st, inst)
    st.config["Cmd"] = cmd
    st.cmd_set = True
    await b.commit_meta(st, f"CMD {_go_quote_list(cmd)}")


async def dispatch_entrypoint(b: Builder, st: StageState, inst: Instruction) -> None:
    ep = _command(st, inst) if (inst.json or any(inst.args)) else []
    st.config["Entrypoint"] = ep or None
    if not st.cmd_set:
        st.config["Cmd"] = None
    await b.commit_meta(st, f"ENTRYPOINT {_go_quote_list(ep)}")


def _go_list(items: list[str]) -> str:
    """Go's %v of a []string: [a b]."""
    return "[" + " ".join(items) + "]"


def _go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"] (as the classic builder writes CMD/ENTRYPOINT comments)."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


# ------------------------------------------------------------ ENV / LABEL
def _pairs(b: Builder, st: StageState, inst: Instruction) -> list[tuple[str, str]]:
    args = list(inst.args)
    out = []
    for i in range(0, len(args) - 1, 2):
        out.append((b.expand(st, args[i]), b.expand(st, args[i + 1])))
    return out


async def dispatch_env(b: Builder, st: StageState, inst: Instruction) -> None:
    pairs = []
    for k, v in _pairs(b, st, inst):
        pairs.append(f"{k}={v}")
        # A key set again keeps its place (dockerd replaces it in the list).
        env = st.env()
        keys = [e.split("=", 1)[0] for e in env]
        if k in keys:
            env[keys.index(k)] = f"{k}={v}"
        else:
            env.append(f"{k}={v}")
        st.config["Env"] = env
    await b.commit_meta(st, "ENV " + " ".join(pairs))


async def dispatch_label(b: Builder, st: StageState, inst: Instruction) -> None:
    labels = dict(st.config.get("Labels") or {})
    pairs = []
    for k, v in _pairs(b, st, inst):
        labels[k] = v
        pairs.append(f"{k}={v}")
    st.config["Labels"] = labels
    await b.commit_meta(st, "LABEL " + " ".join(pairs))


async def dispatch_maintainer(b: Builder, st: StageState, inst: Instruction) -> None:
    st.author = inst.args[0]
    await b.commit_meta(st, f"MAINTAINER {inst.args[0]}")


# -------------------------------------------------------------- EXPOSE ...
async def dispatch_expose(b: Builder, st: StageState, inst: Instruction) -> None:
    ports: list[str] = []
    for a in inst.args:
        ports.extend(b.expand_words(st, a))
    exposed = dict(st.config.get("ExposedPorts") or {})
    for p in ports:
        port, _, proto = p.partition("/")
        proto = proto.lower() or "tcp"
        lo, _, hi = port.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise StepError(f"Invalid containerPort: {port}")
        if proto not in ("tcp", "udp", "sctp"):
            raise StepError(f"Invalid proto: {proto}")
        for n in range(int(lo), int(hi or lo) + 1):
            exposed[f"{n}/{proto}"] = {}
    st.config["ExposedPorts"] = exposed
    await b.commit_meta(st, "EXPOSE " + " ".join(ports))


async def dispatch_volume(b: Builder, st: StageState, inst: Instruction) -> None:
    vols = dict(st.config.get("Volumes") or {})
    words = list(inst.args) if inst.json else [w for a in inst.args for w in b.expand_words(st, a)]
    for v in words:
        v = b.expand(st, v) if inst.json else v
        if not v.strip():
            raise StepError("VOLUME specified can not be an empty string")
        vols[v] = {}
    st.config["Volumes"] = vols
    await b.commit_meta(st, f"VOLUME {_go_list(words)}")


async def dispatch_user(b: Builder, st: StageState, inst: Instruction) -> None:
    user = b.expand(st, inst.args[0])
    st.config["User"] = user
    await b.commit_meta(st, f"USER {user}")


async def dispatch_workdir(b: Builder, st: StageState, inst: Instruction) -> None:
    path = b.expand(st, inst.args[0])
    current = st.config.get("WorkingDir") or "/"
    wd = path if path.startswith("/") else posixpath.join(current, path)
    wd = posixpath.normpath(wd) if wd != "/" else wd
    st.config["WorkingDir"] = wd
    await b.commit_workdir(st, wd)


async def dispatch_stopsignal(b: Builder, st: StageState, inst: Instruction) -> None:
    sig = b.expand(st, inst.args[0])
    if not _valid_signal(sig):
        raise StepError(f"Invalid signal: {sig}")
    st.config["StopSignal"] = sig
    await b.commit_meta(st, f"STOPSIGNAL {sig}")


def _valid_signal(s: str) -> bool:
    if s.isdigit():
        return 0 < int(s) < 65
    name = s.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.startswith(("SIGRTMIN", "SIGRTMAX")):
        return True
    return hasattr(signal, name) and isinstance(getattr(signal, name), signal.Signals)


async def dispatch_shell(b: Builder, st: StageState, inst: Instruction) -> None:
    st.config["Shell"] = list(inst.args)
    await b.commit_meta(st, f"SHELL {_go_list(list(inst.args))}")


async def dispatch_onbuild(b: Builder, st: StageState, inst: Instruction) -> None:
    assert inst.sub is not None
    expr = inst.original.split(None, 1)[1].strip()
    word = expr.split(None, 1)
    expr = word[0].upper() + (" " + word[1] if len(word) > 1 else "")
    st.config["OnBuild"] = list(st.config.get("OnBuild") or []) + [expr]
    await b.commit_meta(st, f"ONBUILD {expr}")


async def dispatch_healthcheck(b: Builder, st: StageState, inst: Instruction) -> None:
    kind = inst.args[0].upper()
    if kind == "NONE":
        hc: dict[str, Any] = {"Test": ["NONE"]}
    else:
        rest = list(inst.args[1:])
        test = ["CMD", *rest] if inst.json else ["CMD-SHELL", " ".join(rest)]
        hc = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            if inst.flags.get(flag):
                value = parse_duration(inst.flags[flag])
                if value and value < 1_000_000:
                    raise StepError(f"{'start period' if flag == 'start-period' else flag} "
                                    "cannot be less than 1ms")
                if value:
                    hc[key] = value
        if inst.flags.get("retries"):
            retries = int(inst.flags["retries"])
            if retries < 0:
                raise StepError("--retries cannot be negative")
            if retries:
                hc["Retries"] = retries
    old = (st.config.get("Healthcheck") or {}).get("Test") or []
    if old and old[0] != "NONE":
        b.out(f"Note: overriding previous HEALTHCHECK: {_go_list(list(old))}\n")
    st.config["Healthcheck"] = hc
    await b.commit_meta(st, f"HEALTHCHECK {_hc_comment(hc)}")


def _hc_comment(hc: dict[str, Any]) -> str:
    """Go's %q of a *HealthConfig, as the classic builder writes it into history:
    &{["CMD-SHELL" "x"] "5s" "3s" "0s" '\x02'}."""
    parts = [_go_quote_list(hc["Test"])]
    for key in ("Interval", "Timeout", "StartPeriod"):
        parts.append(f'"{_go_duration(int(hc.get(key) or 0))}"')
    parts.append(_go_quote_rune(int(hc.get("Retries") or 0)))
    return "&{" + " ".join(parts) + "}"


def _go_quote_rune(n: int) -> str:
    """Go's %q of an int: a quoted character literal."""
    special = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 39: "\\'",
               92: "\\\\"}
    if n in special:
        return f"'{special[n]}'"
    if 32 <= n < 127 or (n > 160 and chr(n).isprintable()):
        return f"'{chr(n)}'"
    if n < 256:
        return f"'\\x{n:02x}'"
    return f"'\\u{n:04x}'" if n < 0x10000 else f"'\\U{n:08x}'"


def _go_duration(ns: int) -> str:
    """Go's time.Duration String(): 1h2m3s, 1.5s, 300ms, 0s."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    sec = rem / 1e9
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return out + f"{sec:g}s"


async def dispatch_arg(b: Builder, st: StageState, inst: Instruction) -> None:
    names = []
    for name, default in _arg_pairs(inst):
        if default is not None:
            default = b.expand(st, default)
        st.args.declare(name, default)
        names.append(f"{name}={default}" if default is not None else name)
    await b.commit_meta(st, "ARG " + " ".join(names))


DISPATCHERS: dict[str, Dispatcher] = {
    "run": dispatch_run, "cmd": dispatch_cmd, "entrypoint": dispatch_entrypoint, "env": dispatch_env,
    "label": dispatch_label, "maintainer": dispatch_maintainer, "expose": dispatch_expose,
    "volume": dispatch_volume, "user": dispatch_user, "workdir": dispatch_workdir,
    "stopsignal": dispatch_stopsignal, "shell": dispatch_shell, "onbuild": dispatch_onbuild,
    "healthcheck": dispatch_healthcheck, "arg": dispatch_arg, "copy": dispatch_copy, "add": dispatch_add,
}


async def dispatch(b: Builder, st: StageState, inst: Instruction) -> None:
    fn = DISPATCHERS.get(inst.cmd)
    if fn is None:
        raise StepError(f"unknown instruction: {inst.cmd.upper()}")
    await fn(b, st, inst)
