"""dockerd's `/events` filters as a pure predicate builder.

Matching rules, as dockerd applies them (every present filter key must match):
- `event`: exact action match, except that when any value is `health_status`, `exec_create`
  or `exec_start` (actions that carry a ": detail" suffix) values match as prefixes;
- `type`, `scope`: exact;
- `container`, `daemon`, `network`, `volume`, `plugin`, `node`, `service`, `secret`,
  `config`: the actor's ID or its `name` attribute, as a prefix match (whatever the
  event's type: `container=web` also drops image events);
- `image`: exact match of the actor ID or its image name (attribute `name` for image
  events, `image` otherwise), also with the tag/digest stripped and the name shortened
  to its familiar form;
- `label`: every `key` / `key=value` must be among the actor's attributes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import InvalidParameter
from .bus import Event

ACCEPTED = frozenset({"config", "container", "daemon", "event", "image", "label", "network", "node",
                      "plugin", "scope", "secret", "service", "type", "volume"})

# Filter keys matched by actor ID or name prefix (the key is the event type it names).
_NAME_KEYS = ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config")
_FUZZY_ACTIONS = frozenset({"health_status", "exec_create", "exec_start"})


def _exact(values: list[str] | None, source: str) -> bool:
    return not values or source in values


def _fuzzy(values: list[str] | None, source: str) -> bool:
    return not values or any(source.startswith(v) for v in values)


def _labels(values: list[str] | None, attributes: Mapping[str, str]) -> bool:
    if not values:
        return True
    for expr in values:
        key, sep, value = expr.partition("=")
        if key not in attributes:
            return False
        if sep and attributes[key] != value:
            return False
    return True


def familiar_name(ref: str) -> str:
    """`docker.io/library/busybox:latest` -> `busybox`; tag and digest dropped."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    for prefix in ("docker.io/library/", "index.docker.io/library/"):
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            return name[len(prefix):]
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def validate(flt: Mapping[str, list[str]]) -> None:
    for key in flt:
        if key not in ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")


def build_predicate(flt: Mapping[str, list[str]]) -> Callable[[Event], bool]:
    """A predicate for `flt` ({key: [values]}, as decoded from the `filters` query). Raises
    InvalidParameter for an unknown key."""
    validate(flt)
    f = {k: list(v) for k, v in flt.items() if v}
    events = f.get("event")
    fuzzy_event = bool(events) and any(v in _FUZZY_ACTIONS for v in events or [])
    images = f.get("image")

    def predicate(ev: Event) -> bool:
        if events and not (_fuzzy(events, ev.action) if fuzzy_event else _exact(events, ev.action)):
            return False
        if not _exact(f.get("type"), ev.type) or not _exact(f.get("scope"), ev.scope):
            return False
        name = ev.attributes.get("name", "")
        for key in _NAME_KEYS:
            values = f.get(key)
            if values and not (_fuzzy(values, ev.actor_id) or _fuzzy(values, name)):
                return False
        if images:
            image_name = ev.attributes.get("name" if ev.type == "image" else "image", "")
            if not (ev.actor_id in images or image_name in images
                    or familiar_name(ev.actor_id) in images or familiar_name(image_name) in images):
                return False
        return _labels(f.get("label"), ev.attributes)

    return predicate
