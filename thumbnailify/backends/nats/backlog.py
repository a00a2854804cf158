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

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from thumbnailify.backends.nats.layout import backlog_key
from thumbnailify.backends.nats.records import Records
from thumbnailify.kinds import MEDIA_KINDS
from thumbnailify.lanes import Priority

log = logging.getLogger(__name__)

BACKLOG_TTL_SECONDS = 3600.0
TRIES = 5  # compare-and-set rounds against other processes' writers of the same count
KNOWN_COUNTS = 10_000  # counts a process remembers the revision of (forgotten all at once past it)


def read_waiting(value: bytes | None, now: float) -> int:
    """A stored count at `now`: 0 for none, a value that is not a count, or one untouched too long."""
    try:
        stored = json.loads(value or b"{}")
        waiting, touched = int(stored["waiting"]), float(stored["touched"])
    except (KeyError, ValueError, TypeError):
        return 0
    return max(0, waiting) if now - touched < BACKLOG_TTL_SECONDS else 0


class Counts:
    """The counts as one process changes them. Each count's last value and revision as this process
    wrote or read it is kept, so a change is one compare-and-set round trip while no other process
    changed the count meanwhile (a client's burst of uploads), two when one did."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.light_jobs = records.settings.worker.fair_share_jobs
        self.known: dict[str, tuple[bytes | None, int]] = {}  # a count's value and revision, as last seen

    def counted(self, kind: str) -> bool:
        """Whether a kind's jobs are counted: photo and video jobs while fair share is on."""
        return self.light_jobs > 0 and kind in MEDIA_KINDS

    async def count(self, kind: str, lane: Priority, client: str, step: int) -> int | None:
        """Add `step` to a client's count in a lane; the count before, or None if it could not be
        changed. Raises what NATS raises."""
        key = backlog_key(kind, lane, client)
        meta = self.records.kv["meta"]
        async with self.records.one_writer(key):
            known = self.known.pop(key, None)
            for _ in range(TRIES):
                if known is None:
                    try:
                        entry = await meta.get(key)
                        known = entry.value, entry.revision or 0
                    except KeyNotFoundError:
                        known = None, 0
                value, revision = known
                now = time.time()
                waiting = read_waiting(value, now)
                changed = json.dumps({"waiting": str(max(0, waiting + step)), "touched": repr(now)}).encode()
                try:
                    written = await (meta.update(key, changed, last=revision) if revision
                                     else meta.create(key, changed))
                except KeyWrongLastSequenceError:  # another process's change came first
                    known = None
                    continue
                if len(self.known) >= KNOWN_COUNTS:
                    self.known.clear()
                self.known[key] = changed, written
                return waiting
        log.warning("could not count a job of %s in %s/%s: too many writers at once", client, kind, lane)
        return None
