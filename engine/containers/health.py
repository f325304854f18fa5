"""Healthchecks: probes run as execs inside the container, State.Health, health_status events.

dockerd's rules:
- the probe is `Config.Healthcheck.Test`: ["CMD", argv...], ["CMD-SHELL", "cmd"] (run by the
  container's shell, default /bin/sh -c) or ["NONE"] (no healthcheck); an empty Test inherits
  the image's;
- Interval / Timeout default to 30 s, Retries to 3, StartPeriod to 0; while the container is still
  "starting" inside its StartPeriod, probes come every StartInterval (default 5 s), and failures
  there do not count;
- exit 0 = healthy (streak reset); anything else adds to the failing streak, and Retries failures
  in a row make the container unhealthy; a probe that outlives Timeout is killed (exit -1,
  "Health check exceeded timeout (30s)"); one that cannot start gives exit -1 and the error;
- the log keeps the last 5 probes, output capped at 4096 bytes ("..." appended when cut);
- each status change emits `health_status: <status>`; the monitor stops when the container stops,
  starts over (status "starting", streak 0, log kept) when it starts again, and carries on untouched
  when the daemon reconnects to a running container.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from .. import timeutil
from ..errors import EngineError, InvalidParameter
from ..types import RUNNING, Container, Health, HealthConfig, HealthLogEntry

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000          # 1 ms
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 1500000000 -> "1.5s", 90s -> "1m30s", 2ms -> "2ms"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return sign + _frac(ns, size) + unit
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return sign + out + _frac(rest, SECOND) + "s"


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def validate(hc: HealthConfig | None) -> None:
    """dockerd's create-time checks of Config.Healthcheck (400 on failure)."""
    if hc is None:
        return
    for label, value in (("Interval", hc.interval_ns), ("Timeout", hc.timeout_ns)):
        if value != 0 and value < MIN_DURATION:
            raise InvalidParameter(f"{label} in Healthcheck cannot be less than {go_duration(MIN_DURATION)}")
    if hc.retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    for label, value in (("StartPeriod", hc.start_period_ns), ("StartInterval", hc.start_interval_ns)):
        if value != 0 and value < MIN_DURATION:
            raise InvalidParameter(f"{label} in Healthcheck cannot be less than {go_duration(MIN_DURATION)}")


def merge_with_image(user: HealthConfig | None, image: dict[str, Any] | None) -> HealthConfig | None:
    """The image's Healthcheck fills what the user left empty (dockerd's config merge)."""
    if not image:
        return user
    img = HealthConfig(
        test=tuple(image.get("Test") or ()),
        interval_ns=int(image.get("Interval") or 0),
        timeout_ns=int(image.get("Timeout") or 0),
        retries=int(image.get("Retries") or 0),
        start_period_ns=int(image.get("StartPeriod") or 0),
        start_interval_ns=int(image.get("StartInterval") or 0),
    )
    if user is None:
        return img
    return HealthConfig(
        test=user.test or img.test,
        interval_ns=user.interval_ns or img.interval_ns,
        timeout_ns=user.timeout_ns or img.timeout_ns,
        retries=user.retries or img.retries,
        start_period_ns=user.start_period_ns or img.start_period_ns,
        start_interval_ns=user.start_interval_ns or img.start_interval_ns,
    )


def probe_argv(c: Container) -> list[str] | None:
    """The probe's command line, or None when the container has no healthcheck."""
    hc = c.config.healthcheck
    if hc is None or not hc.test:
        return None
    kind, rest = hc.test[0], list(hc.test[1:])
    if kind == "CMD":
        return rest or None
    if kind == "CMD-SHELL":
        shell = list(c.config.shell) if c.config.shell else ["/bin/sh", "-c"]
        return shell + rest if rest else None
    return None     # "NONE", or something dockerd would not run either


