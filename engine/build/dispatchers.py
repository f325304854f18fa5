"""One dispatcher per Dockerfile instruction (the classic builder's semantics and words)."""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidParameter
from ..images.changes import parse_duration
from . import fsutil
from .builder import DEFAULT_PATH, Builder, StageState, StepError, _config_of
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
        raise StepError(_needs_buildkit("--mount"))
    cmd = _command(st, inst)
    args = sorted(st.args.filtered(st.env()), key=lambda kv: f"{kv[0]}={kv[1]}")
    probe_cmd = cmd
    if args:
        probe_cmd = [f"|{len(args)}"] + [f"{k}={v}" for k, v in args] + cmd
    env = st.env() + [f"{k}={v}" for k, v in args] + [f"{k}={v}" for k, v in st.args.predefined(st.env())]
    await b.run(st, cmd, probe_cmd, env)


def _needs_buildkit(option: str) -> str:
    return (f"the {option} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
            "to learn how to build images with BuildKit enabled")


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
    if st.image is None:
        return
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


# ---------------------------------------------------------------- COPY/ADD
async def dispatch_copy(b: Builder, st: StageState, inst: Instruction) -> None:
    await _copy(b, st, inst, "COPY")


async def dispatch_add(b: Builder, st: StageState, inst: Instruction) -> None:
    await _copy(b, st, inst, "ADD")


class _Source:
    def __init__(self, root: Path | None, path: Path | None, name: str, hash_: str, *,
                 url: str = "", mtime: float | None = None) -> None:
        self.root = root          # where path lives (context or a stage's rootfs)
        self.path = path
        self.name = name          # base name for "dest/" targets
        self.hash = hash_
        self.url = url
        self.mtime = mtime


async def _copy(b: Builder, st: StageState, inst: Instruction, what: str) -> None:
    if "chmod" in inst.flags:
        raise StepError(_needs_buildkit("--chmod"))
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
        sources.extend(_context_sources(b, s, what))
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


def _context_sources(b: Builder, src: str, what: str) -> list[_Source]:
    rel = posixpath.normpath(src) if src else "."
    if rel == ".." or rel.startswith("../"):
        raise StepError(f"{what} failed: forbidden path outside the build context: {src} ()")
    return _scoped_sources(b.context, rel.lstrip("/") or ".", what, src)


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
        raise StepError(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                        f"stat {rel}: file does not exist")
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
    tmpdir = Path(tempfile.mkdtemp(prefix="add-url-", dir=b.context.parent))
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
