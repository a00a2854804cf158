"""The workers' side of the NATS family, blocking: nats-py's coroutines run on a private event loop
in a thread of its own (one per store or consumer), and each call waits for its result.

Jobs come from a durable pull consumer per kind and lane with explicit acks (two per media lane:
its light part, taken first, and its backlog; layout.py). A worker keeps a pull request open on
each consumer it holds no job of, and takes what they bring as its LanePicker says
(thumbnailify.lanes): a job in an idle lane goes next. It counts each job it takes out of its
client's backlog in the lane (backlog.py), and one it puts back for later in again. While a job
(taken or held) waits, the loop's thread tells JetStream it is in progress every third of
`nats.ack_wait`, so a long job is not handed out again but a killed worker's is, one ack wait
later. A photo or video job delivered `worker.max_attempts` times without an ack is given up by
JetStream, which says so in an advisory: `settle_abandoned` records those as Error 422 (the
recovery pass re-queues any it missed). Dead letters go to `<stream>.dead.<kind>`, in the bounded
stream `<stream>_dead` (layout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from thumbnailify.backends.headers import job_headers, read_headers
from thumbnailify.backends.nats.backlog import Counts
from thumbnailify.backends.nats.layout import (
    PROGRESS_FRACTION,
    dead_consumer,
    dead_stream,
    dead_subject,
    job_consumer_config,
    job_consumers,
    job_sources,
    job_subject,
    media_of,
)
from thumbnailify.backends.nats.records import Records
from thumbnailify.lanes import LanePicker, Priority, goes_ahead
from thumbnailify.record import Fields, MediaRecord, State
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import DeadLetter, Delivery

log = logging.getLogger(__name__)

R = TypeVar("R")
FAILURES = (NatsError, OSError, TimeoutError)
MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
RETRY_SECONDS = 1.0
FETCH_SECONDS = 5.0  # how long a lane's pull request stays open
FRESH_SECONDS = 0.02  # how long a pick waits for the answer to a pull request it just made


class LoopThread:
    """An event loop on a daemon thread; `run` waits for one coroutine on it. A NATS failure comes
    out as a ConnectionError (an OSError, which the worker retries as transient)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, R], timeout: float) -> R:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise ConnectionError(f"NATS did not answer within {timeout:.0f}s") from exc
        except NatsError as exc:
            raise ConnectionError(f"NATS: {exc or type(exc).__name__}") from exc

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Connected:
    """Records on a loop thread, connected on first use (and kept: nats-py reconnects by itself)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.records = Records(settings)
        self.counts = Counts(self.records)
        self.timeout = settings.nats.timeout * 4  # a call may be a few round trips
        self.loop = LoopThread(name)

    def call(self, make: Callable[[], Coroutine[Any, Any, R]]) -> R:
        self.loop.run(self.records.ensure_open(), self.timeout)
        return self.loop.run(make(), self.timeout)

    @property
    def js(self) -> JetStreamContext:
        return self.records.jetstream

    def count(self, kind: str, lane: Priority, client: str, step: int) -> int | None:
        """Change a client's backlog count in a lane (worker.fair_share_jobs); None if not counted."""
        if not self.counts.counted(kind):
            return None
        try:
            return self.call(lambda: self.counts.count(kind, lane, client, step))
        except FAILURES as exc:
            log.warning("could not count a job of %s in %s/%s (%s)", client, kind, lane, exc)
            return None

    def route(self, media_id: str, kind: str, lane: Priority, client: str) -> tuple[str, bool]:
        """The subject a job put back into its lane goes to, counted in; and whether it was counted."""
        waiting = self.count(kind, lane, client, 1)
        light = goes_ahead(waiting, self.counts.light_jobs)
        return job_subject(self.records.stream, media_id, kind, lane, light), waiting is not None

    def close(self) -> None:
        with contextlib.suppress(*FAILURES):
            self.loop.run(self.records.close(), self.timeout)
        self.loop.stop()


class NatsStore:
    transient: tuple[type[BaseException], ...] = FAILURES

    def __init__(self, settings: Settings) -> None:
        self.nats = Connected(settings, "nats-store")

    def get(self, media_id: str) -> MediaRecord | None:
        return self.nats.call(lambda: self.nats.records.get(media_id))

    def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        return self.nats.call(lambda: self.nats.records.transition(media_id, expected_state, fields))

    def add_attempt(self, media_id: str, delivery_token: str) -> int:
        return self.nats.call(lambda: self.nats.records.add_attempt(media_id, delivery_token))

    def set_fields(self, media_id: str, fields: Fields) -> bool:
        return self.nats.call(lambda: self.nats.records.set_fields(media_id, fields))

    def find_content(self, key: str) -> str | None:
        return self.nats.call(lambda: self.nats.records.find_content(key))

    def remember_content(self, key: str, media_id: str) -> None:
        self.nats.call(lambda: self.nats.records.remember_content(key, media_id))

    def close(self) -> None:
        self.nats.close()


