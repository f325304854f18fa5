"""A second private daemon of the other kind, for tests that move images between pydockerd
and the reference dockerd (save on one, load and run on the other)."""
from __future__ import annotations

import os
import shutil
import sys

from conformance_tests import harness


def make_peer(session: harness.Daemon) -> harness.Daemon:
    """A private reference dockerd next to a pydockerd session daemon, or a private pydockerd
    next to a reference one.  The caller tears it down."""
    if session.kind == "pydockerd":
        kind = "dockerd"
    elif session.kind == "dockerd":
        kind = "pydockerd"
    else:
        raise RuntimeError("peer daemons need a private session daemon")
    root = harness.new_private_root()
    host = f"unix://{root}/docker.sock"
    d = harness.Daemon(kind=kind, host=host, root=root)
    if kind == "dockerd":
        d._argv = [
            shutil.which("dockerd") or "/usr/sbin/dockerd",
            "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
            "--pidfile", str(d.pidfile), "-H", host,
            "--bridge", "none", "--iptables=false", "--live-restore",
            "--containerd", str(d.containerd_socket),
        ]
    else:
        # a bridge name and subnet of its own (netenv: the session daemon uses pyd<pid> and 10.213.x,
        # its address pool 10.214.x)
        d._argv = [
            sys.executable, "-m", "compat_server.daemon",
            "-H", host, "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
            "--pidfile", str(d.pidfile), "--bridge", f"pyp{os.getpid() % 100000}",
            "--bip", f"10.206.{os.getpid() % 250}.1/24",
        ]
    try:
        d.start()
    except BaseException:
        d.teardown()
        raise
    version = d.raw("GET", "/version", timeout=20).json()
    d.api_version = str(version.get("ApiVersion", ""))
    d.reference = d.kind == "dockerd"
    return d
