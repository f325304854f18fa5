"""json-file `--log-opt`s: validation and parsing with dockerd's rules and error texts.

dockerd checks the option *names* when a container is created (`validate_log_opts`) and
their *values* when the logger starts (`parse_log_opts`), where its messages are prefixed
with "failed to initialize logging driver: ".  Texts checked against dockerd 20.10.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidParameter

DRIVER = "json-file"
KNOWN_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
START_ERROR_PREFIX = "failed to initialize logging driver: "

_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class JsonFileOptions:
    max_size: int | None = None     # bytes; None = never rotate
    max_files: int = 1
    compress: bool = False


def validate_log_opts(opts: Mapping[str, str]) -> None:
    """At create: unknown option names are refused."""
    for key in opts:
        if key not in KNOWN_OPTS:
            raise InvalidParameter(f"unknown log opt '{key}' for {DRIVER} log driver")


def parse_size(text: str) -> int:
    """Docker's RAM size syntax with binary units: "10m" = 10 MiB, "1.5k" = 1536."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    number = float(m.group(1)) if m.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(f"invalid size: '{text}'")
    unit = (m.group(2) or "").lower()
    return int(number * _UNITS.get(unit, 1))


def parse_log_opts(opts: Mapping[str, str]) -> JsonFileOptions:
    """At start: the values, checked in dockerd's order.  InvalidParameter with dockerd's text."""
    def fail(msg: str) -> InvalidParameter:
        return InvalidParameter(START_ERROR_PREFIX + msg)

    max_size: int | None = None
    if "max-size" in opts:
        try:
            max_size = parse_size(opts["max-size"])
        except ValueError as err:
            raise fail(str(err)) from None
        if max_size <= 0:
            raise fail("max-size must be a positive number")
    max_files = 1
    if "max-file" in opts:
        raw = opts["max-file"]
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise fail(f'strconv.Atoi: parsing "{raw}": invalid syntax')
        max_files = int(raw)
        if max_files < 1:
            raise fail("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        raw = opts["compress"]
        if raw in _TRUE:
            compress = True
        elif raw not in _FALSE:
            raise fail(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
        if compress and (max_files <= 1 or max_size is None):
            raise fail("compress cannot be true when max-file is less than 2 or max-size is not set")
    return JsonFileOptions(max_size=max_size, max_files=max_files, compress=compress)


def log_attrs(opts: Mapping[str, str], labels: Mapping[str, str], env: Sequence[str]) -> dict[str, str]:
    """The `attrs` dockerd adds to each entry: labels named by `labels`/`labels-regex`, env
    variables named by `env`/`env-regex` (env wins on a name clash, as in dockerd)."""
    attrs: dict[str, str] = {}
    names = [n for n in opts.get("labels", "").split(",") if n]
    for name in names:
        if name in labels:
            attrs[name] = labels[name]
    if opts.get("labels-regex"):
        rx = re.compile(opts["labels-regex"])
        for k, v in labels.items():
            if rx.search(k):
                attrs[k] = v
    env_map: dict[str, str] = {}
    for item in env:
        k, sep, v = item.partition("=")
        if sep:
            env_map[k] = v
    for name in (n for n in opts.get("env", "").split(",") if n):
        if name in env_map:
            attrs[name] = env_map[name]
    if opts.get("env-regex"):
        rx = re.compile(opts["env-regex"])
        for k, v in env_map.items():
            if rx.search(k):
                attrs[k] = v
    return attrs