def _message(tag: object) -> Msg:
    if not isinstance(tag, Msg):
        raise TypeError(f"not a delivery of this consumer: {tag!r}")
    return tag


def _seen(task: asyncio.Task[list[Msg]]) -> None:
    if not task.cancelled():
        task.exception()


def _delivery(lane: Priority, message: Msg) -> Delivery:
    job = read_headers(message.headers)
    meta = message.metadata
    # The lane is the consumer it came from: that is where it waited, whatever a header says.
    return Delivery(media_id=message.data.decode("utf-8", "replace").strip(), media_type=job.media_type,
                    redelivered=meta.num_delivered > 1, tag=message,
                    token=f"{meta.sequence.stream}:{meta.num_delivered}", lane=lane, client=job.client)


class NatsConsumer:
    def __init__(self, settings: Settings, kind: str) -> None:
        self.settings = settings
        self.kind = kind
        self.stream = settings.nats.stream
        self.nats = Connected(settings, f"nats-{kind}")
        self.sources = job_sources(kind)  # each lane's consumers, its light part first
        self.subscriptions: dict[str, JetStreamContext.PullSubscription] = {}
        self.progress: dict[int, asyncio.Task[None]] = {}  # by id of the message: its in-progress acks
        self.abandoned: list[int] = []  # stream sequences JetStream stopped delivering
        self.advisories: list[Subscription] = []
        self.fetching: dict[str, asyncio.Task[list[Msg]]] = {}  # the open pull request per consumer
        self.held: dict[str, deque[Msg]] = {name: deque() for name in job_consumers(kind)}
        self.picker = LanePicker()

    def _subscribe(self) -> dict[str, JetStreamContext.PullSubscription]:
        if not self.subscriptions:
            self.subscriptions = self.nats.call(self._open)
        return self.subscriptions

    async def _open(self) -> dict[str, JetStreamContext.PullSubscription]:
        records = self.nats.records
        assert records.client is not None

        async def heard(message: Msg) -> None:
            with contextlib.suppress(ValueError, KeyError):
                self.abandoned.append(int(json.loads(message.data)["stream_seq"]))

        subscriptions = {}
        for lane, sources in self.sources.items():
            for name, light in sources:
                self.advisories.append(await records.client.subscribe(
                    f"{MAX_DELIVERIES}.{self.stream}.{name}", cb=heard))
                config = job_consumer_config(self.settings, self.kind, lane, light)
                subscriptions[name] = await records.jetstream.pull_subscribe(
                    config.filter_subject or "", durable=name, stream=self.stream, config=config)
        return subscriptions

    def next(self, timeout: float) -> Delivery | None:
        try:
            subscriptions = self._subscribe()
            taken = self.nats.loop.run(self._next(subscriptions, timeout), timeout + self.nats.timeout)
        except FAILURES as exc:
            log.warning("NATS unavailable (%s); retrying", exc or type(exc).__name__)
            time.sleep(RETRY_SECONDS)  # a refused connection fails at once: neither a busy loop nor a log flood
            return None
        if not taken:
            return None
        delivery = _delivery(*taken)
        # Out of its client's backlog once taken, redelivered or not: a job taken twice (its
        # worker killed before the ack) counts down twice, and the count stops at 0.
        self.nats.count(self.kind, delivery.lane, delivery.client, -1)
        return delivery

    def _ready(self) -> list[Priority]:
        return [lane for lane, sources in self.sources.items() if any(self.held[name] for name, _ in sources)]

    async def _next(self, subscriptions: dict[str, JetStreamContext.PullSubscription],
                    seconds: float) -> tuple[Priority, Msg] | None:
        """A held job of the lane the picker chooses (of its light part first), once every consumer
        without one has had its pull request answered (or FRESH_SECONDS to answer a request just made)."""
        deadline = time.monotonic() + seconds
        fresh = [self._request(name, subscription) for name, subscription in subscriptions.items()
                 if not self.held[name] and name not in self.fetching]
        if fresh:
            await asyncio.wait(fresh, timeout=FRESH_SECONDS)
        while True:
            for name, task in list(self.fetching.items()):
                if task.done():
                    del self.fetching[name]
                    self.held[name].extend(task.result())
            chosen = self.picker.pick(self._ready())
            if chosen is not None:
                held = next(self.held[name] for name, _ in self.sources[chosen] if self.held[name])
                return chosen, held.popleft()
            for name, subscription in subscriptions.items():
                if name not in self.fetching:
                    self._request(name, subscription)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.wait(self.fetching.values(), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    def _request(self, name: str, subscription: JetStreamContext.PullSubscription) -> asyncio.Task[list[Msg]]:
        """A pull request open for FETCH_SECONDS: what it brings while a job runs is held (kept in
        progress) for the next pick."""
        task = self.fetching[name] = asyncio.ensure_future(self._fetch(subscription, FETCH_SECONDS))
        task.add_done_callback(_seen)  # a failure is raised by the next pick; one at close is no news
        return task

    async def _fetch(self, subscription: JetStreamContext.PullSubscription, wait: float) -> list[Msg]:
        try:
            messages = await subscription.fetch(1, timeout=wait)
        except NatsTimeout:
            return []
        for message in messages:
            self.progress[id(message)] = asyncio.create_task(self._keep_alive(message))
        return messages

    async def _keep_alive(self, message: Msg) -> None:
        every = self.settings.nats.ack_wait / PROGRESS_FRACTION
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(*FAILURES):
                await message.in_progress()

    async def _settle(self, message: Msg, settle: Callable[[], Coroutine[Any, Any, object]]) -> None:
        task = self.progress.pop(id(message), None)
        if task is not None:
            task.cancel()
        await settle()

    def ack(self, delivery: Delivery) -> None:
        message = _message(delivery.tag)
        try:
            self.nats.call(lambda: self._settle(message, message.ack_sync))
        except FAILURES as exc:
            log.warning("ack lost (%s); the job will be redelivered", exc)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = job_headers(delivery.media_type or "", delivery.lane, delivery.client) | {"reason": reason[:1000]}
        try:
            self.nats.call(lambda: self.nats.js.publish(dead_subject(self.stream, self.kind),
                                                        delivery.media_id.encode(), headers=headers))
        except FAILURES as exc:
            log.warning("could not dead-letter (%s); the job will be redelivered", exc)
            return
        self.ack(delivery)

    def retry_later(self, delivery: Delivery, seconds: float) -> None:
        """Handed out again after `seconds` by the consumer it came from, counted in its client's
        backlog again meanwhile."""
        message = _message(delivery.tag)
        counted = self.nats.count(self.kind, delivery.lane, delivery.client, 1) is not None
        try:
            self.nats.call(lambda: self._settle(message, lambda: message.nak(delay=seconds)))
        except FAILURES as exc:
            log.warning("could not put the job aside (%s); it will be redelivered", exc)
            if counted:
                self.nats.count(self.kind, delivery.lane, delivery.client, -1)

    def enqueue(self, kind: str, media_id: str, media_type: str) -> None:
        self.nats.call(lambda: self.nats.js.publish(job_subject(self.stream, media_id, kind), media_id.encode(),
                                                    headers={"media_type": media_type}))

    def settle_abandoned(self, settle: Callable[[Delivery], None]) -> int:
        settled = 0
        while self.abandoned:
            sequence = self.abandoned[0]
            try:
                stored = self.nats.call(lambda: self.nats.js.get_msg(self.stream, sequence))  # noqa: B023
                media_id, _ = media_of(stored.subject or "")
                job = read_headers(stored.headers)
                settle(Delivery(media_id, job.media_type, True, None, f"abandoned:{sequence}", job.lane, job.client))
            except Exception as exc:  # the store is out, most likely: tried again next time
                log.warning("could not settle an abandoned job (%r)", exc)
                return settled
            self.abandoned.pop(0)
            settled += 1
        return settled

    def close(self) -> None:
        async def cancel() -> None:
            for task in (*self.progress.values(), *self.fetching.values()):
                task.cancel()
            await asyncio.gather(*self.fetching.values(), return_exceptions=True)
            for advisories in self.advisories:
                await advisories.unsubscribe()
        with contextlib.suppress(*FAILURES):
            self.nats.call(cancel)
        self.nats.close()


class NatsDeadLetters:
    """`<stream>.dead.<kind>` through a durable consumer, as many letters as were waiting when opened
    (an acked letter leaves the work-queue stream)."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self.stream = settings.nats.stream
        self.kind = kind
        self.nats = Connected(settings, "nats-dead-letters")
        dead = dead_stream(self.stream)
        self.subscription = self.nats.call(lambda: self.nats.js.pull_subscribe(
            dead_subject(self.stream, kind), durable=dead_consumer(kind), stream=dead))
        info = self.nats.call(lambda: self.nats.js.consumer_info(dead, dead_consumer(kind)))
        self.remaining = info.num_pending or 0

    def take(self) -> DeadLetter | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        try:
            messages = self.nats.call(lambda: self.subscription.fetch(1, timeout=self.nats.records.conf.timeout))
        except ConnectionError:
            return None
        message = messages[0]
        job = read_headers(message.headers)
        return DeadLetter(message.data.decode("utf-8", "replace").strip(), job.media_type or "", job.reason, message,
                          job.lane, job.client)

    def requeue(self, letter: DeadLetter) -> None:
        subject, counted = self.nats.route(letter.media_id, self.kind, letter.lane, letter.client)
        try:
            self.nats.call(lambda: self.nats.js.publish(subject, letter.media_id.encode(),
                                                        headers=job_headers(letter.media_type, letter.lane,
                                                                            letter.client)))
        except BaseException:
            if counted:
                self.nats.count(self.kind, letter.lane, letter.client, -1)
            raise
        self.drop(letter)

    def drop(self, letter: DeadLetter) -> None:
        message = _message(letter.tag)
        self.nats.call(message.ack_sync)

    def close(self) -> None:
        self.nats.close()
