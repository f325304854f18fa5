"""Log drivers other than json-file (issue 9 item 15): none, local, journald/syslog, unknown names."""
from __future__ import annotations

import os
import re

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import ok

BUSYBOX = "busybox"


def test_none_keeps_no_logs(daemon: Daemon, busybox: str, name: str) -> None:
    # attached output does not go through the log driver: it still arrives
    assert ok(daemon.cli("run", "--name", name, "--log-driver", "none", BUSYBOX, "echo", "hi")) == "hi\n"
    proc = daemon.cli("logs", name)
    assert proc.returncode == 1
    assert "Error response from daemon: configured logging driver does not support reading" in proc.stderr
    resp = daemon.raw("GET", f"/containers/{name}/logs?stdout=1&stderr=1")
    assert (resp.status, resp.message) == (501, "configured logging driver does not support reading")
    assert ok(daemon.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}|{{.LogPath}}", name)).strip() \
        == '{"Type":"none","Config":{}}|'
    if daemon.private:
        cid = ok(daemon.cli("inspect", "-f", "{{.Id}}", name)).strip()
        cdir = daemon.data_root / "containers" / cid
        assert not [p.name for p in cdir.rglob("*") if "log" in p.name], "a log file was kept"


def test_none_through_the_api(daemon: Daemon, busybox: str, client) -> None:  # type: ignore[no-untyped-def]
    import docker.types
    c = client.containers.run(BUSYBOX, ["echo", "hi"], detach=True,
                              log_config=docker.types.LogConfig(type="none", config={}))
    try:
        assert c.wait(timeout=60)["StatusCode"] == 0
        c.reload()
        assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
        with pytest.raises(docker.errors.APIError, match="configured logging driver does not support reading"):
            c.logs()
    finally:
        c.remove(force=True)


def test_local_driver_keeps_and_reads_logs(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, "--log-driver", "local", "--log-opt", "max-size=10k",
                  "--log-opt", "max-file=2", BUSYBOX, "sh", "-c", "echo out; echo err >&2"))
    proc = daemon.cli("logs", name)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "out\n", "err\n")
    fmt = "{{json .HostConfig.LogConfig}}|{{.LogPath}}"
    assert ok(daemon.cli("inspect", "-f", fmt, name)).strip() \
        == '{"Type":"local","Config":{"max-file":"2","max-size":"10k"}}|'   # dockerd keeps local's file private
    proc = daemon.cli("logs", "--tail", "2", "-t", name)
    assert proc.stdout.endswith(" out\n") and proc.stderr.endswith(" err\n"), proc


def test_local_driver_option_names(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("create", "--log-driver", "local", "--log-opt", "bogus=1", BUSYBOX, "true")
    assert proc.returncode == 1
    assert "unknown log opt 'bogus' for log driver local" in proc.stderr


def test_local_driver_bad_value_fails_the_start(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "--log-driver", "local", "--log-opt", "max-size=x", BUSYBOX, "true"))
    proc = daemon.cli("start", name)
    assert proc.returncode == 1
    error = "failed to initialize logging driver: invalid value for max-size: x: invalid size: 'x'"
    assert error in proc.stderr
    assert ok(daemon.cli("inspect", "-f", "{{.State.Status}}|{{.State.Error}}", name)).strip() == f"created|{error}"


@pytest.mark.skipif(os.path.exists("/run/systemd/journal/socket"), reason="this host runs journald")
def test_journald_without_a_journal(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--log-driver", "journald", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "failed to initialize logging driver: journald is not enabled on this host" in proc.stderr
    assert ok(daemon.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)).strip() == "created 128"
    proc = daemon.cli("logs", name)
    assert proc.returncode == 1 and "journald is not enabled on this host" in proc.stderr


@pytest.mark.skipif(any(os.path.exists(p) for p in ("/dev/log", "/var/run/syslog")), reason="this host has syslog")
def test_syslog_without_a_syslog_socket(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--log-driver", "syslog", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "failed to initialize logging driver: Unix syslog delivery error" in proc.stderr
    proc = daemon.cli("logs", name)
    assert proc.returncode == 1 and "Unix syslog delivery error" in proc.stderr


@pytest.mark.parametrize("driver, opt", [("journald", "bogus"), ("syslog", "bogus")])
def test_driver_option_names_are_checked(daemon: Daemon, busybox: str, driver: str, opt: str) -> None:
    proc = daemon.cli("create", "--log-driver", driver, "--log-opt", f"{opt}=1", BUSYBOX, "true")
    assert proc.returncode == 1
    assert f"unknown log opt '{opt}' for {driver} log driver" in proc.stderr


def test_logging_mode_is_checked(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("create", "--log-opt", "mode=sometimes", BUSYBOX, "true")
    assert proc.returncode == 1
    assert "logger: logging mode not supported: sometimes" in proc.stderr
    ok(daemon.cli("rm", "-f", ok(daemon.cli("create", "--log-driver", "local", "--log-opt", "mode=non-blocking",
                                           "--log-opt", "max-buffer-size=1m", BUSYBOX, "true")).strip()))


def test_unknown_driver(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--log-driver", "nosuch", BUSYBOX, "true")
    assert proc.returncode == 125
    # newer Docker: ValidateLogOpts' words; dockerd 20.10 looked the name up as a plugin
    assert re.search(r"logger: no log driver named 'nosuch' is registered"
                     r"|error looking up logging plugin nosuch: plugin \"nosuch\" not found", proc.stderr), proc.stderr
    resp = daemon.raw("POST", "/containers/create",
                      body='{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"nosuch","Config":{}}}}')
    assert resp.status == 400


@pytest.mark.reference_differs("20.10 looks an unknown driver up as a plugin: 'error looking up logging plugin'")
def test_unknown_driver_text(daemon: Daemon, busybox: str) -> None:
    resp = daemon.raw("POST", "/containers/create",
                      body='{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"nosuch","Config":{}}}}')
    assert (resp.status, resp.message) == (400, "logger: no log driver named 'nosuch' is registered")
