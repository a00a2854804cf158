"""An upload answered 503 keeps nothing: its records and files are removed, now or, when the store
is out too, as soon as it answers again.

A record whose write failed may have been applied all the same (the store went away before its
reply), so the rollback removes it either way; while the store is out the removal is retried in
the background, else the item would come back listed and, once its record looked stale, queued by
the recovery pass, for a client that was told it was not taken.
"""

from __future__ import annotations

import asyncio
import logging

from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.resources import Resources

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
GIVE_UP_SECONDS = 3600.0  # a store out this long is an operator's matter; the log says what stays
_later: set[asyncio.Task[None]] = set()  # held so the loop does not drop them


async def roll_back(res: Resources, media_ids: list[str]) -> None:
    """Remove each item's record, then its files (a job whose confirm was lost may have been
    delivered and run already, so thumbnails go too, as a DELETE's do)."""
    for media_id in media_ids:
        try:
            await _remove(res, media_id)
        except ApiError:
            task = asyncio.create_task(_remove_later(res, media_id))
            _later.add(task)
            task.add_done_callback(_later.discard)


async def _remove(res: Resources, media_id: str) -> None:
    await res.store.delete(media_id)
    await res.files.remove(media_id)


async def _remove_later(res: Resources, media_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GIVE_UP_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(RETRY_SECONDS)
        try:
            await _remove(res, media_id)
        except ApiError:
            continue
        log.info("rollback of a refused upload done once the store answered", extra={"media_id": media_id})
        return
    log.error("rollback of a refused upload given up: its record may stay", extra={"media_id": media_id})
