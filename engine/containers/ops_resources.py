"""pause/unpause, update and stats of a container.

Functions over the container service (they use its records, locks and live
shim handles), kept apart so the lifecycle code in service.py stays readable.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import timeutil
from ..errors import Conflict, EngineError, InvalidParameter, Unavailable
from ..runtime.client import NotRunning
from ..types import PAUSED, RUNNING, RestartPolicy
from . import resources as res
from .restart import validate_policy

if TYPE_CHECKING:
    from .service import ContainerService


def _not_running(c: Any) -> Conflict:
    return Conflict(f"Container {c.id} is not running")


async def pause(svc: ContainerService, ref: str) -> None:
    c = svc.get(ref)
    async with svc.records.lock(c.id):
        if not c.state.running or c.state.restarting:
            raise _not_running(c)
        if c.state.paused:
            raise Conflict(f"Container {c.id} is already paused")
        live = svc.records.live(c.id)
        if live is None:
            raise _not_running(c)
        try:
            await live.handle.pause()
        except (NotRunning, Unavailable):
            raise _not_running(c) from None     # its process is exiting
        except EngineError:
            raise
        except Exception as e:
            raise EngineError(f"Cannot pause container {c.id}: {e}") from e
        c.state = replace(c.state, status=PAUSED, paused=True)
        if svc.health is not None:
            svc.health.container_paused(c.id)     # no probes while frozen (dockerd: unhealthy)
        await svc.records.save(c)
    svc.records.emit(c, "pause")


async def unpause(svc: ContainerService, ref: str) -> None:
    c = svc.get(ref)
    async with svc.records.lock(c.id):
        if not c.state.paused:
            raise Conflict(f"Container {c.id} is not paused")
        live = svc.records.live(c.id)
        if live is None:
            raise _not_running(c)
        try:
            await live.handle.resume()
        except (NotRunning, Unavailable):
            raise _not_running(c) from None
        except Exception as e:
            raise EngineError(f"Cannot unpause container {c.id}: {e}") from e
        c.state = replace(c.state, status=RUNNING, paused=False)
        if svc.health is not None:
            svc.health.container_unpaused(c)      # probing resumes, status kept until the next probe
        await svc.records.save(c)
    svc.records.emit(c, "unpause")


async def update(
    svc: ContainerService,
    ref: str,
    patch: dict[str, Any],
    restart_policy: RestartPolicy | None,
    annotate: Any = None,
) -> list[str]:
    """``docker update``: new limits go to the live cgroup and the record;
    ``annotate(container, resources, policy)`` lets the HTTP layer keep its
    echo of HostConfig in step.  Returns dockerd's warnings."""
    if restart_policy is not None:
        validate_policy(restart_policy)  # before the lookup, as dockerd
    c = svc.get(ref)
    async with svc.records.lock(c.id):
        hc = c.host_config
        if restart_policy is not None and restart_policy.name not in ("", "no") and hc.auto_remove:
            raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
        new_res = res.merge_update(hc.resources, patch, c.id)
        new_res, warnings = res.validate(new_res, res.HostLimits.probe(), update=True)
        live = svc.records.live(c.id)
        if live is not None and c.state.running and new_res != hc.resources:
            try:
                await live.handle.update(res.update_oci(new_res))
            except (NotRunning, Unavailable):
                pass    # it exited meanwhile: the record alone is updated, as for a stopped container
            except Exception as e:
                raise EngineError(f"Cannot update container {c.id}: {e}") from e
        new_hc = replace(hc, resources=new_res)
        if restart_policy is not None:
            new_hc = replace(new_hc, restart_policy=restart_policy)
        c.host_config = new_hc
        if annotate is not None:
            annotate(c, new_res, restart_policy)
        await svc.records.save(c)
    svc.records.emit(c, "update")
    return warnings


async def _sample(svc: ContainerService, c: Any) -> dict[str, Any] | None:
    live = svc.records.live(c.id)
    if live is None or not c.state.running:
        return None
    try:
        raw = await live.handle.stats()
    except Exception:  # noqa: BLE001  (the container exited between the check and the call)
        return None
    return res.sample(raw, c.state.pid, timeutil.now())


async def stats(svc: ContainerService, ref: str, *, stream: bool, one_shot: bool,
                interval: float = 1.0) -> AsyncIterator[dict[str, Any]]:
    """Docker stats documents: one (stream=false) or one per ``interval`` until
    the container stops.  ``precpu_stats`` is the previous sample, as dockerd
    sends it; a one-shot answer has none."""
    c = svc.get(ref)
    zero = res.empty_stats(c.name, c.id)
    prev: dict[str, Any] | None = None
    if not stream and not one_shot:
        # dockerd waits one interval so the single answer carries a CPU delta
        prev = await _sample(svc, c)
        if prev is not None:
            await asyncio.sleep(interval)
    while True:
        cur = await _sample(svc, c)
        if cur is None:
            doc = dict(zero)
        else:
            doc = dict(cur)
            doc["preread"] = prev["read"] if prev else "0001-01-01T00:00:00Z"
            doc["precpu_stats"] = prev["cpu_stats"] if prev else zero["precpu_stats"]
            doc["name"] = "/" + c.name
            doc["id"] = c.id
            order = ["read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
                     "precpu_stats", "memory_stats", "name", "id", "networks"]
            doc = {k: doc[k] for k in order if k in doc}
        yield doc
        if not stream or cur is None:
            return
        prev = cur
        await asyncio.sleep(interval)
