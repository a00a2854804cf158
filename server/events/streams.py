"""Live status as server-sent events: GET /images/{id}/events and GET /events (see server/events/hub.py).

What a stream may cost is bounded: at most `server.max_event_streams` per process (more get a
503), each ends after `server.event_stream_seconds` (the page and the CLI reconnect and read again),
and a reader that takes an event slower than `server.event_send_timeout` is disconnected, so a
client that stopped reading holds neither a connection nor the buffers behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from thumbnailify import state
from thumbnailify.record import MediaRecord
from thumbnailify.server.events.hub import Subscription, TooManyStreams
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.http.protocol import on_connection_lost
from thumbnailify.server.images import existing_record, path_media_id
from thumbnailify.server.resources import Resources, resources

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0  # a comment line on idle streams, so proxies keep them open
RETRY_AFTER_SECONDS = 10  # streams are long: a slot frees up more slowly than a backend recovers
# An event stream's kernel send buffer. Events are small, so this is ample for a reader that keeps
# up; left to the kernel's tuning (up to net.ipv4.tcp_wmem's 4 MB) one stalled reader would hold
# megabytes, and take that many changes before its writes block and it is noticed.
SEND_BUFFER_BYTES = 32 * 1024

Body = Callable[[EventSourceResponse], Awaitable[None]]


def stream_limit(configured: int) -> int:
    """The streams one process keeps open: `configured`, but at most half its open files limit,
    so uploads, reads and the backends' connections always have descriptors left."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or configured <= soft // 2:
        return configured
    log.warning("server.max_event_streams %d lowered to %d: half the open files limit", configured, soft // 2)
    return soft // 2


@contextlib.asynccontextmanager
async def _subscribed(request: web.Request, res: Resources, media_id: str | None = None) -> AsyncIterator[Subscription]:
    """A subscription, ended as soon as the client goes away: a closed stream frees its place at
    once, not at its next keep-alive."""
    try:
        async with res.events.subscribe(media_id) as subscription:

            def lost(reason: BaseException | None) -> None:
                # TimeoutError: the kernel gave up on data unacknowledged for event_send_timeout
                subscription.end(fell_behind=isinstance(reason, TimeoutError))

            with on_connection_lost(request, lost):
                yield subscription
    except TooManyStreams as exc:
        res.metrics.event_streams_refused.inc()
        log.warning("event stream refused: %s (server.max_event_streams)", exc)
        raise ApiError(503, "too many event streams open on this server, try again later",
                       {"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc


async def _stream(request: web.Request, res: Resources, subscription: Subscription, body: Body) -> EventSourceResponse:
    """Run `body` on an event stream for at most the stream's lifetime, then end it."""
    conf = res.settings.server
    send_timed_out = False
    # aiohttp_sse aborts the connection when one write exceeds send_timeout (and asks the kernel
    # to do the same for data left unacknowledged that long).
    async with sse_response(request, ping_interval=KEEPALIVE_SECONDS, send_timeout=conf.event_send_timeout) as stream:
        _bound_send_buffer(request)
        try:
            async with asyncio.timeout(conf.event_stream_seconds) as lifetime:
                await body(stream)
        except ConnectionError:
            pass  # a client closing its stream is how most end (the kernel dropping a stalled one is counted below)
        except TimeoutError:
            send_timed_out = not lifetime.expired()  # then the connection is gone already
    if send_timed_out or subscription.fell_behind:
        res.metrics.event_streams_cut.inc()
        log.info("event stream ended: its reader fell behind", extra={"path": request.path})
    await _finish(request, stream, conf.event_send_timeout)
    return stream


def _bound_send_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):  # a connection already gone
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


async def _finish(request: web.Request, stream: EventSourceResponse, seconds: float) -> None:
    """End the stream, unless its reader does not take even that: then drop the connection."""
    try:
        async with asyncio.timeout(seconds):
            await stream.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass


async def _send_status(stream: EventSourceResponse, media_id: str, record: MediaRecord) -> None:
    await stream.send(json.dumps(state.status_body(media_id, record)), event="status")


async def media_events(request: web.Request) -> web.StreamResponse:
    """The media's current status first, then each change, until a terminal state or a delete."""
    res = resources(request)
    media_id = path_media_id(request)
    async with _subscribed(request, res, media_id) as subscription:
        record = await existing_record(request, media_id)  # after subscribing: no change can fall in between

        async def body(stream: EventSourceResponse) -> None:
            current = record
            await _send_status(stream, media_id, current)
            while not state.is_terminal(current):
                change = await subscription.next()
                if change is None:
                    return
                changed = change.record
                if changed is None:
                    await stream.send(json.dumps({"media_id": media_id}), event="deleted")
                    return
                if changed.history != current.history:  # not the one already sent
                    current = changed
                    await _send_status(stream, media_id, current)

        return await _stream(request, res, subscription, body)


async def all_events(request: web.Request) -> web.StreamResponse:
    """Every change of every media of the caller's, as it happens (no snapshot: GET /images lists
    what is there)."""
    res = resources(request)
    mine = caller(request).name
    async with _subscribed(request, res) as subscription:

        async def body(stream: EventSourceResponse) -> None:
            while (change := await subscription.next()) is not None:
                media_id, record, owner = change
                if owner != mine:
                    continue
                if record is None:
                    await stream.send(json.dumps({"media_id": media_id}), event="deleted")
                else:
                    await _send_status(stream, media_id, record)

        return await _stream(request, res, subscription, body)
