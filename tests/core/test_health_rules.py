"""engine.containers.health: the pure rules (durations, status folding, merge, validation)."""
from __future__ import annotations

import pytest

from engine.containers import health as H
from engine.errors import InvalidParameter
from engine.types import Container, ContainerConfig, Health, HealthConfig, HealthLogEntry, HostConfig

MS = 1_000_000
S = 1_000_000_000


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (1 * MS, "1ms"), (300 * MS, "300ms"), (1500 * MS, "1.5s"), (30 * S, "30s"),
    (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (1500, "1.5µs"), (7, "7ns"), (2 * S + 5 * MS, "2.005s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert H.go_duration(ns) == text


def _entry(code: int) -> HealthLogEntry:
    return HealthLogEntry("s", "e", code, "")


def test_status_folding_with_retries_and_log_bound() -> None:
    h = Health()
    H.apply_result(h, _entry(1), retries=2, in_start_period=False)
    assert (h.status, h.failing_streak) == ("starting", 1)
    H.apply_result(h, _entry(1), retries=2, in_start_period=False)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    H.apply_result(h, _entry(0), retries=2, in_start_period=False)
    assert (h.status, h.failing_streak) == ("healthy", 0)
    for _ in range(10):
        H.apply_result(h, _entry(-1), retries=0, in_start_period=False)   # 0 retries = the default 3
    assert h.status == "unhealthy" and h.failing_streak == 10 and len(h.log) == 5


def test_failures_in_start_period_do_not_count_while_starting() -> None:
    h = Health()
    H.apply_result(h, _entry(1), retries=1, in_start_period=True)
    assert (h.status, h.failing_streak) == ("starting", 0)
    H.apply_result(h, _entry(0), retries=1, in_start_period=True)
    H.apply_result(h, _entry(1), retries=1, in_start_period=True)      # healthy already: counts
    assert (h.status, h.failing_streak) == ("unhealthy", 1)


def test_output_cap() -> None:
    out = H._Output()
    out.write(b"a" * 4000)
    out.write(b"b" * 200)
    assert out.text() == "a" * 4000 + "b" * 96 + "..."
    small = H._Output()
    small.write(b"ok\n")
    assert small.text() == "ok\n"


def test_merge_with_image() -> None:
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 7}
    assert H.merge_with_image(None, image) == HealthConfig(("CMD", "true"), 5 * S, 0, 7)
    user = HealthConfig(test=(), interval_ns=S)
    assert H.merge_with_image(user, image) == HealthConfig(("CMD", "true"), S, 0, 7)
    assert H.merge_with_image(HealthConfig(("NONE",)), image).test == ("NONE",)
    assert H.merge_with_image(user, None) is user


@pytest.mark.parametrize("hc, message", [
    (HealthConfig(("CMD", "x"), interval_ns=MS - 1), "Interval in Healthcheck cannot be less than 1ms"),
    (HealthConfig(("CMD", "x"), timeout_ns=1), "Timeout in Healthcheck cannot be less than 1ms"),
    (HealthConfig(("CMD", "x"), retries=-1), "Retries in Healthcheck cannot be negative"),
    (HealthConfig(("CMD", "x"), start_period_ns=5), "StartPeriod in Healthcheck cannot be less than 1ms"),
    (HealthConfig(("CMD", "x"), start_interval_ns=5), "StartInterval in Healthcheck cannot be less than 1ms"),
])
def test_validate(hc: HealthConfig, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        H.validate(hc)
    assert err.value.message == message
    H.validate(HealthConfig(("CMD", "x"), interval_ns=MS, timeout_ns=0))


def _container(test: tuple[str, ...] | None, shell: tuple[str, ...] | None = None) -> Container:
    cfg = ContainerConfig(healthcheck=HealthConfig(test) if test is not None else None, shell=shell)
    return Container("id", "n", "", "sha256:x", cfg, HostConfig(), "/bin/sh", ())


def test_probe_argv() -> None:
    assert H.probe_argv(_container(("CMD", "curl", "-f", "x"))) == ["curl", "-f", "x"]
    assert H.probe_argv(_container(("CMD-SHELL", "exit 0"))) == ["/bin/sh", "-c", "exit 0"]
    assert H.probe_argv(_container(("CMD-SHELL", "exit 0"), shell=("/bin/ash", "-ec"))) == ["/bin/ash", "-ec", "exit 0"]
    assert H.probe_argv(_container(("NONE",))) is None
    assert H.probe_argv(_container(None)) is None
    assert H.probe_argv(_container(("BOGUS", "x"))) is None
