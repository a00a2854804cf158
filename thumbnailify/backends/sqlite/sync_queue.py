"""Jobs from the embedded SQLite queue, polled; a claimed job is leased until acked."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from thumbnailify.backends.sqlite.schema import Database, SQLiteQueue
from thumbnailify.lanes import LanePicker
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import DeadLetter, Delivery

REAP_INTERVAL = 1.0


def _job_id(tag: object) -> int:
    """Delivery.tag and DeadLetter.tag as this queue makes them: the job's row id."""
    if not isinstance(tag, int):
        raise TypeError(f"not a job of this queue: {tag!r}")
    return tag


def open_queue(settings: Settings, kind: str) -> SQLiteQueue:
    return SQLiteQueue(Database(settings.path(settings.sqlite.path)), settings.sqlite.lease_seconds, kind)


class SQLiteConsumer:
    def __init__(self, settings: Settings, kind: str) -> None:
        self.queue = open_queue(settings, kind)
        self.poll_interval = settings.worker.poll_interval
        self.dead_bounds = (settings.worker.dead_letter_max_length, settings.worker.dead_letter_max_age)
        self.next_reap = 0.0
        self.lanes = LanePicker()  # this worker's round over the lanes

    def next(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() >= self.next_reap:
                self.queue.release_orphans()  # jobs of killed workers go back without waiting
                self.next_reap = time.monotonic() + REAP_INTERVAL
            job = self.queue.claim(self.lanes)
            if job is not None:
                # A job's id and its delivery count name this delivery: a re-claim counts again.
                return Delivery(job.media_id, job.media_type, job.deliveries > 1, job.job_id,
                                token=f"{job.job_id}:{job.deliveries}", lane=job.lane, client=job.client)
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll_interval)

    def ack(self, delivery: Delivery) -> None:
        self.queue.ack(_job_id(delivery.tag))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.queue.dead_letter(_job_id(delivery.tag), reason)
        self.queue.prune_dead(*self.dead_bounds)

    def enqueue(self, kind: str, media_id: str, media_type: str) -> None:
        """Hand a follow-up job to another kind of worker (a webhook)."""
        SQLiteQueue(self.queue.db, self.queue.lease_seconds, kind).put(media_id, media_type)

    def retry_later(self, delivery: Delivery, seconds: float) -> None:
        self.queue.defer(_job_id(delivery.tag), seconds)

    def settle_abandoned(self, settle: Callable[[Delivery], None]) -> int:
        """Never any: this queue hands a job out again until a worker settles it (see worker.jobs)."""
        return 0

    def close(self) -> None:
        self.queue.db.close()


class SQLiteDeadLetters:
    """The dead rows of the embedded queue, as they were when opened."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self.queue = open_queue(settings, kind)
        self.queue.prune_dead(settings.worker.dead_letter_max_length, settings.worker.dead_letter_max_age)
        self.pending = deque(self.queue.dead_jobs())

    def take(self) -> DeadLetter | None:
        if not self.pending:
            return None
        job = self.pending.popleft()
        return DeadLetter(job.media_id, job.media_type, job.reason, job.job_id, job.lane, job.client)

    def requeue(self, letter: DeadLetter) -> None:
        self.queue.revive(_job_id(letter.tag))

    def drop(self, letter: DeadLetter) -> None:
        self.queue.ack(_job_id(letter.tag))

    def close(self) -> None:
        self.queue.db.close()
