"""Filters of ``GET /images/json`` and ``POST /images/prune``, and the image list itself.

dockerd's rules (daemon/images): the ``reference`` filter narrows the names an
image is listed with, not just the images; an image without names is listed
only when it has no children (or ``all``) and no ``reference`` filter is given;
``before``/``since`` take the last value given; ``label`` needs every value to
match.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import timeutil
from ..errors import EngineError, InvalidParameter
from . import reference as refs

if TYPE_CHECKING:
    from .store import Image, ImageStore

LIST_KEYS = {"dangling", "label", "before", "since", "reference", "until"}
PRUNE_KEYS = {"dangling", "label", "label!", "until"}


class BadPattern(EngineError):
    """Go's path.ErrBadPattern, which dockerd passes through as a 500."""


def validate_keys(flt: dict[str, list[str]], accepted: set[str]) -> None:
    for key in flt:
        if key not in accepted:
            raise InvalidParameter(f"invalid filter '{key}'")


def go_match(pattern: str, name: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` do not cross ``/``; a malformed class is an error."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            k = pattern.find("]", j)
            if k < 0 or k == j:
                raise BadPattern("syntax error in pattern")
            body = pattern[j:k].replace("\\", "\\\\")
            out += "[" + ("^" if pattern[i + 1] == "^" else "") + body + "]"
            i = k
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern("syntax error in pattern")
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.fullmatch(out, name, re.DOTALL) is not None


def bool_filter(flt: dict[str, list[str]], key: str, default: bool) -> bool:
    """dockerd's GetBoolOrDefault: all values must agree on true/1 or false/0."""
    values = flt.get(key) or []
    if not values:
        return default
    lowered = {v.lower() for v in values}
    if lowered <= {"true", "1"}:
        return True
    if lowered <= {"false", "0"}:
        return False
    raise InvalidParameter(f"invalid filter '{key}={','.join(values)}'")


def match_kv(wanted: list[str], labels: dict[str, str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` is in ``labels``."""
    for item in wanted:
        k, eq, v = item.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def until_ns(values: list[str]) -> int | None:
    """The ``until`` filter (one value) as unix nanoseconds."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    try:
        return timeutil.parse_timestamp_arg(values[0])
    except ValueError:
        raise EngineError(f'failed to parse value as time or duration: "{values[0]}"') from None


def created_ns(image: Image) -> int:
    try:
        return timeutil.parse_ns(image.created)
    except (ValueError, TypeError):
        return 0


def labels_of(image: Image) -> dict[str, str]:
    return dict((image.config.get("config") or {}).get("Labels") or {})


def reference_match(pattern: str, ref: refs.Reference) -> bool:
    """dockerd's FamiliarMatch: the familiar string, else the familiar name."""
    return go_match(pattern, ref.familiar()) or go_match(pattern, ref.familiar_name())


@dataclass(frozen=True)
class Listed:
    image: Image
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    shared_size: int          # -1 unless asked for
    containers: int           # -1 unless asked for


def list_images(store: ImageStore, flt: dict[str, list[str]], *, all_: bool = False, shared_size: bool = False,
                containers: Callable[[str], int] | None = None) -> list[Listed]:
    """``GET /images/json``, newest first."""
    validate_keys(flt, LIST_KEYS)
    dangling = bool_filter(flt, "dangling", False) if "dangling" in flt else None
    labels = list(flt.get("label") or [])
    patterns = list(flt.get("reference") or [])
    before = created_ns(store.get(flt["before"][-1])) if flt.get("before") else None
    since = created_ns(store.get(flt["since"][-1])) if flt.get("since") else None
    until = until_ns(list(flt.get("until") or []))

    images = store.list()
    has_children = {img.parent for img in images if img.parent}
    out: list[Listed] = []
    for img in images:
        created = created_ns(img)
        if before is not None and created >= before:
            continue
        if since is not None and created <= since:
            continue
        if until is not None and created > until:
            continue
        if labels and not match_kv(labels, labels_of(img)):
            continue
        tags: list[str] = []
        digests: list[str] = []
        for ref in store.references(img.id):
            if patterns and not any(reference_match(p, ref) for p in patterns):
                continue
            (digests if ref.digest is not None else tags).append(ref.familiar())
        if not tags and not digests:
            if not (all_ or img.id not in has_children):
                continue
            if dangling is False or patterns:
                continue
        elif dangling is True and tags:
            continue
        out.append(Listed(img, tuple(sorted(tags)), tuple(sorted(digests)), -1,
                          containers(img.id) if containers is not None else -1))
    if shared_size:
        out = _with_shared_size(store, out)
    out.sort(key=lambda x: created_ns(x.image), reverse=True)
    return out


def _with_shared_size(store: ImageStore, rows: list[Listed]) -> list[Listed]:
    """SharedSize: the size of the layers an image has in common with any other image."""
    uses: dict[str, int] = {}
    for img in store.list():
        for chain in img.chain_ids:
            uses[chain] = uses.get(chain, 0) + 1
    result = []
    for row in rows:
        shared = sum(
            size
            for chain, size in zip(row.image.chain_ids, row.image.layer_sizes, strict=True)
            if uses.get(chain, 0) > 1
        )
        result.append(Listed(row.image, row.repo_tags, row.repo_digests, shared, row.containers))
    return result


def build_predicate(store: ImageStore, flt: dict[str, list[str]]) -> Callable[[Image], bool]:
    """A yes/no test per image for the same filters (used where only membership matters)."""
    keep = {row.image.id for row in list_images(store, flt, all_=True)}
    return lambda img: img.id in keep
