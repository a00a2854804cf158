"""The recovery pass: re-queue jobs whose message was lost, so none waits forever.

A record that has sat in Processing longer than server.recovery_min_age with its upload still on
the files backend gets its job published again (a duplicate of a job still queued is harmless:
the worker skips a record that is already terminal). One with no upload left was never
acknowledged with a 202 (the server removes the file when it answers 503), so it is deleted.
A job touched but not sent (the queue failed mid-pass) is marked so, and the pass retried after
the outage sends it at once.

It runs in the background (server/background/maintenance.py: at start and with every sweep), a page at a
time with the checks and publishes of a page done concurrently, holding the maintenance lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from thumbnailify import state
from thumbnailify.record import MediaRecord, State
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.resources import Resources

log = logging.getLogger(__name__)

PAGE = 500
CONCURRENCY = 64


async def _recover(res: Resources, media_id: str, record: MediaRecord) -> str:
    if await res.files.raw_exists(media_id):
        # Touched first, so a pass of another process that starts after this one ends finds
        # the job fresh and does not send it a second time.
        if not await res.store.transition(media_id, State.PROCESSING, state.requeued(state.now())):
            return "finished meanwhile"
        try:
            await res.publisher.publish(media_id, record.media_type, record.lane, record.client)
        except BackendUnavailable as exc:
            # Touched but not sent: marked so, the pass retried after the outage sends it rather
            # than taking it for fresh and leaving it until it is stale again.
            await res.store.transition(media_id, State.PROCESSING,
                                       state.requeue_failed(f"{exc.backend} unavailable", state.now()))
            raise
        return "requeued"
    current = await res.store.get(media_id)
    if current is not None and current.state == State.PROCESSING:
        await res.store.delete(media_id)
        return "removed"
    return "finished meanwhile"


async def requeue_stale(res: Resources, renew: Callable[[], Awaitable[None]]) -> dict[str, int]:
    """Counts of what happened to the stale jobs: requeued, removed, finished meanwhile."""
    cutoff = state.now().timestamp() - res.settings.server.recovery_min_age
    counts = {"requeued": 0, "removed": 0, "finished meanwhile": 0}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(media_id: str, record: MediaRecord) -> None:
        async with gate:
            counts[await _recover(res, media_id, record)] += 1

    after = None
    while True:
        rows = await res.store.page(PAGE, after, State.PROCESSING)
        stale = [
            (media_id, record)
            for media_id, _score, record in rows
            if record.updated_at.timestamp() <= cutoff or record.awaits_requeue
        ]
        # Every job of the page is tried before a failure ends the pass, so none is left running
        # after the lease is given back.
        results = await asyncio.gather(*(one(*job) for job in stale), return_exceptions=True)
        failure = next((result for result in results if isinstance(result, BaseException)), None)
        if failure is not None:
            raise failure
        if len(rows) < PAGE:
            return counts
        after = (rows[-1][1], rows[-1][0])
        await renew()


async def run_recovery(res: Resources, renew: Callable[[], Awaitable[None]]) -> None:
    started = time.perf_counter()
    counts = await requeue_stale(res, renew)
    log.info(
        "recovery pass: %d stale jobs re-queued, %d records without upload removed in %.2fs",
        counts["requeued"], counts["removed"], time.perf_counter() - started,
    )
