"""The start-up recovery pass: re-queue jobs whose message was lost, so none waits forever.

A record that has sat in Processing longer than server.recovery_min_age with its upload still on
the volume gets its job published again (a duplicate of a job still queued is harmless: the worker
skips a record that is already terminal). One with no upload left was never acknowledged with a
202 (the server removes the file when it answers 503), so it is deleted.
"""

from __future__ import annotations

import logging

from common import state
from server.errors import BackendUnavailable
from server.resources import Resources

log = logging.getLogger(__name__)

PAGE = 500


async def requeue_stale(res: Resources) -> tuple[int, int]:
    """Returns (requeued, removed)."""
    cutoff = state.now().timestamp() - res.settings.server.recovery_min_age
    requeued = removed = 0
    after = None
    while True:
        rows = await res.store.page(PAGE, after, state.State.PROCESSING)
        for media_id, _score, record in rows:
            if state.parse_iso(record["updated_at"]).timestamp() > cutoff:
                continue
            if await res.files.raw_exists(media_id):
                await res.publisher.publish(media_id, record["media_type"])
                requeued += 1
            elif (await res.store.get(media_id) or {}).get("state") == state.State.PROCESSING:
                await res.store.delete(media_id)
                removed += 1
        if len(rows) < PAGE:
            break
        after = (rows[-1][1], rows[-1][0])
    return requeued, removed


async def run_recovery(res: Resources) -> None:
    try:
        requeued, removed = await requeue_stale(res)
    except BackendUnavailable as exc:
        log.warning("recovery pass skipped: %s", exc.message)
        return
    log.info("recovery pass: %d stale jobs re-queued, %d records without upload removed", requeued, removed)
