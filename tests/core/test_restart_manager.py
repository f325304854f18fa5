"""engine.containers.restart: dockerd's restart decisions and back-off, without containers."""
from __future__ import annotations

import asyncio

import pytest

from engine.containers.restart import (
    DEFAULT_DELAY,
    MAX_DELAY,
    RestartManager,
    policy_allows,
    should_restart_on_boot,
    validate_policy,
)
from engine.errors import InvalidParameter
from engine.types import RestartPolicy

ALWAYS = RestartPolicy("always")
UNLESS = RestartPolicy("unless-stopped")
NO = RestartPolicy("no")


def on_failure(n: int = 0) -> RestartPolicy:
    return RestartPolicy("on-failure", n)


@pytest.mark.parametrize("policy, code, manual, count, want", [
    (NO, 1, False, 0, False),
    (RestartPolicy(""), 1, False, 0, False),
    (ALWAYS, 0, False, 0, True),
    (ALWAYS, 0, True, 5, True),          # the manager is cancelled on a user stop, not the rule
    (UNLESS, 0, False, 0, True),
    (UNLESS, 1, True, 0, False),
    (on_failure(), 0, False, 0, False),
    (on_failure(), 2, False, 100, True),  # 0 = no limit
    (on_failure(2), 1, False, 1, True),
    (on_failure(2), 1, False, 2, False),
])
def test_policy_allows(policy: RestartPolicy, code: int, manual: bool, count: int, want: bool) -> None:
    assert policy_allows(policy, code, manual, count) is want


def test_backoff_doubles_and_is_capped() -> None:
    rm = RestartManager()
    delays = []
    for _ in range(12):
        d = rm.next_delay(ALWAYS, 1, False, 0.01)
        assert d is not None
        delays.append(d)
        rm.active = False          # as if the back-off had run out
    assert delays[:4] == [DEFAULT_DELAY, DEFAULT_DELAY * 2, DEFAULT_DELAY * 4, DEFAULT_DELAY * 8]
    assert max(delays) == MAX_DELAY and delays[-1] == MAX_DELAY
    assert rm.restart_count == 12


def test_backoff_resets_after_a_long_run() -> None:
    rm = RestartManager()
    for _ in range(3):
        rm.next_delay(ALWAYS, 1, False, 0.5)
        rm.active = False
    assert rm.next_delay(ALWAYS, 1, False, 10.0) == DEFAULT_DELAY


def test_on_failure_limit_counts_from_the_seed() -> None:
    rm = RestartManager(restart_count=1)
    assert rm.next_delay(on_failure(2), 1, False, 0) is not None
    rm.active = False
    assert rm.next_delay(on_failure(2), 1, False, 0) is None
    assert rm.restart_count == 2


def test_no_decision_while_active_or_cancelled() -> None:
    rm = RestartManager()
    assert rm.next_delay(ALWAYS, 0, False, 0) is not None
    assert rm.next_delay(ALWAYS, 0, False, 0) is None   # a back-off is already running
    rm2 = RestartManager()
    rm2.cancel()
    assert rm2.next_delay(ALWAYS, 0, False, 0) is None


def test_wait_runs_out_or_is_cancelled() -> None:
    async def main() -> tuple[bool, bool, float]:
        rm = RestartManager()
        d = rm.next_delay(ALWAYS, 0, False, 0)
        assert d is not None
        assert await rm.wait(d) is True and rm.active is False
        rm.next_delay(ALWAYS, 0, False, 0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        loop.call_soon(rm.cancel)
        got = await rm.wait(30)
        return True, got, loop.time() - t0
    _, got, took = asyncio.run(main())
    assert got is False and took < 5


@pytest.mark.parametrize("policy, code, manual, started, want", [
    (ALWAYS, 0, True, True, True),
    (ALWAYS, 0, False, False, False),     # never started: left alone
    (UNLESS, 0, True, True, False),
    (on_failure(), 137, True, True, True),
    (on_failure(), 0, False, True, False),
    (NO, 1, False, True, False),
])
def test_boot_decision(policy: RestartPolicy, code: int, manual: bool, started: bool, want: bool) -> None:
    assert should_restart_on_boot(policy, code, manual, 0, started) is want


@pytest.mark.parametrize("name, retries, words", [
    ("sometimes", 0, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
                     "or 'unless-stopped'"),
    ("always", 2, "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ("always", -1, "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be "
                   "negative"),
    ("on-failure", -1, "invalid restart policy: maximum retry count cannot be negative"),
])
def test_validate_policy_words(name: str, retries: int, words: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        validate_policy(RestartPolicy(name=name, maximum_retry_count=retries))
    assert str(err.value) == words


@pytest.mark.parametrize("name, retries", [("", 0), ("no", 0), ("always", 0), ("unless-stopped", 0),
                                           ("on-failure", 0), ("on-failure", 5)])
def test_validate_policy_accepts(name: str, retries: int) -> None:
    validate_policy(RestartPolicy(name=name, maximum_retry_count=retries))
