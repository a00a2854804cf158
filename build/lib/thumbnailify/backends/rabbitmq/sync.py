"""Jobs from RabbitMQ's durable work queue (pika, blocking), acked only after the outcome is stored.

A lost connection is reopened on the next call; whatever was delivered but not acked on the old
one goes back to the queue by itself, which is why every step of a job is idempotent. A consumer
the broker cancels (its queue deleted, or the node holding it lost) is handled the same way: the
queue is declared again and consumed again.

Dead letters go to `<queue>.dead`, declared here (only the worker writes to it) with the bounds of
worker.dead_letter_max_length / dead_letter_max_age as queue arguments. RabbitMQ refuses to declare
an existing queue with other arguments; the queue then keeps the bounds it was created with (see
the README, Operations, to change them).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from thumbnailify.kinds import dead_letter_queue, given_up_by_broker, prefetch, queue_name, work_queue_arguments
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import DeadLetter, Delivery

log = logging.getLogger(__name__)

Message = tuple[object, object, bytes] | tuple[None, None, None]
FAILURES = (pika.exceptions.AMQPError, OSError)
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


def declare_queues(connection: pika.BlockingConnection, settings: Settings, queue: str) -> BlockingChannel:
    """Declare a work queue and its dead queue; returns a usable channel."""
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments=work_queue_arguments(settings, queue))
    try:
        channel.queue_declare(dead_letter_queue(queue), durable=True, arguments=dead_letter_arguments(settings))
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != PRECONDITION_FAILED:
            raise
        log.warning("%s exists with other bounds than configured; it keeps them (%s)",
                    dead_letter_queue(queue), exc.reply_text)
        channel = connection.channel()  # the refusal closed the channel, not the connection
    return channel


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
        self.declared: set[str] = set()  # queues declared on this connection, besides ours
        self.prefetch = prefetch(settings, kind)
        self.connection: pika.BlockingConnection | None = None
        self.channel: BlockingChannel | None = None
        self.stream: Iterator[Message] | None = None
        self.session = ""  # names the connection: its delivery tags start again from 1
        self.retry_delay = 0.5
        self.quorum = conf.queue_type == "quorum"
        self.next_dead_check = 0.0
        self.dead_kept = 0  # letters of the workers' own seen in the dead queue at the last look

    def _connect(self, idle_timeout: float) -> None:
        self.connection = pika.BlockingConnection(self.parameters)
        self.session = uuid.uuid4().hex
        self.declared = set()
        self.channel = declare_queues(self.connection, self.settings, self.queue)
        self.channel.confirm_delivery()
        # Per consumer, never global: a quorum queue's channel is closed on global QoS.
        self.channel.basic_qos(prefetch_count=self.prefetch, global_qos=False)
        self.stream = self.channel.consume(self.queue, inactivity_timeout=idle_timeout)
        self.retry_delay = 0.5
        log.info("consuming %s", self.queue)

    def _drop(self) -> None:
        connection, self.connection, self.channel, self.stream = self.connection, None, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(FAILURES):
                connection.close()

    def next(self, timeout: float) -> Delivery | None:
        try:
            if self.stream is None:
                self._connect(timeout)
            assert self.stream is not None
            message = next(self.stream, None)
        except FAILURES as exc:
            log.warning("RabbitMQ unavailable (%s); retrying in %.1fs", exc or type(exc).__name__, self.retry_delay)
            self._drop()
            time.sleep(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, 10.0)
            return None
        if message is None:  # the stream ended: the broker cancelled our consumer
            log.warning("RabbitMQ cancelled the consumer of %s (queue deleted or its node lost); consuming again",
                        self.queue)
            self._drop()
            return None
        method, properties, body = message
        if method is None:
            return None
        headers = getattr(properties, "headers", None) or {}
        media_type = headers.get("media_type") if isinstance(headers, dict) else None
        return Delivery(
            media_id=bytes(body).decode("utf-8", "replace").strip(),
            media_type=media_type if isinstance(media_type, str) else None,
            redelivered=bool(method.redelivered),  # type: ignore[attr-defined]
            tag=(self.channel, method.delivery_tag),  # type: ignore[attr-defined]
            token=f"{self.session}:{method.delivery_tag}",  # type: ignore[attr-defined]
        )

    def ack(self, delivery: Delivery) -> None:
        channel, tag = delivery.tag  # type: ignore[misc]
        if channel is not self.channel:
            return  # its connection is gone: the broker has already put it back in the queue
        try:
            channel.basic_ack(tag)
        except FAILURES as exc:
            log.warning("ack lost with the connection (%s); the job will be redelivered", exc)
            self._drop()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        channel, _ = delivery.tag  # type: ignore[misc]
        if channel is not self.channel:
            return
        try:
            channel.basic_publish(
                "",
                dead_letter_queue(self.queue),
                delivery.media_id.encode(),
                pika.BasicProperties(
                    delivery_mode=2,
                    headers={"media_type": delivery.media_type or "", "reason": reason[:1000]},
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
        self._publish(queue, media_id, media_type, work_queue_arguments(self.settings, queue))

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
                if not given_up_by_broker(headers, self.queue):
                    continue  # held unacked until the channel closes: it goes back where it was
                media_type = headers.get("media_type")
                delivery = Delivery(
                    media_id=bytes(body).decode("utf-8", "replace").strip(),
                    media_type=media_type if isinstance(media_type, str) else None,
                    redelivered=True, tag=(channel, method.delivery_tag), token=f"dead:{uuid.uuid4().hex}",
                )
                try:
                    settle(delivery)
                except Exception as exc:  # the store is out, most likely: the letter waits for next time
                    log.warning("could not settle an abandoned job (%r); it stays a dead letter", exc,
                                extra={"media_id": delivery.media_id})
                    failed = True
                    continue
                channel.basic_ack(method.delivery_tag)
                settled += 1
            self.dead_kept = -1 if failed else waiting - settled  # -1: look again next time
        finally:
            if channel.is_open:
                with contextlib.suppress(FAILURES):
                    channel.close()
        return settled

    def retry_later(self, delivery: Delivery, seconds: float) -> None:
        """Ack the delivery and have the job back in `seconds`: through a waiting queue whose
        messages expire into ours (one such queue per delay, so no message waits behind a longer
        one)."""
        if delivery.tag[0] is not self.channel:  # type: ignore[index]
            return  # its connection is gone: the broker has already put it back (a copy would be one too many)
        ms = max(1, int(seconds * 1000))
        waiting = f"{self.queue}.wait.{ms}"
        arguments = {"x-message-ttl": ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.queue}
        try:
            self._publish(waiting, delivery.media_id, delivery.media_type or "", arguments)
        except FAILURES as exc:
            log.warning("could not put the job aside (%s); it will be redelivered", exc)
            self._drop()
            return
        self.ack(delivery)

    def _publish(self, queue: str, media_id: str, media_type: str, arguments: dict[str, object]) -> None:
        if self.channel is None:
            raise pika.exceptions.AMQPConnectionError("not connected")
        if queue not in self.declared:
            self.channel.queue_declare(queue, durable=True, arguments=arguments)
            self.declared.add(queue)
        # Confirmed (the channel is in confirm mode) and mandatory: raises unless the queue has it.
        self.channel.basic_publish("", queue, media_id.encode(),
                                   pika.BasicProperties(delivery_mode=2, headers={"media_type": media_type}),
                                   mandatory=True)

    def close(self) -> None:
        if self.channel is not None and self.channel.is_open:
            with contextlib.suppress(FAILURES):
                self.channel.cancel()
        self._drop()


class RabbitMQDeadLetters:
    """`<queue>.dead`, as many letters as it held when opened (a letter dead again meanwhile waits)."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self.queue = queue_name(settings.rabbitmq.queue, kind)
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq.url))
        self.channel = declare_queues(self.connection, settings, self.queue)
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
        headers = getattr(properties, "headers", None) or {}
        media_type, reason = headers.get("media_type"), headers.get("reason")
        return DeadLetter(
            media_id=bytes(body or b"").decode("utf-8", "replace").strip(),
            media_type=media_type if isinstance(media_type, str) else "",
            reason=reason if isinstance(reason, str) else "",
            tag=method.delivery_tag,
        )

    def requeue(self, letter: DeadLetter) -> None:
        # Confirmed and mandatory: the letter is acked only once the work queue holds the job.
        self.channel.basic_publish(
            "", self.queue, letter.media_id.encode(),
            pika.BasicProperties(delivery_mode=2, headers={"media_type": letter.media_type}), mandatory=True,
        )
        self.drop(letter)

    def drop(self, letter: DeadLetter) -> None:
        self.channel.basic_ack(letter.tag)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.connection.is_open:
            with contextlib.suppress(FAILURES):
                self.connection.close()
