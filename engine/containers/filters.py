"""`docker ps` filters as a pure predicate over container records."""
from __future__ import annotations

from typing import Any, Callable

from ..errors import InvalidParameter
from ..types import STATUSES, Container

SUPPORTED = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume",
             "network", "health", "publish", "expose", "is-task"}


def _label_match(labels: dict[str, str], expr: str) -> bool:
    key, sep, value = expr.partition("=")
    if key.endswith("!"):
        return labels.get(key[:-1]) != value
    if not sep:
        return key in labels
    return labels.get(key) == value


def build(
    filters: dict[str, list[str]],
    lookup: Callable[[str], Container],
    image_matches: Callable[[Container, str], bool],
) -> Callable[[Container], bool]:
    for key in filters:
        if key not in SUPPORTED:
            raise InvalidParameter(f"invalid filter '{key}'")
    for status in filters.get("status", []):
        if status not in STATUSES:
            raise InvalidParameter(
                f"invalid filter 'status={status}'"
            )
    exited: list[int] = []
    for value in filters.get("exited", []):
        try:
            exited.append(int(value))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={value}'") from None
    before = [lookup(v) for v in filters.get("before", [])]
    since = [lookup(v) for v in filters.get("since", [])]

    def predicate(c: Container) -> bool:
        if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
            return False
        if "name" in filters and not any(_name_match(c.name, v) for v in filters["name"]):
            return False
        if "label" in filters and not all(_label_match(c.config.labels, v) for v in filters["label"]):
            return False
        if "status" in filters and c.state.status not in filters["status"]:
            return False
        if exited and (c.state.running or c.state.status == "created" or c.state.exit_code not in exited):
            return False
        if "ancestor" in filters and not any(image_matches(c, v) for v in filters["ancestor"]):
            return False
        if before and not all(c.created < b.created for b in before):
            return False
        if since and not all(c.created > s.created for s in since):
            return False
        if "is-task" in filters:
            want = filters["is-task"][0] in ("true", "1")
            if want != ("com.docker.swarm.task" in c.config.labels):
                return False
        for key in ("volume", "network", "publish", "expose", "health"):
            if key in filters and not _unsupported_match(c, key, filters[key]):
                return False
        return True

    return predicate


def _name_match(name: str, pattern: str) -> bool:
    import re

    try:
        return re.search(pattern.lstrip("/"), name) is not None
    except re.error:
        return pattern.lstrip("/") in name


def _unsupported_match(c: Container, key: str, values: list[str]) -> bool:
    # Containers have no volumes, published ports or healthchecks yet.
    if key == "network":
        mode = (c.annotations.get("HostConfig") or {}).get("NetworkMode") or "bridge"
        return mode in values
    if key == "health":
        health = c.state.health
        return (health.status if health is not None else "none") in values
    if key == "expose":
        return any(v in c.config.exposed_ports or f"{v}/tcp" in c.config.exposed_ports for v in values)
    return False


