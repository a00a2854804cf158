"""Completion webhooks, delivered by workers of their own kind (`python -m thumbnailify.worker --kind webhook`).

A media worker that writes a terminal state hands a job to `<queue>.webhooks`; a webhook worker
makes one attempt per delivery of that job: POST `{"id", "event", "media"}` signed with
webhooks.secret, under an event id that stays the same on every retry. The id is in the signed
body (the header repeats it), so a replay under another id header cannot pass for a new event. A
2xx settles it as delivered; anything else puts the job back on the queue after an exponential
back-off, until webhooks.max_attempts, when it is failed. Each attempt's outcome is on the record
(`callback`), and nothing of it changes the media's own state. The job is in the queue until it
is settled, so delivery survives the restart of any process, at least once (receivers
de-duplicate by the body's id).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from thumbnailify import state
from thumbnailify.media import is_media_id
from thumbnailify.record import Callback, State
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import Delivery, Store
from thumbnailify.worker.metrics import WorkerMetrics
from thumbnailify.worker.outcome import Outcome, Verdict
from thumbnailify.worker.webhooks.sender import post

log = logging.getLogger(__name__)

EVENT_NAMESPACE = uuid.UUID("5b0c3d4e-9a51-4f7e-8d36-2d1e7a1c9f40")
EVENTS: dict[State, str] = {State.COMPLETED: "media.completed", State.ERROR: "media.failed"}


def event_id(media_id: str, event: str) -> str:
    """The same for every attempt of one event, so receivers can tell a retry from a new event."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{media_id}:{event}"))


def host_of(url: str) -> str:
    """Whom an attempt loads: host and port, as the URL names them."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:  # the sender refuses it without connecting anywhere
        return ""


class HostSlots:
    """At most `limit` attempts at once to one host, whichever threads make them."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.lock = threading.Lock()
        self.taken: Counter[str] = Counter()

    @contextmanager
    def slot(self, host: str) -> Iterator[bool]:
        """Yields whether a slot was free; it is held until the block ends."""
        with self.lock:
            free = self.taken[host] < self.limit
            if free:
                self.taken[host] += 1
        try:
            yield free
        finally:
            if free:
                with self.lock:
                    self.taken[host] -= 1
                    if not self.taken[host]:
                        del self.taken[host]


@dataclass
class WebhookRunner:
    """One attempt per call to `run`; safe to call from several threads at once (see webhook_pool)."""

    settings: Settings
    store: Store
    metrics: WorkerMetrics
    hosts: HostSlots = field(init=False)

    def __post_init__(self) -> None:
        self.hosts = HostSlots(self.settings.webhooks.per_host)

    def run(self, delivery: Delivery) -> Verdict:
        try:
            return self._attempt(delivery)
        except self.store.transient as exc:  # the store is out: try again later, the receiver may see it twice
            return Verdict(Outcome.RETRY_LATER, f"store unavailable: {exc!r}", self.settings.webhooks.retry_base_delay)

    def _attempt(self, delivery: Delivery) -> Verdict:
        media_id = delivery.media_id
        record = self.store.get(media_id) if is_media_id(media_id) else None
        if record is None or record.callback is None:
            return Verdict(Outcome.SKIPPED, "no record, or no callback asked for")
        callback = record.callback
        if callback.state != Callback.PENDING:
            return Verdict(Outcome.SKIPPED, f"callback already {callback.state}")
        event = EVENTS.get(record.state)
        if event is None:
            return Verdict(Outcome.SKIPPED, "the media is not in a terminal state")
        conf = self.settings.webhooks
        # The media as it ended, without the callback's own progress: every retry sends the same body.
        media = {k: v for k, v in state.status_body(media_id, record).items() if k != "callback"}
        event_key = event_id(media_id, event)
        body = json.dumps({"id": event_key, "event": event, "media": media}).encode()
        with self.hosts.slot(host_of(callback.url)) as free:
            if not free:  # back in a moment, when one of that host's attempts (at most timeout s) is over
                return Verdict(Outcome.RETRY_LATER, "its host has webhooks.per_host attempts running", conf.timeout)
            attempt = post(callback.url, body, event_key, conf)
        attempts = callback.attempts + 1
        settled = attempt.delivered or attempts >= conf.max_attempts
        outcome = Callback.DELIVERED if attempt.delivered else Callback.FAILED
        self.store.set_fields(media_id, state.callback_tried(outcome if settled else Callback.PENDING, attempts,
                                                             attempt.status))
        log.info("webhook %s", "delivered" if attempt.delivered else "not delivered",
                 extra={"media_id": media_id, "event": event, "attempt": attempts, "status": attempt.status,
                        "error": attempt.error})
        if settled:
            return Verdict(Outcome.COMPLETED if attempt.delivered else Outcome.ERROR,
                           f"{event} {outcome} after {attempts} attempt(s)")
        delay = conf.retry_base_delay * 2 ** (attempts - 1)
        return Verdict(Outcome.RETRY_LATER, f"{event} attempt {attempts}: {attempt.error}", delay)

    def abandon(self, delivery: Delivery) -> None:
        """A webhook job the queue gave up on by itself: its callback is failed (raises on outages)."""
        if is_media_id(delivery.media_id):
            self.store.set_fields(delivery.media_id, state.callback_given_up())

    def record_failure(self, media_id: str, code: int, reason: str) -> None:
        """A bug of ours while delivering: the job is acked, the callback marked failed (best
        effort: with the store out, the callback stays pending)."""
        try:
            if is_media_id(media_id):
                self.store.set_fields(media_id, state.callback_given_up())
        except self.store.transient as exc:
            log.warning("could not mark the callback failed: %r", exc, extra={"media_id": media_id})
