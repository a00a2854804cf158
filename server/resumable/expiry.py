"""Uploads whose time ran out, removed with their bytes (by the background sweep)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from thumbnailify.server.resources import Resources
from thumbnailify.server.resumable.finish import drop

PAGE = 500


async def sweep_expired(res: Resources, renew: Callable[[], Awaitable[None]]) -> int:
    """How many uploads went (unfinished ones with their bytes; finished ones' answers)."""
    removed = 0
    while upload_ids := await res.store.expired_uploads(time.time(), PAGE):
        for upload_id in upload_ids:
            await drop(res, upload_id)
            removed += 1
        if len(upload_ids) < PAGE:
            break
        await renew()
    return removed
