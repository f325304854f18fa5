"""The json-file ``attrs`` of a container: ``--log-opt labels=/env=`` (see options.log_attrs)
plus ``--log-opt tag=<template>``, rendered like dockerd's log tag template.

Only field actions (``{{.Name}}``, ``{{.ID}}``, ...) are supported, which is what
log tags use in practice; anything else in braces is refused with Go template words.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..errors import InvalidParameter
from .options import START_ERROR_PREFIX, log_attrs

_ACTION = re.compile(r"\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


def render_tag(template: str, fields: Mapping[str, str]) -> str:
    out: list[str] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            out.append(template[pos:])
            return "".join(out)
        out.append(template[pos:start])
        m = _ACTION.match(template, start)
        if template.find("}}", start) < 0:
            raise InvalidParameter(START_ERROR_PREFIX + "template: log-tag:1: unclosed action")
        if m is None:
            raise InvalidParameter(START_ERROR_PREFIX + f"template: log-tag:1: unsupported action in "
                                   f"{template[start:template.find('}}', start) + 2]!r}")
        name = m.group(1)
        if name not in fields:
            dot = template.index(".", start)
            raise InvalidParameter(
                START_ERROR_PREFIX + f'template: log-tag:1:{dot}: executing "log-tag" at <.{name}>: '
                f"can't evaluate field {name} in type *logger.Info")
        out.append(fields[name])
        pos = m.end()


def container_attrs(opts: Mapping[str, str], labels: Mapping[str, str], env: Sequence[str], *,
                    container_id: str, name: str, image_id: str, image_name: str) -> dict[str, str]:
    """Everything dockerd's json-file driver writes as ``attrs`` for this container."""
    attrs = log_attrs(opts, labels, env)
    template = opts.get("tag", "")
    if template:
        fields = {
            "ID": container_id[:12], "FullID": container_id, "Name": name.lstrip("/"),
            # dockerd truncates the image ID string itself, "sha256:" included.
            "ImageID": image_id[:12], "ImageFullID": image_id, "ImageName": image_name,
            "DaemonName": "docker",
        }
        attrs["tag"] = render_tag(template, fields)
    return attrs
