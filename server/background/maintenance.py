"""Background upkeep of one server process: the recovery pass and the retention sweep, at start
and every `retention.sweep_seconds`.

Of several server processes or replicas only one works at a time: it holds a lease in the store,
renewed as it goes, so a process killed mid-pass frees it within LEASE_SECONDS and the next round
of another process (or of its own restart) takes over; nothing waits for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from thumbnailify.server.background.recovery import run_recovery
from thumbnailify.server.background.sweep import run_sweep
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.resources import Resources

log = logging.getLogger(__name__)

LEASE = "maintenance"
LEASE_SECONDS = 60.0
RETRY_SECONDS = 10.0  # after a round cut short by an outage, not a whole sweep interval


class LeaseLost(Exception):
    pass


async def _take_lease(res: Resources, owner: str) -> bool:
    """Take or extend the lease. The server stopping cancels the wait, not the store's write (a
    thread, a command already sent), which may still grant the lease: then it is given back, or
    the next process started would find it held for LEASE_SECONDS and wait a whole interval."""
    call = asyncio.ensure_future(res.store.acquire_lock(LEASE, owner, LEASE_SECONDS))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        with contextlib.suppress(BackendUnavailable):
            if await call:
                await res.store.release_lock(LEASE, owner)
        raise


async def maintain(res: Resources) -> None:
    owner = uuid.uuid4().hex

    async def renew() -> None:
        if not await _take_lease(res, owner):
            raise LeaseLost

    first = True
    while True:
        pause = res.settings.retention.sweep_seconds
        try:
            if await _take_lease(res, owner):
                try:
                    await run_recovery(res, renew)
                    await run_sweep(res, renew)
                finally:
                    await res.store.release_lock(LEASE, owner)
            else:
                log.log(logging.INFO if first else logging.DEBUG, "recovery pass: another server process is running it")
        except BackendUnavailable as exc:
            log.warning("maintenance skipped: %s unavailable: %s", exc.backend, exc.detail)
            pause = min(pause, RETRY_SECONDS)
        except LeaseLost:
            log.warning("maintenance stopped: its lease was taken over (the store was slow to answer)")
        except Exception:  # a defect in one round must not end every later sweep of this process
            log.exception("maintenance round failed; the next one runs as usual")
        first = False
        await asyncio.sleep(pause)
