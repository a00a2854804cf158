"""Jobs from RabbitMQ's durable work queues (pika, blocking), acked only after the outcome is stored.

A worker consumes every lane's queue of its kind (thumbnailify.lanes) on one channel, each with
worker.prefetch, and holds what the broker delivers until it takes it: its LanePicker chooses
among the lanes it holds a job of. So a job arriving in an idle lane is delivered at once to a
worker whose consumer of that lane is free, and taken when that worker's current job ends. The
price: a worker holds up to one prefetch per lane, which another idle worker cannot take meanwhile.
A media lane is two queues, its light part (jobs of clients that had few waiting in the lane when
they were published, see thumbnailify.backends.rabbitmq.aio) and its backlog: the worker takes the
light part's first, and counts each job it takes out of its client's backlog in the lane.

A lost connection is reopened on the next call; whatever was delivered but not acked on the old
one goes back to the queue by itself, which is why every step of a job is idempotent. A consumer
the broker cancels (its queue deleted, or the node holding it lost) is handled the same way: the
queue is declared again and consumed again.

Dead letters go to `<queue>.dead`, declared here (only the worker writes to it) with the bounds of
worker.dead_letter_max_length / dead_letter_max_age as queue arguments. RabbitMQ refuses to declare
an existing queue with other arguments; the queue then keeps the bounds it was created with (see
docs/operations.md, "Dead-letter bounds", to change them).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable

import pika
import pika.exceptions
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel

from thumbnailify.backends.headers import job_headers, read_headers
from thumbnailify.backends.redis.backlog import SyncBacklogs, counted
from thumbnailify.kinds import (
    MEDIA_KINDS,
    dead_letter_queue,
    given_up_by_broker,
    lane_queue,
    lane_queues,
    lanes,
    light_queue,
    prefetch,
    queue_name,
    work_queue_arguments,
)
from thumbnailify.lanes import LanePicker, Priority, goes_ahead
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import DeadLetter, Delivery

log = logging.getLogger(__name__)


def _channel_and_tag(delivery: Delivery) -> tuple[BlockingChannel, int]:
    """Delivery.tag as RabbitMQConsumer makes it: the channel the job came on, and its delivery tag."""
    match delivery.tag:
        case (BlockingChannel() as channel, int() as tag):
            return channel, tag
    raise TypeError(f"not a delivery of this consumer: {delivery.tag!r}")


def _number(delivery_tag: object) -> int:
    """A delivery tag: the broker always sets one (pika's types allow None, its constructors' default)."""
    if not isinstance(delivery_tag, int):
        raise TypeError(f"not a delivery tag: {delivery_tag!r}")
    return delivery_tag

Held = tuple[pika.spec.Basic.Deliver, pika.spec.BasicProperties, bytes]  # delivered, not yet taken
FAILURES: tuple[type[Exception], ...] = (pika.exceptions.AMQPError, OSError)
PRECONDITION_FAILED = 406
ABANDONED_CHECK_SECONDS = 5.0  # how often a quorum queue's dead letters are looked through


def dead_letter_arguments(settings: Settings) -> dict[str, int]:
    """The dead queue's bounds as RabbitMQ queue arguments: the oldest letters go first."""
    conf = settings.worker
    arguments = {}
    if conf.dead_letter_max_length > 0:
        arguments["x-max-length"] = conf.dead_letter_max_length
    if conf.dead_letter_max_age > 0:
        arguments["x-message-ttl"] = int(conf.dead_letter_max_age * 1000)
    return arguments


def declare_queues(connection: pika.BlockingConnection, settings: Settings, queue: str,
                   kind: str = "image") -> BlockingChannel:
    """Declare a kind's work queues (each lane's) and its dead queue; returns a usable channel."""
    channel = connection.channel()
    for names in lane_queues(queue, kind).values():
        for name in names:
            channel.queue_declare(name, durable=True, arguments=work_queue_arguments(settings, queue))
    try:
        channel.queue_declare(dead_letter_queue(queue), durable=True, arguments=dead_letter_arguments(settings))
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != PRECONDITION_FAILED:
            raise
        log.warning("%s exists with other bounds than configured; it keeps them (%s)",
                    dead_letter_queue(queue), exc.reply_text)
        channel = connection.channel()  # the refusal closed the channel, not the connection
    return channel


