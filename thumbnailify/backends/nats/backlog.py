"""How many jobs each client has waiting in each lane, in the `_meta` bucket: what lets a client with
a few jobs go ahead of another's backlog in the same lane (thumbnailify.lanes.goes_ahead).

A key per kind, lane and client (layout.backlog_key) holding the count and when it was last
touched: counted up before a job is published into the lane (down again if the publish fails),
down when a worker takes it, up again when a worker puts it back for later. The count only orders
jobs, so it may drift and is kept bounded instead: it never goes below 0 (a job taken twice, its
worker killed before the ack, counts down twice), and a count no job of its client touched for
BACKLOG_TTL_SECONDS (one left up by a publisher that died between the count and the publish) is
read as 0, as is a value that is not a count. A count that cannot be changed (NATS out, too many
writers at once) leaves the job in the lane's backlog, first in first out.
"""

from __future__ import annotations

import json
import logging
import time

from nats.js.errors import KeyNotFoundError

from thumbnailify.backends.nats.layout import backlog_key
from thumbnailify.backends.nats.records import Records
from thumbnailify.lanes import Priority

log = logging.getLogger(__name__)

BACKLOG_TTL_SECONDS = 3600.0
TRIES = 5  # compare-and-set rounds against other processes' writers of the same count


def _waiting(value: bytes | None, now: float) -> int:
    try:
        stored = json.loads(value or b"{}")
        waiting, touched = int(stored["waiting"]), float(stored["touched"])
    except (KeyError, ValueError, TypeError):
        return 0
    return max(0, waiting) if now - touched < BACKLOG_TTL_SECONDS else 0


async def count(records: Records, kind: str, lane: Priority, client: str, step: int) -> int | None:
    """Add `step` to a client's count in a lane; the count before, or None if it could not be changed.
    Raises what NATS raises."""
    key = backlog_key(kind, lane, client)
    async with records.one_writer(key):
        for _ in range(TRIES):
            try:
                entry = await records.kv["meta"].get(key)
            except KeyNotFoundError:
                entry = None
            now = time.time()
            waiting = _waiting(entry.value if entry else None, now)
            value = {"waiting": str(max(0, waiting + step)), "touched": repr(now)}
            if await records.swap("meta", key, value, (entry.revision or 0) if entry else 0):
                return waiting
    log.warning("could not count a job of %s in %s/%s: too many writers at once", client, kind, lane)
    return None
