"""Fixtures for conformance tests: real clients (docker CLI 28.x, docker-py) against a daemon.

CONFORMANCE_DAEMON=pydockerd (default) | dockerd starts a private daemon for the
session; with DOCKER_HOST set the tests use that daemon as is.
"""
from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests import harness
from conformance_tests.contract import ResponseRecorder, load_validator
from conformance_tests.images import build_busybox_rootfs
from conformance_tests.proxy import ValidatingProxy

BUSYBOX = "busybox:latest"


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    # Turn SIGTERM into the KeyboardInterrupt pytest already handles, so the session fixtures
    # still stop the private daemon and remove its containers, mounts and temp dir.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    config.addinivalue_line(
        "markers",
        "reference_differs(reason): the test follows current Docker where the reference dockerd 20.10 "
        "differs (or lacks privileges here); expected to fail (strict) against it",
    )
    config.addinivalue_line(
        "markers",
        "pydockerd_missing(reason): describes Docker behaviour pydockerd has not implemented yet (a later "
        "issue); expected to fail (strict) against pydockerd, so it turns red the day the feature lands",
    )
    config.addinivalue_line(
        "markers",
        "stress: a long repetition of a race or crash sequence; deselected unless `-m` names it (`-m stress`)",
    )


def _target_is_reference() -> bool:
    if os.environ.get("DOCKER_HOST"):
        return harness.external_is_reference(os.environ["DOCKER_HOST"])
    return os.environ.get("CONFORMANCE_DAEMON", "pydockerd") == "dockerd"


def _target_is_pydockerd() -> bool:
    return not os.environ.get("DOCKER_HOST") and os.environ.get("CONFORMANCE_DAEMON", "pydockerd") == "pydockerd"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "stress" not in (config.getoption("markexpr", "") or ""):
        stress = [i for i in items if i.get_closest_marker("stress") is not None]
        if stress:
            config.hook.pytest_deselected(items=stress)
            items[:] = [i for i in items if i.get_closest_marker("stress") is None]
    if _target_is_pydockerd():
        for item in items:
            todo = item.get_closest_marker("pydockerd_missing")
            if todo is not None:
                reason = (todo.args[0] if todo.args else "") or "not implemented yet"
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"pydockerd lacks: {reason}"))
    marked = [i for i in items if i.get_closest_marker("reference_differs") is not None]
    if not marked or not _target_is_reference():
        return
    for item in marked:
        marker = item.get_closest_marker("reference_differs")
        reason = (marker.args[0] if marker and marker.args else "") or "reference dockerd differs"
        item.add_marker(pytest.mark.xfail(strict=True, reason=f"reference dockerd 20.10: {reason}"))


_SUMMARY: dict[str, Any] = {}
# api_spec describes API 1.50; the reference dockerd speaks 1.41. Against it, schema mismatches
# say something about api_spec (or about 20.10), not about the daemon: they are listed at the end
# of the run instead of failing tests, unless CONFORMANCE_STRICT_SPEC=1.
_SPEC_VS_REFERENCE: set[str] = set()


