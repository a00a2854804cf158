"""Ending a server process's background tasks for sure."""

from __future__ import annotations

import asyncio
import contextlib

CANCEL_AGAIN_SECONDS = 1.0


async def cancel_until_done(task: asyncio.Task[None]) -> None:
    """Cancel a task until it ends: a client library that swallows one cancellation (nats-py does
    in some calls; a Redis call cut off can come back as an outage, which the upkeep loop waits out)
    would otherwise keep the server's stop waiting for good."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
