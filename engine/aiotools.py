"""Small asyncio helpers the engine's services share."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_to_completion(aw: Awaitable[T]) -> T:
    """Await ``aw`` so that cancelling the caller does not cut it short.

    A client that hangs up cancels its request's task; a create, start or remove cut off
    half-way (with a thread still writing, a shim just started, a mount just made) leaves
    things nobody owns.  The work runs to its end; a caller that was cancelled meanwhile
    gets its CancelledError afterwards, once nothing is left half done.
    """
    task = asyncio.ensure_future(aw)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            interrupted = True
    if interrupted:
        if not task.cancelled():
            task.exception()  # retrieved: the caller is gone, nobody else will look
        raise asyncio.CancelledError
    return task.result()
