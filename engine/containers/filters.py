"""`docker ps` filters: dockerd's rules for GET /containers/json.

``parse`` checks the filter arguments up front (dockerd's error words) and
``select`` walks the containers newest first the way dockerd does: ``before``
skips everything up to and including its container, ``since`` stops there,
``limit`` counts included containers, and a stopped container is shown only
with ``all``, a ``status`` filter or a positive ``limit``.

Facts that live outside the container record (its networks, mounts, ports,
health) come from a ``facts`` callable, so this module stays pure.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import EngineError, InvalidParameter
from ..types import STATUSES, ZERO_TIME, Container

SUPPORTED = frozenset({"ancestor", "before", "exited", "id", "isolation", "label", "name", "status", "health",
                       "since", "volume", "network", "is-task", "publish", "expose"})
HEALTH_VALUES = ("starting", "healthy", "unhealthy", "none")
_INT = re.compile(r"[+-]?[0-9]+\Z")
_UINT = re.compile(r"[0-9]+\Z")


@dataclass(frozen=True)
class Facts:
    """What a filter needs to know about one container beyond its record."""

    networks: dict[str, str] = field(default_factory=dict)          # name -> network id
    mounts: tuple[tuple[str, str, str], ...] = ()                    # (name, source, destination)
    ports: tuple[tuple[int, int, str], ...] = ()                     # (private, public, type)
    health: str = "none"
    managed: bool = False                                            # a swarm task


@dataclass(frozen=True)
class Plan:
    filters: dict[str, list[str]]
    exited: tuple[int, ...]
    before: str | None            # container id
    since: str | None
    ancestor_images: frozenset[str] | None   # None: no ancestor filter
    task: bool | None             # None: no is-task filter
    publish: frozenset[str]       # "port/proto"
    expose: frozenset[str]
    id_matches: frozenset[str] | None        # None: no id filter
    name_patterns: tuple[re.Pattern[str] | None, ...]


def _go_atoi(value: str) -> int:
    if not _INT.match(value):
        raise EngineError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    return int(value)


def _go_port(value: str) -> int:
    """strconv.ParseUint(value, 10, 16), Go's words on failure."""
    if not _UINT.match(value):
        raise ValueError(f'strconv.ParseUint: parsing "{value}": invalid syntax')
    n = int(value)
    if n > 0xFFFF:
        raise ValueError(f'strconv.ParseUint: parsing "{value}": value out of range')
    return n


def _port_set(key: str, values: Iterable[str]) -> frozenset[str]:
    """`80`, `80/udp`, `8000-8010/tcp` -> {"80/tcp", ...}; dockerd's errors (a 500) otherwise."""
    out: set[str] = set()
    for value in values:
        if ":" in value:
            raise EngineError(f"filter for '{key}' should not contain ':': {value}")
        parts = value.split("/")
        if not parts[0]:
            proto, port = "", ""
        elif len(parts) == 1 or not parts[1]:
            proto, port = "tcp", parts[0]
        else:
            proto, port = parts[1], parts[0]
        try:
            if not port:
                raise ValueError("Empty string specified for ports.")
            if "-" not in port:
                start = end = _go_port(port)
            else:
                lo, hi = port.split("-")[:2]
                start, end = _go_port(lo), _go_port(hi)
                if end < start:
                    raise ValueError(f"Invalid range specified for the Port: {port}")
        except ValueError as err:
            raise EngineError(f"error while looking up for {key} {value}: {err}") from None
        out.update(f"{p}/{proto}" for p in range(start, end + 1))
    return frozenset(out)


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None   # Go's filters.Match: a pattern that does not compile matches nothing


