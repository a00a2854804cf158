"""Jobs from RabbitMQ's durable work queue (pika, blocking), acked only after the outcome is stored.

A lost connection is reopened on the next call; whatever was delivered but not acked on the old
one goes back to the queue by itself, which is why every step of a job is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from common.config import Settings
from common.keys import dead_letter_queue
from worker.backends import Delivery

log = logging.getLogger(__name__)

Message = tuple[object, object, bytes] | tuple[None, None, None]
FAILURES = (pika.exceptions.AMQPError, OSError)


class RabbitMQConsumer:
    def __init__(self, settings: Settings) -> None:
        conf = settings.rabbitmq
        self.parameters = pika.URLParameters(conf.url)
        # A job may run up to job_timeout without touching the socket; heartbeats must outlast it.
        self.parameters.heartbeat = max(60, int(settings.worker.job_timeout * 2))
        self.parameters.blocked_connection_timeout = 30
        self.queue = conf.queue
        self.prefetch = settings.worker.prefetch
        self.connection: pika.BlockingConnection | None = None
        self.channel: BlockingChannel | None = None
        self.stream: Iterator[Message] | None = None
        self.retry_delay = 0.5

    def _connect(self, idle_timeout: float) -> None:
        self.connection = pika.BlockingConnection(self.parameters)
        self.channel = self.connection.channel()
        for queue in (self.queue, dead_letter_queue(self.queue)):
            self.channel.queue_declare(queue, durable=True)
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=self.prefetch)
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
            method, properties, body = next(self.stream)
        except FAILURES as exc:
            log.warning("RabbitMQ unavailable (%s); retrying in %.1fs", exc or type(exc).__name__, self.retry_delay)
            self._drop()
            time.sleep(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, 10.0)
            return None
        if method is None:
            return None
        headers = getattr(properties, "headers", None) or {}
        media_type = headers.get("media_type") if isinstance(headers, dict) else None
        return Delivery(
            media_id=bytes(body).decode("utf-8", "replace").strip(),
            media_type=media_type if isinstance(media_type, str) else None,
            redelivered=bool(method.redelivered),  # type: ignore[attr-defined]
            tag=(self.channel, method.delivery_tag),  # type: ignore[attr-defined]
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

    def close(self) -> None:
        if self.channel is not None and self.channel.is_open:
            with contextlib.suppress(FAILURES):
                self.channel.cancel()
        self._drop()