class Router:
    """Which of a lane's queues a worker puts a job back into (a retry, a replayed dead letter),
    counting it in its client's backlog as the server does at publish."""

    def __init__(self, settings: Settings, queue: str, kind: str) -> None:
        self.light_jobs = settings.worker.fair_share_jobs
        self.backlogs = SyncBacklogs(settings) if counted(settings) and kind in MEDIA_KINDS else None
        self.queue = queue

    def add(self, lane: Priority, client: str) -> tuple[str, bool]:
        """The queue the job goes into, and whether it was counted (to be counted out should it fail)."""
        backlog = lane_queue(self.queue, lane)
        if self.backlogs is None:
            return backlog, False
        waiting = self.backlogs.add(backlog, client)
        return light_queue(backlog) if goes_ahead(waiting, self.light_jobs) else backlog, waiting is not None

    def take(self, lane: Priority, client: str) -> None:
        if self.backlogs is not None:
            self.backlogs.take(lane_queue(self.queue, lane), client)

    def close(self) -> None:
        if self.backlogs is not None:
            self.backlogs.close()


class RabbitMQConsumer:
    def __init__(self, settings: Settings, kind: str) -> None:
        conf = settings.rabbitmq
        self.parameters = pika.URLParameters(conf.url)
        # A job may run up to job_timeout without touching the socket; heartbeats must outlast it.
        self.parameters.heartbeat = max(60, int(settings.worker.job_timeout * 2))
        self.parameters.blocked_connection_timeout = 30
        self.settings = settings
        self.base = conf.queue
        self.queue = queue_name(conf.queue, kind)
        self.kind = kind
        self.lanes = {lane: lane_queue(self.queue, lane) for lane in lanes(kind)}
        self.sources = lane_queues(self.queue, kind)  # each lane's queues, light part first
        self.router = Router(settings, self.queue, kind)
        self.declared: set[str] = set()  # queues declared on this connection, besides ours
        self.prefetch = prefetch(settings, kind)
        self.connection: pika.BlockingConnection | None = None
        self.channel: BlockingChannel | None = None
        self.held: dict[str, deque[Held]] = {name: deque() for names in self.sources.values() for name in names}
        self.picker = LanePicker()
        self.cancelled = False  # the broker cancelled a consumer of ours
        self.session = ""  # names the connection: its delivery tags start again from 1
        self.retry_delay = 0.5
        self.quorum = conf.queue_type == "quorum"
        self.next_dead_check = 0.0
        self.dead_kept = 0  # letters of the workers' own seen in the dead queue at the last look

    def _connect(self) -> None:
        self.connection = pika.BlockingConnection(self.parameters)
        self.session = uuid.uuid4().hex
        self.declared = set()
        self.cancelled = False
        channel = declare_queues(self.connection, self.settings, self.queue, self.kind)
        self.channel = channel
        channel.confirm_delivery()
        # Per consumer, never global: a quorum queue's channel is closed on global QoS.
        channel.basic_qos(prefetch_count=self.prefetch, global_qos=False)
        channel.add_on_cancel_callback(self._on_cancelled)
        for queue in self.held:
            channel.basic_consume(queue, self._holder(queue))
        self.retry_delay = 0.5
        log.info("consuming %s", ", ".join(self.held))

    def _holder(self, queue: str) -> Callable[[BlockingChannel, pika.spec.Basic.Deliver,
                                               pika.spec.BasicProperties, bytes], None]:
        """What keeps a queue's deliveries until the picker takes them."""
        def hold(_channel: BlockingChannel, method: pika.spec.Basic.Deliver,
                 properties: pika.spec.BasicProperties, body: bytes) -> None:
            self.held[queue].append((method, properties, body))
        return hold

    def _ready(self) -> list[Priority]:
        return [lane for lane, names in self.sources.items() if any(self.held[name] for name in names)]

    def _on_cancelled(self, _frame: object) -> None:
        self.cancelled = True

    def _drop(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        for held in self.held.values():
            held.clear()  # the broker puts back what the connection held
        if connection is not None and connection.is_open:
            with contextlib.suppress(*FAILURES):
                connection.close()

    def next(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        try:
            if self.connection is None:
                self._connect()
            assert self.connection is not None
            self.connection.process_data_events(0)  # whatever arrived while the last job ran
            while not self.cancelled:
                lane = self.picker.pick(self._ready())
                if lane is not None:
                    held = next(self.held[name] for name in self.sources[lane] if self.held[name])
                    return self._delivery(lane, *held.popleft())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.connection.process_data_events(remaining)  # returns on the first delivery
        except FAILURES as exc:
            log.warning("RabbitMQ unavailable (%s); retrying in %.1fs", exc or type(exc).__name__, self.retry_delay)
            self._drop()
            time.sleep(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, 10.0)
            return None
        log.warning("RabbitMQ cancelled the consumer of a lane of %s (queue deleted or its node lost); "
                    "consuming again", self.queue)
        self._drop()
        return None

    def _delivery(self, lane: Priority, method: pika.spec.Basic.Deliver, properties: pika.spec.BasicProperties,
                  body: bytes) -> Delivery:
        job = read_headers(getattr(properties, "headers", None))
        # Out of its client's backlog once taken, redelivered or not: a job held and given back
        # was never taken, and one taken twice stops the count at 0.
        self.router.take(lane, job.client)
        return Delivery(
            media_id=bytes(body or b"").decode("utf-8", "replace").strip(),
            media_type=job.media_type,
            redelivered=bool(method.redelivered),
            tag=(self.channel, method.delivery_tag),
            token=f"{self.session}:{method.delivery_tag}",
            lane=lane,  # the queue it came from: that is where it waited, whatever a header says
            client=job.client,
        )

    def ack(self, delivery: Delivery) -> None:
        channel, tag = _channel_and_tag(delivery)
        if channel is not self.channel:
            return  # its connection is gone: the broker has already put it back in the queue
        try:
            channel.basic_ack(tag)
        except FAILURES as exc:
            log.warning("ack lost with the connection (%s); the job will be redelivered", exc)
            self._drop()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        channel, _ = _channel_and_tag(delivery)
        if channel is not self.channel:
            return
        try:
            channel.basic_publish(
                "",
                dead_letter_queue(self.queue),
                delivery.media_id.encode(),
                pika.BasicProperties(
                    delivery_mode=2,
                    headers=job_headers(delivery.media_type or "", delivery.lane, delivery.client)
                    | {"reason": reason[:1000]},
                ),
            )
        except FAILURES as exc:
            log.warning("could not dead-letter (%s); the job will be redelivered", exc)
            self._drop()
            return
        self.ack(delivery)

    def enqueue(self, kind: str, media_id: str, media_type: str) -> None:
        """Hand a follow-up job to another kind of worker (a webhook); raises when it was not taken."""
        queue = queue_name(self.base, kind)
        self._publish(queue, media_id, {"media_type": media_type}, work_queue_arguments(self.settings, queue))

    def settle_abandoned(self, settle: Callable[[Delivery], None]) -> int:
        """Jobs a quorum queue dead-lettered by itself (delivered more than worker.max_attempts
        times): `settle` records each, then its letter goes. Letters a worker dead-lettered after an
        outage stay for `python -m thumbnailify.worker.replay`. Looked at every few seconds, and only when the
        dead queue holds other letters than last time; returns how many were settled."""
        if not self.quorum or self.connection is None or time.monotonic() < self.next_dead_check:
            return 0
        self.next_dead_check = time.monotonic() + ABANDONED_CHECK_SECONDS
        try:
            return self._settle_abandoned(settle)
        except FAILURES as exc:
            log.warning("could not look through %s (%s)", dead_letter_queue(self.queue), exc)
            self._drop()
            return 0

    def _settle_abandoned(self, settle: Callable[[Delivery], None]) -> int:
        assert self.connection is not None
        dead = dead_letter_queue(self.queue)
        channel = self.connection.channel()
        settled, failed = 0, False
        try:
            waiting = channel.queue_declare(dead, passive=True).method.message_count
            if waiting == self.dead_kept:
                return 0
            for _ in range(waiting):
                method, properties, body = channel.basic_get(dead)
                if method is None:
                    break
                headers = getattr(properties, "headers", None) or {}
                if not given_up_by_broker(headers, self.held):
                    continue  # held unacked until the channel closes: it goes back where it was
                job = read_headers(getattr(properties, "headers", None))
                delivery = Delivery(
                    media_id=bytes(body or b"").decode("utf-8", "replace").strip(),
                    media_type=job.media_type,
                    redelivered=True, tag=(channel, method.delivery_tag), token=f"dead:{uuid.uuid4().hex}",
                    lane=job.lane, client=job.client,
                )
                try:
                    settle(delivery)
                except Exception as exc:  # the store is out, most likely: the letter waits for next time
                    log.warning("could not settle an abandoned job (%r); it stays a dead letter", exc,
                                extra={"media_id": delivery.media_id})
                    failed = True
                    continue
                channel.basic_ack(_number(method.delivery_tag))
                settled += 1
            self.dead_kept = -1 if failed else waiting - settled  # -1: look again next time
        finally:
            if channel.is_open:
                with contextlib.suppress(*FAILURES):
                    channel.close()
        return settled

    def retry_later(self, delivery: Delivery, seconds: float) -> None:
        """Ack the delivery and have the job back in `seconds`: through a waiting queue whose
        messages expire into its lane's queue (one such queue per queue of a lane and delay, so
        no message waits behind a longer one), counted in its client's backlog again."""
        if _channel_and_tag(delivery)[0] is not self.channel:
            return  # its connection is gone: the broker has already put it back (a copy would be one too many)
        ms = max(1, int(seconds * 1000))
        lane = delivery.lane if delivery.lane in self.lanes else Priority.NORMAL
        queue, counted_in = self.router.add(lane, delivery.client)
        waiting = f"{queue}.wait.{ms}"
        arguments = {"x-message-ttl": ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
        try:
            self._publish(waiting, delivery.media_id,
                          job_headers(delivery.media_type or "", lane, delivery.client), arguments)
        except FAILURES as exc:
            log.warning("could not put the job aside (%s); it will be redelivered", exc)
            if counted_in:
                self.router.take(lane, delivery.client)
            self._drop()
            return
        self.ack(delivery)

    def _publish(self, queue: str, media_id: str, headers: dict[str, str], arguments: dict[str, object]) -> None:
        if self.channel is None:
            raise pika.exceptions.AMQPConnectionError("not connected")
        if queue not in self.declared:
            self.channel.queue_declare(queue, durable=True, arguments=arguments)
            self.declared.add(queue)
        # Confirmed (the channel is in confirm mode) and mandatory: raises unless the queue has it.
        self.channel.basic_publish("", queue, media_id.encode(),
                                   pika.BasicProperties(delivery_mode=2, headers=headers), mandatory=True)

    def close(self) -> None:
        self._drop()  # what it held but had not taken goes back to the queues
        self.router.close()


class RabbitMQDeadLetters:
    """`<queue>.dead`, as many letters as it held when opened (a letter dead again meanwhile waits)."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self.queue = queue_name(settings.rabbitmq.queue, kind)
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq.url))
        self.router = Router(settings, self.queue, kind)
        self.channel = declare_queues(self.connection, settings, self.queue, kind)
        self.channel.confirm_delivery()
        declared = self.channel.queue_declare(dead_letter_queue(self.queue), passive=True)
        self.remaining: int = declared.method.message_count

    def take(self) -> DeadLetter | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        method, properties, body = self.channel.basic_get(dead_letter_queue(self.queue))
        if method is None:
            return None
        job = read_headers(getattr(properties, "headers", None))
        return DeadLetter(
            media_id=bytes(body or b"").decode("utf-8", "replace").strip(),
            media_type=job.media_type or "",
            reason=job.reason,
            tag=method.delivery_tag,
            lane=job.lane,
            client=job.client,
        )

    def requeue(self, letter: DeadLetter) -> None:
        # Confirmed and mandatory: the letter is acked only once its lane's queue holds the job.
        queue, counted_in = self.router.add(letter.lane, letter.client)
        try:
            self.channel.basic_publish(
                "", queue, letter.media_id.encode(),
                pika.BasicProperties(delivery_mode=2,
                                     headers=job_headers(letter.media_type, letter.lane, letter.client)),
                mandatory=True,
            )
        except BaseException:
            if counted_in:
                self.router.take(letter.lane, letter.client)
            raise
        self.drop(letter)

    def drop(self, letter: DeadLetter) -> None:
        self.channel.basic_ack(_number(letter.tag))

    def close(self) -> None:
        self.router.close()
        if self.connection.is_open:
            with contextlib.suppress(*FAILURES):
                self.connection.close()