def parse(
    filters: dict[str, list[str]],
    containers: list[Container],
    ancestor_images: Callable[[str], set[str]],
) -> Plan:
    """Validate ``filters`` (dockerd's order and words) and resolve what can be resolved once.

    ``ancestor_images(ref)`` gives the image named by ``ref`` and all its descendants
    (empty when there is no such image)."""
    for key in filters:
        if key not in SUPPORTED:
            raise InvalidParameter(f"invalid filter '{key}'")
    exited = tuple(_go_atoi(v) for v in filters.get("exited", []))
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise InvalidParameter(f"invalid filter 'status={value}'")
    task: bool | None = None
    if "is-task" in filters:
        values = filters["is-task"]
        if "true" in values:
            task = True
        elif "false" in values:
            task = False
        else:
            raise InvalidParameter(f"invalid filter 'is-task=[{' '.join(values)}]'")
    for value in filters.get("health", []):
        if value not in HEALTH_VALUES:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")
    before = since = None
    for value in filters.get("before", []):
        before = _id_or_name(containers, value)
    for value in filters.get("since", []):
        since = _id_or_name(containers, value)
    images: frozenset[str] | None = None
    if "ancestor" in filters:
        found: set[str] = set()
        for ref in filters["ancestor"]:
            found |= ancestor_images(ref)
        images = frozenset(found)
    publish = _port_set("publish", filters.get("publish", []))
    expose = _port_set("expose", filters.get("expose", []))
    id_matches: frozenset[str] | None = None
    if filters.get("id"):
        matched = set()
        for value in filters["id"]:
            hits = [c.id for c in containers if c.id.startswith(value)] if value else []
            if len(hits) == 1:   # dockerd's id index: a unique prefix, else nothing
                matched.add(hits[0])
        id_matches = frozenset(matched)
    return Plan(
        filters=filters, exited=exited, before=before, since=since, ancestor_images=images, task=task,
        publish=publish, expose=expose, id_matches=id_matches,
        name_patterns=tuple(_compile(p) for p in filters.get("name", [])),
    )


def _id_or_name(containers: list[Container], value: str) -> str:
    for c in containers:
        if c.id == value:
            return c.id
    bare = value[1:] if value.startswith("/") else value
    for c in containers:
        if c.name == bare:
            return c.id
    raise EngineError(f"no such container {value}")


def _labels_match(labels: dict[str, str], exprs: list[str]) -> bool:
    for expr in exprs:
        key, sep, value = expr.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _isolation_match(c: Container, patterns: list[re.Pattern[str] | None]) -> bool:
    value = (c.host_config.isolation or "default").lower()
    return any(p is not None and p.search(value) for p in patterns)


def _name_match(plan: Plan, name: str) -> bool:
    slashed = "/" + name
    return any(p is not None and (p.search(slashed) or p.search(name)) for p in plan.name_patterns)


def select(
    plan: Plan,
    containers: list[Container],
    *,
    show_all: bool,
    limit: int,
    facts: Callable[[Container], Facts],
) -> list[Container]:
    """The containers to list, newest first (``containers`` must already be newest first)."""
    flt = plan.filters
    show_all = show_all or bool(flt.get("status"))
    statuses = set(flt.get("status", []))
    health = set(flt.get("health", []))
    labels = flt.get("label", [])
    volumes = flt.get("volume", [])
    networks = flt.get("network", [])
    isolation = [_compile(v) for v in flt.get("isolation", [])]
    before = plan.before
    out: list[Container] = []
    for c in containers:
        if before is not None:
            if c.id == before:
                before = None
            continue
        if plan.since is not None and c.id == plan.since:
            break
        st = c.state
        if not st.running and not show_all and limit <= 0:
            continue
        if plan.name_patterns and not _name_match(plan, c.name):
            continue
        if plan.id_matches is not None and c.id not in plan.id_matches:
            continue
        needs_facts = plan.task is not None or health or volumes or networks or plan.publish or plan.expose
        f = facts(c) if needs_facts else None
        if plan.task is not None and f is not None and plan.task != f.managed:
            continue
        if labels and not _labels_match(c.config.labels, labels):
            continue
        if isolation and not _isolation_match(c, isolation):
            continue
        if 0 < limit <= len(out):
            break
        if plan.exited and not (st.exit_code in plan.exited and not st.running and st.started_at != ZERO_TIME):
            continue
        if statuses and st.status not in statuses:
            continue
        if health and f is not None and f.health not in health:
            continue
        if volumes and f is not None and not any(
                v in (dest for _, _, dest in f.mounts) or v in ((name or src) for name, src, _ in f.mounts)
                for v in volumes):
            continue
        if plan.ancestor_images is not None and c.image_id not in plan.ancestor_images:
            continue
        if networks and f is not None and not any(
                v in f.networks or any(nid.startswith(v) for nid in f.networks.values() if nid) for v in networks):
            continue
        if (plan.publish or plan.expose) and f is not None and not any(
                f"{public}/{typ}" in plan.publish or f"{private}/{typ}" in plan.expose
                for private, public, typ in f.ports):
            continue
        out.append(c)
    return out