def _report_contract(d: harness.Daemon, who: str, failures: list[str]) -> None:
    if not failures:
        return
    if d.reference and os.environ.get("CONFORMANCE_STRICT_SPEC", "0") != "1":
        # one line per route and problem, not per container
        _SPEC_VS_REFERENCE.update(
            re.sub(r"/(containers|exec|volumes|networks)/[^/ ]+", r"/\1/{id}", f"{who}: {f}") for f in failures
        )
        return
    pytest.fail(f"JSON responses {who} received do not match api_spec:\n" + "\n".join(failures), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SPEC_VS_REFERENCE:
        terminalreporter.write_line(
            f"api_spec rejects {len(_SPEC_VS_REFERENCE)} response shape(s) of the reference daemon "
            "(not counted as failures; CONFORMANCE_STRICT_SPEC=1 makes them fail):"
        )
        for line in sorted(_SPEC_VS_REFERENCE):
            terminalreporter.write_line(f"  {line}")
    if not _SUMMARY:
        return
    terminalreporter.write_line(
        f"conformance: daemon={_SUMMARY.get('kind')} api={_SUMMARY.get('api')}; JSON responses checked: "
        f"CLI proxy {_SUMMARY.get('proxy', 'off')}, docker-py {_SUMMARY.get('docker_py', 'off')}"
        + ("" if _SUMMARY.get("spec") else " (api_spec missing: well-formedness only)")
    )
    if _SUMMARY.get("leaks"):
        terminalreporter.write_line(f"FAILED: the {_SUMMARY.get('kind')} daemon left behind after its teardown:",
                                    red=True)
        for what, items in _SUMMARY["leaks"].items():
            terminalreporter.write_line(f"  {what}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}")
    if _SUMMARY.get("kind") in ("pydockerd", "dockerd"):
        terminalreporter.write_line(f"daemon log: {harness.LAST_LOG_DIR}/pydc-last-{_SUMMARY['kind']}.log")


@pytest.fixture(scope="session")
def daemon() -> Iterator[harness.Daemon]:
    version = harness.cli_version()
    assert version.startswith(harness.CLI_MAJOR), (
        f"{harness.DOCKER_CLI} is docker CLI {version!r}; the suite needs {harness.CLI_MAJOR}x"
    )
    d = harness.make_daemon()
    # Torn down in pytest_sessionfinish, not here: a fixture finalizer runs inside the last
    # test's teardown, where a per-test timeout could cut the cleanup short.
    _LIVE.append(d)
    if os.environ.get("CONFORMANCE_CLI_PROXY", "1") != "0":
        # The CLI talks through a proxy that checks each JSON response it receives.
        proxy = ValidatingProxy(d.root / "cli-proxy.sock", harness.socket_path_of(d.host), load_validator())
        d.cli_host = proxy.host
        d.cli_proxy = proxy
    yield d


_LIVE: list[harness.Daemon] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _LIVE:
        d = _LIVE.pop()
        _SUMMARY.update(kind=d.kind, api=d.api_version, spec=load_validator() is not None)
        try:
            if d.cli_proxy is not None:
                _SUMMARY["proxy"] = d.cli_proxy.checked
                d.cli_proxy.close()
        finally:
            d.teardown()
            # Nothing of a pydockerd test daemon's networking (issue 10) or mounts (issue 11) may outlive
            # it: that fails the run.  dockerd 20.10's own leftovers (a veth of a container whose start a
            # kill -9 cut short, say) are its bugs, not the suite's: reported, and cleaned up above.
            fail = d.proc is not None and d.proc.strict
            if d.network_leftovers:
                print(f"\nnetworking left behind by the {d.kind} test daemon: {d.network_leftovers}")
                if fail:
                    session.exitstatus = 1
            if d.mount_leftovers:
                print(f"\nmounts left behind by the {d.kind} test daemon: {d.mount_leftovers}")
                if fail:
                    session.exitstatus = 1
            if d.leaks:
                # Left behind by the daemon under test once all its containers were removed and it
                # stopped: the run fails (the per-test check below names the test when it can).
                _SUMMARY["leaks"] = d.leaks
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def busybox(daemon: harness.Daemon) -> str:
    """busybox:latest imported from Debian's busybox-static; returns its image id."""
    tar = build_busybox_rootfs(daemon.root / "busybox-rootfs.tar")
    proc = daemon.cli("import", "--change", 'CMD ["sh"]', "-", BUSYBOX, input=tar.read_bytes(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert image_id.startswith("sha256:"), proc.stdout
    return image_id


@pytest.fixture(scope="session")
def recorder() -> Iterator[ResponseRecorder | None]:
    validate = load_validator()
    rec = ResponseRecorder(validate) if validate is not None else None
    yield rec
    if rec is not None:
        _SUMMARY["docker_py"] = rec.checked


@pytest.fixture
def client(daemon: harness.Daemon, recorder: ResponseRecorder | None) -> Iterator[Any]:
    """docker-py DockerClient whose JSON responses are checked against api_spec."""
    c = daemon.client
    if recorder is None:
        yield c
        return
    recorder.install(c.api)
    recorder.failures.clear()
    yield c
    failures = list(recorder.failures)
    recorder.failures.clear()
    _report_contract(daemon, "docker-py", failures)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A container/image name unique to this test."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:30].strip("-_.")
    return f"c-{base}-{uuid.uuid4().hex[:6]}".lower()


@pytest.fixture(autouse=True)
def _leave_no_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remove containers a test created, so tests stay independent (listing tests rely on it)."""
    if "daemon" not in request.fixturenames:
        yield
        return
    d: harness.Daemon = request.getfixturevalue("daemon")
    before = set(d.list_container_ids())
    if d.cli_proxy is not None:
        d.cli_proxy.take_failures()
    yield
    if d.cli_proxy is not None:
        _report_contract(d, "docker CLI", d.cli_proxy.take_failures())
    if d.private and d.pid is None:
        # The daemon died during this test (or a restart test failed half-way): bring it back so
        # the rest of the session still tests something, and blame this test.
        tail = d.log_tail(30)
        d.start()
        pytest.fail(f"the {d.kind} daemon was not running at the end of this test; its log ended with:\n{tail}",
                    pytrace=False)
    created = set(d.list_container_ids()) - before
    for cid in created:
        d.seen_container_ids.add(cid)
        try:
            d.raw("DELETE", f"/containers/{cid}?force=1&v=1", timeout=30)
        except OSError:
            pass
    if d.proc is not None and d.proc.strict:
        # Nothing of a removed container may remain (cgroups, mounts, shims, exec-root dirs);
        # containers of this test removed by the test itself included (new cgroups under the
        # daemon's own parent that no remaining container owns).
        remaining = set(d.list_container_ids())
        suspects = (created | {p.name for p in harness.cgroups_under(d.cgroup_parent)}
                    | harness._container_ids_under(d.exec_root)) - remaining
        leaks = d.wait_no_leftovers(suspects) if suspects else {}
        if leaks:
            pytest.fail(f"this test left behind (of removed containers): {leaks}", pytrace=False)
