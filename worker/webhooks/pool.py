"""Webhook deliveries in parallel, so that a slow or failing receiver delays only its own webhooks.

The main loop takes a delivery from the queue whenever one of webhooks.concurrency slots is free
and hands it to a thread of the pool; the runner makes at most webhooks.per_host attempts at once
to one host and puts a delivery for a host at its limit back for a moment, without counting an
attempt. Threads never touch the queue: each outcome goes on `finished`, and the main loop settles
it (pika's BlockingConnection is not thread-safe; the SQLite queue's connection is the main
thread's). A delivery stays unacked until then, so a killed process loses none.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from thumbnailify.settings import WebhookSettings
from thumbnailify.worker.backends import Delivery
from thumbnailify.worker.kinds import Runner, run_guarded
from thumbnailify.worker.outcome import Outcome, Verdict


class Finished(NamedTuple):
    delivery: Delivery
    verdict: Verdict
    started: float  # time.perf_counter() when it was taken
    ran: bool = True  # it held a slot (else it was put back at once)


class WebhookPool:
    def __init__(self, runner: Runner, conf: WebhookSettings) -> None:
        self.runner = runner
        self.size = max(1, conf.concurrency)
        self.busy_delay = conf.timeout
        self.executor = ThreadPoolExecutor(self.size, thread_name_prefix="webhook")
        self.finished: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.running: dict[str, float] = {}  # media_id -> time.monotonic() it was handed to a thread

    def has_room(self) -> bool:
        return len(self.running) < self.size

    def idle(self) -> bool:
        return not self.running

    def submit(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        if delivery.media_id in self.running:  # a redelivery of one still being attempted: after it
            verdict = Verdict(Outcome.RETRY_LATER, "an attempt for this media is running", self.busy_delay)
            self.finished.put(Finished(delivery, verdict, started, ran=False))
            return
        self.running[delivery.media_id] = time.monotonic()
        self.executor.submit(self._run, delivery, started)

    def _run(self, delivery: Delivery, started: float) -> None:
        verdict = Verdict(Outcome.RETRY_LATER, "the attempt ended unexpectedly", self.busy_delay)
        try:
            verdict = run_guarded(self.runner, delivery)
        finally:  # whatever happened, the main loop frees the slot and settles the delivery
            self.finished.put(Finished(delivery, verdict, started))

    def collect(self, wait: float = 0.0) -> list[Finished]:
        """What has finished since the last call, waiting up to `wait` seconds for a first one."""
        done = []
        try:
            done.append(self.finished.get(timeout=wait) if wait > 0 else self.finished.get_nowait())
            while True:
                done.append(self.finished.get_nowait())
        except queue.Empty:
            pass
        for item in done:
            if item.ran:
                del self.running[item.delivery.media_id]
        return done

    def oldest_start(self) -> float:
        """When the longest-running attempt began (now when none runs): the worker's liveness."""
        return min(self.running.values(), default=time.monotonic())

    def close(self) -> None:
        self.executor.shutdown(wait=True)
