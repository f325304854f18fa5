"""A second private daemon of the other kind, for tests that move images between pydockerd
and the reference dockerd (save on one, load and run on the other)."""
from __future__ import annotations

from conformance_tests import harness


def make_peer(session: harness.Daemon) -> harness.Daemon:
    """A private reference dockerd next to a pydockerd session daemon, or a private pydockerd
    next to a reference one (on a bridge and subnets chosen free).  The caller tears it down."""
    if session.kind == "pydockerd":
        return harness.private_daemon("dockerd")
    if session.kind == "dockerd":
        return harness.private_daemon("pydockerd")
    raise RuntimeError("peer daemons need a private session daemon")
