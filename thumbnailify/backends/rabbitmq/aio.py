"""Jobs into RabbitMQ's durable work queues, one per kind of media and lane, with publisher
confirms (aioamqp).

A job goes into its lane's light queue when its client had fewer than worker.fair_share_jobs
jobs waiting in the lane, else into the lane's own queue, its backlog (counted in Redis:
thumbnailify.backends.redis.backlog), so one client's import cannot hold up another's upload.

aioamqp 0.15 ignores a confirm that acks several deliveries at once (multiple=True), which the
broker sends when a channel has more than one publish in flight. So each channel carries at most
one publish at a time: requests borrow a channel from a pool and return it after the confirm.
A publish that fails on its channel drops the whole connection; the next publish opens a fresh one.
The publishes made in one turn of the event loop go out in one socket write (see Protocol).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import aioamqp
import pamqp.body
import pamqp.commands
import pamqp.frame
import pamqp.header
import redis.asyncio as aioredis
from aioamqp.channel import Channel
from aioamqp.exceptions import ChannelClosed
from aioamqp.protocol import OPEN, AmqpProtocol

from thumbnailify.backends.headers import job_headers
from thumbnailify.backends.redis.aio import connection_pool
from thumbnailify.backends.redis.backlog import Backlogs, counted
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.kinds import MEDIA_KINDS, lane_queue, lanes, light_queue, media_kind, queue_name, work_queue_arguments
from thumbnailify.lanes import Priority, goes_ahead
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings

log = logging.getLogger(__name__)

FAILURES = (aioamqp.AioamqpException, OSError, asyncio.TimeoutError)


class BatchingChannel(Channel):  # type: ignore[misc]  # aioamqp is untyped
    """aioamqp's channel with a publish that hands its frames (method, header, body) to the
    connection's batch (Protocol.send_soon) instead of writing each one to the socket. Otherwise
    as aioamqp 0.15's publish: the confirm's waiter set first, then the frames, then the drain and
    the confirm awaited."""

    async def publish(self, payload: bytes, exchange_name: str, routing_key: str,
                      properties: pamqp.commands.Basic.Properties) -> None:
        await self.protocol.ensure_open()
        if not self.is_open:
            raise ChannelClosed()
        confirmed = self._set_waiter(f"basic_server_ack_{next(self.delivery_tag_iter)}") \
            if self.publisher_confirms else None
        frame_max = self.protocol.server_frame_max or len(payload)
        frames: list[pamqp.frame.FrameTypes] = [
            pamqp.commands.Basic.Publish(exchange=exchange_name, routing_key=routing_key),
            pamqp.header.ContentHeader(body_size=len(payload), properties=properties),
            *(pamqp.body.ContentBody(payload[i:i + frame_max]) for i in range(0, len(payload), frame_max)),
        ]
        self.protocol.send_soon(b"".join(pamqp.frame.marshal(frame, self.channel_id) for frame in frames))
        await self.protocol._drain()
        if confirmed is not None:
            await confirmed


class Protocol(AmqpProtocol):  # type: ignore[misc]
    """aioamqp's connection, whose publishes of one turn of the event loop (the uploads under way
    reach theirs together under load) go to the broker in one socket write at the end of it.

    Each write to the broker's socket wakes it up, and on a busy machine the kernel often runs the
    broker right then, in the middle of that write: py-spy showed the server's main thread in those
    writes for a fifth of its busy time under wrk, one write per frame at first."""

    CHANNEL_FACTORY = BatchingChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: list[bytes] = []

    def send_soon(self, frames: bytes) -> None:
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._send_batch)
        self._batch.append(frames)

    def _send_batch(self) -> None:
        frames, self._batch = b"".join(self._batch), []
        # Lost meanwhile: the channels' waiters have the error already (aioamqp closes them).
        if not self._stream_writer.transport.is_closing():
            self._stream_writer.write(frames)


class Connection:
    """One AMQP connection: a control channel and a pool of confirm-mode channels."""

    def __init__(self, transport: asyncio.Transport, protocol: AmqpProtocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.control: Channel | None = None
        self.control_lock = asyncio.Lock()  # aioamqp keeps one waiter per method and channel
        self.pool: asyncio.Queue[Channel] = asyncio.Queue()

    @property
    def usable(self) -> bool:
        return bool(self.protocol.state == OPEN)  # aioamqp is untyped

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.protocol.close(), 2)
        except (*FAILURES, RuntimeError):
            pass
        self.transport.close()


class RabbitMQPublisher:
    name = "rabbitmq"

    def __init__(self, settings: Settings) -> None:
        conf = settings.rabbitmq
        self.url = conf.url
        self.settings = settings
        # One work queue per kind of media (a long video never holds up photos), one per lane of it.
        self.queues = {kind: queue_name(conf.queue, kind) for kind in MEDIA_KINDS}
        self.lane_queues = {(kind, lane): lane_queue(queue, lane)
                            for kind, queue in self.queues.items() for lane in lanes(kind)}
        self.light_queues = {key: light_queue(queue) for key, queue in self.lane_queues.items()}
        self.light_jobs = settings.worker.fair_share_jobs
        self.backlogs = Backlogs(settings.redis.prefix, aioredis.Redis.from_pool(connection_pool(settings))) \
            if counted(settings) else None
        self.timeout = conf.publish_timeout
        self.channels = conf.channels
        self.connection: Connection | None = None
        self._connecting = asyncio.Lock()
        self._closing = False  # our own close is not worth a warning

    async def open(self) -> None:
        try:
            await self._connection()
        except BackendUnavailable as exc:
            log.warning("RabbitMQ not reachable at start-up; will retry on demand: %s", exc.message)

    async def _connect(self) -> Connection:
        url = urlsplit(self.url)
        # aioamqp.from_url would not unquote the vhost ("%2F" for "/"), so connect() is called here.
        transport, protocol = await aioamqp.connect(
            host=url.hostname or "localhost",
            port=url.port or 5672,
            login=unquote(url.username or "guest"),
            password=unquote(url.password or "guest"),
            virtualhost=unquote(url.path[1:]) or "/",
            on_error=self._on_error,
            protocol_factory=Protocol,
        )
        conn = Connection(transport, protocol)
        try:
            conn.control = await protocol.channel()
            # Only the work queues: a dead queue is its workers', declared with its bounds there.
            for (kind, lane), queue in self.lane_queues.items():
                for name in (queue, self.light_queues[kind, lane]):
                    await conn.control.queue_declare(
                        name, durable=True, arguments=work_queue_arguments(self.settings, self.queues[kind]))
            for _ in range(self.channels):
                channel = await protocol.channel()
                await channel.confirm_select()
                conn.pool.put_nowait(channel)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _connection(self) -> Connection:
        conn = self.connection
        if conn is not None and conn.usable:
            return conn
        async with self._connecting:
            if self.connection is None or not self.connection.usable:
                await self._drop()
                try:
                    self.connection = await asyncio.wait_for(self._connect(), self.timeout)
                except FAILURES as exc:
                    raise BackendUnavailable(self.name, str(exc) or type(exc).__name__) from exc
                log.info("connected to RabbitMQ")
            return self.connection

    def _on_error(self, exc: BaseException) -> None:
        if not self._closing:
            log.warning("RabbitMQ connection lost: %s", exc)

    async def _drop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            await conn.close()

    async def ping(self) -> None:
        await self.depth()

    async def publish(self, media_id: str, media_type: str, lane: Priority = Priority.NORMAL,
                      client: str = DEFAULT_CLIENT) -> None:
        key = media_kind(media_type), lane
        backlog = self.lane_queues[key]
        if self.backlogs is None:
            await self._publish(backlog, media_id, media_type, lane, client)
            return
        # Counted before the publish, so a worker's count down never comes before its count up.
        waiting = await self.backlogs.add(backlog, client)
        queue = self.light_queues[key] if goes_ahead(waiting, self.light_jobs) else backlog
        try:
            await self._publish(queue, media_id, media_type, lane, client)
        except BaseException:
            if waiting is not None:
                await self.backlogs.take(backlog, client)
            raise

    async def _publish(self, queue: str, media_id: str, media_type: str, lane: Priority, client: str) -> None:
        conn = await self._connection()
        try:
            channel = await asyncio.wait_for(conn.pool.get(), self.timeout)
        except TimeoutError as exc:
            # Every channel busy for that long: the broker is slow, not the connection broken, so
            # the publishes in flight on it are left to finish.
            raise BackendUnavailable(self.name, f"no channel free within {self.timeout:g}s") from exc
        try:
            await asyncio.wait_for(
                channel.publish(
                    media_id.encode(),
                    exchange_name="",
                    routing_key=queue,
                    properties=pamqp.commands.Basic.Properties(
                        delivery_mode=2, headers=dict(job_headers(media_type, lane, client))),
                ),
                self.timeout,
            )
        except FAILURES as exc:
            # The channel's confirm state is unknown now: start over on a new connection.
            if self.connection is conn:
                await self._drop()
            raise BackendUnavailable(self.name, str(exc) or type(exc).__name__) from exc
        conn.pool.put_nowait(channel)

    async def depth(self) -> int:
        """Jobs waiting, all kinds and lanes together."""
        conn = await self._connection()
        waiting = 0
        try:
            assert conn.control is not None
            async with conn.control_lock:
                for queue in (*self.lane_queues.values(), *self.light_queues.values()):
                    reply = await asyncio.wait_for(
                        conn.control.queue_declare(queue, durable=True, passive=True), self.timeout
                    )
                    waiting += int(reply["message_count"])
        except FAILURES as exc:
            if self.connection is conn:
                await self._drop()
            raise BackendUnavailable(self.name, str(exc) or type(exc).__name__) from exc
        return waiting

    async def close(self) -> None:
        self._closing = True
        await self._drop()
        if self.backlogs is not None:
            await self.backlogs.close()
