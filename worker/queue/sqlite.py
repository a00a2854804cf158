"""Jobs from the embedded SQLite queue, polled; a claimed job is leased until acked."""

from __future__ import annotations

import time

from common.config import Settings
from common.sqlite import Database, SQLiteQueue
from worker.backends import Delivery

REAP_INTERVAL = 1.0


class SQLiteConsumer:
    def __init__(self, settings: Settings) -> None:
        self.queue = SQLiteQueue(Database(settings.path(settings.sqlite.path)), settings.sqlite.lease_seconds)
        self.poll_interval = settings.worker.poll_interval
        self.next_reap = 0.0

    def next(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() >= self.next_reap:
                self.queue.release_orphans()  # jobs of killed workers go back without waiting
                self.next_reap = time.monotonic() + REAP_INTERVAL
            job = self.queue.claim()
            if job is not None:
                return Delivery(job.media_id, job.media_type, job.deliveries > 1, job.job_id)
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll_interval)

    def ack(self, delivery: Delivery) -> None:
        self.queue.ack(int(delivery.tag))  # type: ignore[call-overload]

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.queue.dead_letter(int(delivery.tag), reason)  # type: ignore[call-overload]

    def close(self) -> None:
        self.queue.db.close()
