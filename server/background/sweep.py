"""The retention sweep: what the policy says has had its time, and what nobody names any more.

- Items created more than `retention.media_days` ago are removed as a DELETE would remove them.
- An upload is removed once its item is Completed or Error and `retention.raw_hours` have passed
  (0: the worker removed it already; this catches one it could not), unless the item is still
  Processing or waits for a replay (Error 503): an item being processed never loses its upload.
- Resumable uploads past `uploads.resumable_hours` are removed with their bytes.
- Uploads and thumbnails that no record names, and temporary files of unfinished writes (a
  server or worker killed mid-write), are removed once they are an hour old. Anything younger is
  never touched: it may be a write in progress whose record is not there yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from thumbnailify import state
from thumbnailify.backends.layout import StoredFile
from thumbnailify.record import MediaRecord, UnreadableRecord
from thumbnailify.server.resources import Resources
from thumbnailify.server.resumable.expiry import sweep_expired

log = logging.getLogger(__name__)

UNNAMED_AGE = 3600.0  # seconds before a file no record names may be taken as left behind
PAGE = 500
CONCURRENCY = 32


def _upload_done_with(record: MediaRecord, raw_cutoff: float) -> bool:
    if state.keeps_upload(record):
        return False
    return record.updated_at.timestamp() <= raw_cutoff


async def _expire_media(
    res: Resources, cutoff: float, counts: Counter[str], renew: Callable[[], Awaitable[None]],
) -> None:
    while media_ids := await res.store.created_before(cutoff, PAGE):
        for media_id in media_ids:
            counts["media"] += await res.store.delete(media_id)
            await res.files.remove(media_id)
        if len(media_ids) < PAGE:
            return
        await renew()


async def _judge(res: Resources, items: list[StoredFile], raw_cutoff: float, counts: Counter[str]) -> None:
    """Remove each file whose record is gone (or whose upload its record no longer needs)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: StoredFile) -> None:
        async with gate:
            try:
                record = await res.store.get(item.media_id or "")
            except UnreadableRecord:
                return  # a record is there, whatever it says: its files stay
            if record is None or (item.kind == "upload" and _upload_done_with(record, raw_cutoff)):
                await res.files.remove_stored(item)
                counts[item.kind] += 1

    await asyncio.gather(*(one(item) for item in items))


async def sweep(res: Resources, renew: Callable[[], Awaitable[None]]) -> Counter[str]:
    conf = res.settings.retention
    now = time.time()
    counts: Counter[str] = Counter()
    if conf.media_days > 0:
        await _expire_media(res, now - conf.media_days * 86400, counts, renew)
    counts["resumable"] += await sweep_expired(res, renew)
    raw_cutoff = now - conf.raw_hours * 3600
    batch: list[StoredFile] = []
    async for item in res.files.scan():
        if now - item.modified < UNNAMED_AGE:
            continue
        if item.kind == "temp":
            await res.files.remove_stored(item)
            counts["temp"] += 1
            continue
        batch.append(item)
        if len(batch) >= PAGE:
            await _judge(res, batch, raw_cutoff, counts)
            batch = []
            await renew()
    await _judge(res, batch, raw_cutoff, counts)
    return counts


async def run_sweep(res: Resources, renew: Callable[[], Awaitable[None]]) -> None:
    started = time.perf_counter()
    counts = await sweep(res, renew)
    for what, count in counts.items():
        res.metrics.swept.labels(what).inc(count)
    log.info(
        "sweep: removed %d media past retention, %d uploads, %d thumbnails, %d temporary files, %d expired "
        "resumable uploads in %.2fs", counts["media"], counts["upload"], counts["thumbnail"], counts["temp"],
        counts["resumable"], time.perf_counter() - started,
    )
