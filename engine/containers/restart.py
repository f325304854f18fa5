"""Restart policies: dockerd's decision rules and back-off, kept apart from the service.

One ``RestartManager`` per container run sequence.  It is created lazily (seeded with the
container's RestartCount), survives automatic restarts, and is thrown away when the user starts
the container through the API (which also resets RestartCount to 0, as dockerd does).

Rules (dockerd's restart manager):
- the back-off starts at 100 ms and doubles on every restart, capped at one minute; it goes back
  to 100 ms when the run that just ended lasted at least 10 seconds;
- `always` restarts on every exit; `unless-stopped` unless the user stopped the container;
  `on-failure[:N]` on a non-zero exit code while fewer than N restarts were made (N = 0: no limit);
- an explicit stop or kill through the API *cancels* the manager: nothing restarts the container
  again until it is started by hand (or the daemon restarts, see ``should_restart_on_boot``).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..errors import InvalidParameter
from ..types import RestartPolicy

DEFAULT_DELAY = 0.1
MAX_DELAY = 60.0
BACKOFF_MULTIPLIER = 2
RESET_AFTER = 10.0       # seconds of run time after which the back-off starts over


POLICIES = ("no", "always", "unless-stopped", "on-failure")


def validate_policy(policy: RestartPolicy) -> None:
    """dockerd's checks of a restart policy, at create and at update, in its words."""
    name, retries = policy.name, policy.maximum_retry_count
    if name not in ("", *POLICIES):
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}';"
            " use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if retries and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'"
                               + (" and cannot be negative" if retries < 0 else ""))
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")


def policy_allows(policy: RestartPolicy, exit_code: int, manually_stopped: bool, restart_count: int) -> bool:
    """Whether `policy` asks for a restart after an exit (ignoring cancellation and back-off)."""
    name = policy.name or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def should_restart_on_boot(policy: RestartPolicy, exit_code: int, manually_stopped: bool,
                           restart_count: int, has_been_started: bool) -> bool:
    """At daemon start, for a container that is not running: dockerd starts it again when its
    policy allows (a fresh manager: earlier API stops no longer cancel `always`), but only if it
    was ever started."""
    return has_been_started and policy_allows(policy, exit_code, manually_stopped, restart_count)


@dataclass
class RestartManager:
    restart_count: int = 0
    delay: float = 0.0
    canceled: bool = False
    active: bool = False            # a back-off is in progress
    _cancel: asyncio.Event = field(default_factory=asyncio.Event)

    def next_delay(self, policy: RestartPolicy, exit_code: int, manually_stopped: bool,
                   run_seconds: float) -> float | None:
        """Decide after an exit: the back-off delay before the restart, or None (no restart).

        Must be read with the policy the container has *now* (it can be updated while running).
        """
        if (policy.name or "no") == "no" or self.canceled or self.active:
            return None
        if run_seconds >= RESET_AFTER:
            self.delay = 0.0
        if self.delay == 0.0:
            self.delay = DEFAULT_DELAY
        elif self.delay < MAX_DELAY:
            self.delay *= BACKOFF_MULTIPLIER
        self.delay = min(self.delay, MAX_DELAY)
        if not policy_allows(policy, exit_code, manually_stopped, self.restart_count):
            return None
        self.restart_count += 1
        self.active = True
        return self.delay

    async def wait(self, delay: float) -> bool:
        """Sleep out the back-off.  True: go ahead and restart; False: canceled meanwhile."""
        try:
            await asyncio.wait_for(self._cancel.wait(), delay)
        except TimeoutError:
            pass
        self.active = False
        return not self.canceled

    def cancel(self) -> None:
        self.canceled = True
        self._cancel.set()
