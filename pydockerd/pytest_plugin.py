"""pytest plugin: run a test session against a private pydockerd.

    pytest -p pydockerd.pytest_plugin

starts a pydockerd with its own socket, data root, exec root, bridge and subnet before the tests
are collected, points ``DOCKER_HOST`` at it for the whole session (docker-py, testcontainers,
pytest-docker and the ``docker`` CLI all read it), and removes everything it made at the end,
also when tests fail or the session is interrupted.  Extra daemon flags come from
``--pydockerd-arg`` (repeatable) or ``PYDOCKERD_ARGS``.

Fixtures: ``pydockerd`` (the :class:`~pydockerd.private.PrivateDaemon`) and ``pydockerd_host``.
"""
from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator

import pytest

from .private import PrivateDaemon

_KEY = pytest.StashKey[PrivateDaemon]()
_OLD_HOST = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pydockerd")
    group.addoption("--pydockerd-arg", action="append", default=[], metavar="FLAG",
                    help="an extra flag for the private pydockerd (repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller's daemon and DOCKER_HOST are inherited
    extra = shlex.split(os.environ.get("PYDOCKERD_ARGS", "")) + list(config.getoption("--pydockerd-arg"))
    daemon = PrivateDaemon(extra_args=extra)
    try:
        daemon.start()
    except BaseException:
        daemon.teardown()
        raise
    config.stash[_KEY] = daemon
    config.stash[_OLD_HOST] = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = daemon.host


def pytest_unconfigure(config: pytest.Config) -> None:
    daemon = config.stash.get(_KEY, None)
    if daemon is None:
        return
    old = config.stash.get(_OLD_HOST, None)
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old
    daemon.teardown()
    left = {**daemon.leaks, **({"networking": daemon.network_leftovers} if daemon.network_leftovers else {}),
            **({"mounts after the stop": daemon.mount_leftovers} if daemon.mount_leftovers else {})}
    if left:
        # removed by the teardown all the same; said, because a daemon should not leave them
        sys.stderr.write("pydockerd: the private daemon left behind (now removed): "
                         + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in left.items()) + "\n")


def pytest_report_header(config: pytest.Config) -> str | None:
    daemon = config.stash.get(_KEY, None)
    return f"pydockerd: private daemon at {daemon.host} (bridge {daemon.bridge}, {daemon.bip})" if daemon else None


@pytest.fixture(scope="session")
def pydockerd(request: pytest.FixtureRequest) -> Iterator[PrivateDaemon]:
    daemon = request.config.stash.get(_KEY, None)
    if daemon is None:
        pytest.fail("the pydockerd plugin has no daemon in this process")
    yield daemon


@pytest.fixture(scope="session")
def pydockerd_host(pydockerd: PrivateDaemon) -> str:
    return pydockerd.host