class _Output:
    """Probe output: stdout and stderr together, cut at 4096 bytes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        keep = max(0, MAX_OUTPUT - len(self.data))
        self.data += chunk[:keep]
        if len(chunk) > keep:
            self.truncated = True

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        return out + "..." if self.truncated else out


def apply_result(health: Health, entry: HealthLogEntry, retries: int, in_start_period: bool) -> None:
    """Fold one probe result into State.Health (pure; the caller emits events on change)."""
    health.log = (health.log + [entry])[-MAX_LOG_ENTRIES:]
    if entry.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
        return
    if health.status == STARTING and in_start_period:
        return      # failures while starting up inside the start period do not count
    health.failing_streak += 1
    if health.failing_streak >= (retries if retries > 0 else DEFAULT_RETRIES):
        health.status = UNHEALTHY


class HealthMonitors:
    """One probing task per running container with a healthcheck."""

    def __init__(self, containers: Any, execs: Any) -> None:
        self.containers = containers
        self.execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # Hooks called by ContainerService -------------------------------------------------
    def container_started(self, c: Container, *, reset: bool = True) -> None:
        """A (re)start resets the status to "starting"; a reconnect (`reset=False`) carries on."""
        self.container_stopped(c.id)
        if probe_argv(c) is None:
            return
        if reset or c.state.health is None:
            old = c.state.health
            c.state.health = Health(status=STARTING, failing_streak=0, log=list(old.log) if old else [])
        self._tasks[c.id] = asyncio.get_running_loop().create_task(self._run(c.id))

    def container_stopped(self, cid: str) -> None:
        """Stop probing.  Like dockerd, a monitor that stops leaves the status "unhealthy"
        (no event): a stopped container is not healthy."""
        task = self._tasks.pop(cid, None)
        if task is None:
            return
        if task is not asyncio.current_task():
            task.cancel()
        c = self.containers.records.find(cid)
        if c is not None and c.state.health is not None:
            c.state.health.status = UNHEALTHY

    def container_paused(self, cid: str) -> None:
        """For the pause path: dockerd stops probing a paused container (status: unhealthy)."""
        self.container_stopped(cid)

    def container_unpaused(self, c: Container) -> None:
        """For the unpause path: probing resumes without a reset."""
        self.container_started(c, reset=False)

    def close(self) -> None:
        for cid in list(self._tasks):
            self.container_stopped(cid)

    # The loop ---------------------------------------------------------------------------
    async def _run(self, cid: str) -> None:
        try:
            while True:
                c = self.containers.records.find(cid)
                if c is None or c.state.health is None:
                    return
                hc = c.config.healthcheck or HealthConfig()
                await asyncio.sleep(self._interval(c, hc) / 1e9)
                c = self.containers.records.find(cid)
                if c is None or c.state.health is None:
                    return
                if c.state.status != RUNNING:
                    continue        # paused: no probes until it is running again
                entry = await self._probe(c, hc)
                if self._tasks.get(cid) is not asyncio.current_task():
                    return          # stopped while probing: the result no longer counts
                await self._record(c, hc, entry)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken monitor must not take the daemon down
            log.exception("healthcheck monitor of %s", cid[:12])

    def _interval(self, c: Container, hc: HealthConfig) -> int:
        """Probe interval; inside the start period, while still starting, the start interval,
        but never past the end of the start period."""
        interval = hc.interval_ns or DEFAULT_INTERVAL
        elapsed = timeutil.now_ns() - timeutil.parse_ns(c.state.started_at)
        if elapsed >= hc.start_period_ns:
            return interval
        remaining = hc.start_period_ns - elapsed
        if remaining < interval:
            return remaining
        if c.state.health is not None and c.state.health.status == STARTING:
            return hc.start_interval_ns or DEFAULT_START_INTERVAL
        return interval

    @staticmethod
    def _in_start_period(c: Container, hc: HealthConfig, at_ns: int) -> bool:
        started = timeutil.parse_ns(c.state.started_at)
        return at_ns - started < hc.start_period_ns

    async def _probe(self, c: Container, hc: HealthConfig) -> HealthLogEntry:
        argv = probe_argv(c) or []
        timeout_ns = hc.timeout_ns or DEFAULT_TIMEOUT
        start = timeutil.now()
        inst = None
        try:
            inst = self.execs.create(
                c.id, cmd=argv, env=[], user="", working_dir="", tty=False, attach_stdin=False,
                attach_stdout=True, attach_stderr=True, privileged=False,
            )
            session = await self.execs.start(inst.id)
        except EngineError as err:
            self._forget(c, inst)
            return HealthLogEntry(start, timeutil.now(), -1, err.message)
        except Exception as err:  # noqa: BLE001
            self._forget(c, inst)
            return HealthLogEntry(start, timeutil.now(), -1, str(err))
        out = _Output()

        async def collect() -> None:
            while True:
                frame = await session.read()
                if frame is None:
                    return
                out.write(frame[1])

        reader = asyncio.ensure_future(collect())
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout_ns / 1e9)
        except TimeoutError:
            timed_out = True
            try:
                await session.kill(int(signal.SIGKILL))
            except Exception:  # noqa: BLE001
                pass
            try:
                await asyncio.wait_for(reader, 10)
            except (TimeoutError, Exception):  # noqa: BLE001
                reader.cancel()
        except asyncio.CancelledError:
            reader.cancel()
            try:
                await session.kill(int(signal.SIGKILL))
            except Exception:  # noqa: BLE001
                pass
            await self._close(session)
            self._forget(c, inst)
            raise
        try:
            await self.execs.complete(inst)
        except Exception:  # noqa: BLE001
            pass
        await self._close(session)
        self._forget(c, inst)
        if timed_out:
            text = out.text()
            msg = f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            return HealthLogEntry(start, timeutil.now(), -1, f"{msg}: {text}" if text else msg)
        code = inst.exit_code if inst.exit_code is not None else -1
        return HealthLogEntry(start, timeutil.now(), code, out.text())

    @staticmethod
    async def _close(session: Any) -> None:
        try:
            await session.close()
        except Exception:  # noqa: BLE001 - the connection may be gone with the container
            pass

    def _forget(self, c: Container, inst: Any) -> None:
        """dockerd unregisters a probe's exec when it is done: no ExecIDs entry, no inspect."""
        if inst is None:
            return
        if inst.id in c.exec_ids:
            c.exec_ids.remove(inst.id)
        self.execs.unregister(inst.id)

    async def _record(self, c: Container, hc: HealthConfig, entry: HealthLogEntry) -> None:
        health = c.state.health
        if health is None:
            return
        before = health.status
        in_start = self._in_start_period(c, hc, timeutil.parse_ns(entry.start))
        apply_result(health, entry, hc.retries, in_start)
        if health.status != before:
            # Persisted on changes only (dockerd keeps probe results in memory between
            # checkpoints too): fast probes must not turn into a stream of disk writes.
            await self.containers.records.save(c)
            self.containers.records.emit(c, f"health_status: {health.status}")
