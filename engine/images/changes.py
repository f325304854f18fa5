"""Dockerfile instructions applied to an image config (``docker import --change``,
``docker commit --change``).  Only the instructions that change metadata are
allowed, as in dockerd."""
from __future__ import annotations

import copy
import posixpath
import re
from typing import Any

from .. import gojson
from ..errors import InvalidParameter

VALID = {"cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "stopsignal", "user",
         "volume", "workdir"}

# container.Config's fields in the order dockerd writes them (omitempty ones left out).
_BASE_FIELDS: list[tuple[str, Any]] = [
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None),
    ("Cmd", None), ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
    ("OnBuild", None), ("Labels", None),
]
_ORDER = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
          "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
          "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell"]


def empty_config() -> dict[str, Any]:
    return dict(_BASE_FIELDS)


def ordered(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its keys in dockerd's order (unknown keys last)."""
    out = {k: config[k] for k in _ORDER if k in config}
    out.update({k: v for k, v in config.items() if k not in out})
    return out


def _logical_lines(changes: list[str]) -> list[str]:
    lines: list[str] = []
    buf = ""
    for raw in "\n".join(changes).split("\n"):
        line = raw.strip() if not buf else raw
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        buf += line
        if buf.strip():
            lines.append(buf.strip())
        buf = ""
    if buf.strip():
        lines.append(buf.strip())
    return lines


def _json_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = gojson.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value
    return ["/bin/sh", "-c", rest]


def _lookup(env: list[str], name: str) -> str | None:
    for e in reversed(env):
        k, _, v = e.partition("=")
        if k == name:
            return v
    return None


def _expand(word: str, env: list[str]) -> str:
    """One word with Dockerfile quoting and ``$VAR``/``${VAR}``/``${VAR:-x}``/``${VAR:+x}`` expansion."""
    out: list[str] = []
    i, n = 0, len(word)
    quote = ""
    while i < n:
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                out.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            out.append(word[i + 1])
            i += 2
            continue
        if c in "'\"" and (not quote or quote == c):
            quote = "" if quote else c
            i += 1
            continue
        if c == "$" and i + 1 < n:
            if word[i + 1] == "{":
                j = word.find("}", i + 2)
                if j < 0:
                    raise InvalidParameter(f"missing '}}' in '{word}'")
                body = word[i + 2:j]
                name, op, alt = body, "", ""
                for candidate in (":-", ":+"):
                    if candidate in body:
                        name, _, alt = body.partition(candidate)
                        op = candidate
                        break
                value = _lookup(env, name)
                if op == ":-":
                    out.append(value if value else _expand(alt, env))
                elif op == ":+":
                    out.append(_expand(alt, env) if value else "")
                else:
                    out.append(value or "")
                i = j + 1
                continue
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i + 1:])
            if m:
                out.append(_lookup(env, m.group(0)) or "")
                i += 1 + len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _raw_words(s: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes for _expand."""
    words: list[str] = []
    cur = ""
    quote = ""
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and quote != "'":
            cur += s[i:i + 2]
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            cur += c
        elif c in "'\"":
            quote = c
            cur += c
        elif c.isspace():
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if quote:
        raise InvalidParameter(f"unexpected end of statement while looking for matching {quote}")
    if cur:
        words.append(cur)
    return words


def _pairs(instr: str, rest: str, env: list[str]) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` (or the legacy ``k v`` form) as expanded pairs."""
    if not rest:
        raise InvalidParameter(f"{instr.upper()} requires at least one argument")
    words = _raw_words(rest)
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{instr.upper()} must have two arguments")
        return [(_expand(key, env), _expand(value.strip(), env))]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidParameter(f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        k, _, v = w.partition("=")
        k = _expand(k, env)
        if not k:
            raise InvalidParameter(f"{instr.upper()} names can not be blank")
        out.append((k, _expand(v, env)))
    return out


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def parse_duration(s: str) -> int:
    pos, total = 0, 0.0
    if s == "0":
        return 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise InvalidParameter(f'time: invalid duration "{s}"')
    return int(total)


def _healthcheck(rest: str) -> dict[str, Any]:
    words = rest.split()
    hc: dict[str, Any] = {}
    i = 0
    while i < len(words) and words[i].startswith("--"):
        flag, _, value = words[i][2:].partition("=")
        if flag in ("interval", "timeout", "start-period", "start-interval"):
            key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                   "start-interval": "StartInterval"}[flag]
            hc[key] = parse_duration(value)
        elif flag == "retries":
            try:
                hc["Retries"] = int(value)
            except ValueError:
                raise InvalidParameter(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
        else:
            raise InvalidParameter(f"Unknown flag: {flag}")
        i += 1
    remainder = rest
    for _ in range(i):
        remainder = remainder.lstrip()[len(remainder.lstrip().split(None, 1)[0]):]
    remainder = remainder.strip()
    kind, _, cmd = remainder.partition(" ")
    if kind.upper() == "NONE":
        if i or cmd.strip():
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind.upper() != "CMD":
        raise InvalidParameter(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
    cmd = cmd.strip()
    argv = _json_or_shell(cmd)
    test = ["CMD", *argv] if cmd.startswith("[") and argv[:2] != ["/bin/sh", "-c"] else ["CMD-SHELL", cmd]
    out: dict[str, Any] = {"Test": test}
    out.update(hc)
    return out


def apply_changes(config: dict[str, Any] | None, changes: list[str]) -> dict[str, Any]:
    """Return a new container config with ``changes`` (Dockerfile lines) applied."""
    cfg = copy.deepcopy(config) if config is not None else empty_config()
    lines = _logical_lines(changes)
    parsed: list[tuple[str, str, str]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.lower() not in VALID:
            raise InvalidParameter(f"{word.lower()} is not a valid change command")
        parsed.append((word.lower(), rest.strip(), line))
    cmd_set = False
    for instr, rest, _line in parsed:
        if instr == "cmd":
            cfg["Cmd"] = _json_or_shell(rest)
            cmd_set = True
        elif instr == "entrypoint":
            cfg["Entrypoint"] = _json_or_shell(rest) if rest else None
            if not cmd_set:
                cfg["Cmd"] = None
        elif instr == "env":
            env = list(cfg.get("Env") or [])
            for k, v in _pairs(instr, rest, env):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "label":
            labels = dict(cfg.get("Labels") or {})
            for k, v in _pairs(instr, rest, list(cfg.get("Env") or [])):
                labels[k] = v
            cfg["Labels"] = labels
        elif instr == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in (_expand(w, list(cfg.get("Env") or [])) for w in _raw_words(rest)):
                port, _, proto = p.partition("/")
                proto = (proto or "tcp").lower()
                lo, _, hi = port.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise InvalidParameter(f"Invalid containerPort: {port}")
                for n in range(int(lo), int(hi or lo) + 1):
                    ports[f"{n}/{proto}"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "onbuild":
            trigger = rest.split(None, 1)[0].upper() if rest else ""
            if trigger in ("ONBUILD",):
                raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger in ("FROM", "MAINTAINER"):
                raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
        elif instr == "user":
            cfg["User"] = _expand(rest, list(cfg.get("Env") or []))
        elif instr == "volume":
            vols = dict(cfg.get("Volumes") or {})
            items = gojson.loads(rest) if rest.startswith("[") else [
                _expand(w, list(cfg.get("Env") or [])) for w in _raw_words(rest)]
            for v in items:
                if not str(v).strip():
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                vols[str(v)] = {}
            cfg["Volumes"] = vols
        elif instr == "workdir":
            cur = cfg.get("WorkingDir") or "/"
            rest = _expand(rest, list(cfg.get("Env") or []))
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cur, rest)) if rest else cur
        elif instr == "stopsignal":
            cfg["StopSignal"] = _expand(rest, list(cfg.get("Env") or []))
        elif instr == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
    return ordered(cfg)
