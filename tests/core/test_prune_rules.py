"""engine.containers.prune: which stopped containers a filter set selects."""
from __future__ import annotations

import pytest

from engine.containers.prune import build_predicate
from engine.errors import InvalidParameter
from engine.types import RUNNING, Container, ContainerConfig, ContainerState, HostConfig

NOW = 1_700_000_000.0


def _c(created: str, labels: dict[str, str] | None = None, status: str = "exited") -> Container:
    return Container("id", "n", created, "sha256:x", ContainerConfig(labels=labels or {}), HostConfig(),
                     "true", (), state=ContainerState(status=status))


OLD = "2023-11-14T20:00:00Z"          # ~13 min before NOW
NEW = "2023-11-14T22:13:19.5Z"        # half a second before NOW


def test_running_containers_are_never_selected() -> None:
    assert build_predicate({})(_c(OLD)) is True
    assert build_predicate({})(_c(OLD, status=RUNNING)) is False


@pytest.mark.parametrize("until, old, new", [
    ("10m", True, False), ("1s", True, False), ("0s", True, True), ("2023-11-14T21:00:00Z", True, False),
    (str(int(NOW)), True, True), ("1699990000", False, False),
])
def test_until(until: str, old: bool, new: bool) -> None:
    pred = build_predicate({"until": [until]}, now_s=NOW)
    assert (pred(_c(OLD)), pred(_c(NEW))) == (old, new)


def test_labels_and_negated_labels() -> None:
    web = _c(OLD, {"tier": "web", "app": "a"})
    db = _c(OLD, {"tier": "db", "app": "a"})
    bare = _c(OLD)
    pick = build_predicate({"label": ["app"]})
    assert (pick(web), pick(db), pick(bare)) == (True, True, False)
    pick = build_predicate({"label": ["app=a", "tier=db"]})
    assert (pick(web), pick(db)) == (False, True)
    keep_web = build_predicate({"label!": ["tier=web"]})
    assert (keep_web(web), keep_web(db), keep_web(bare)) == (False, True, True)
    both = build_predicate({"label!": ["tier=web", "app=b"]})     # all must match to keep
    assert both(web) is True


@pytest.mark.parametrize("flt, message", [
    ({"name": ["x"]}, "invalid filter 'name'"),
    ({"until": ["1h", "2h"]}, "more than one until filter specified"),
    ({"until": ["soon"]}, 'failed to parse value as time or duration: "soon"'),
])
def test_bad_filters(flt: dict, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        build_predicate(flt)
    assert err.value.message == message
