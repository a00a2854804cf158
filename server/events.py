"""Live status as server-sent events: GET /images/{id}/events and GET /events (see server/hub.py)."""

from __future__ import annotations

import contextlib
import json

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from common import state
from server.images import existing_record, path_media_id
from server.resources import resources

KEEPALIVE_SECONDS = 15.0  # a comment line on idle streams, so proxies keep them open


async def _send_status(stream: EventSourceResponse, media_id: str, record: dict[str, str]) -> None:
    await stream.send(json.dumps(state.status_body(media_id, record)), event="status")


async def media_events(request: web.Request) -> web.StreamResponse:
    """The media's current status first, then each change, until a terminal state or a delete."""
    res = resources(request)
    media_id = path_media_id(request)
    with res.events.subscribe(media_id) as subscription:
        record = await existing_record(res, media_id)  # after subscribing: no change can fall in between
        # A client closing its stream is how most streams end, not an error.
        async with sse_response(request, ping_interval=KEEPALIVE_SECONDS) as stream:
            with contextlib.suppress(ConnectionResetError):
                await _send_status(stream, media_id, record)
                while not state.is_terminal(record):
                    change = await subscription.next()
                    if change is None:
                        break
                    _, changed = change
                    if changed is None:
                        await stream.send(json.dumps({"media_id": media_id}), event="deleted")
                        break
                    if changed.get("history") != record.get("history"):  # not the one already sent
                        record = changed
                        await _send_status(stream, media_id, record)
    return stream


async def all_events(request: web.Request) -> web.StreamResponse:
    """Every change of every media, as it happens (no snapshot: GET /images lists what is there)."""
    res = resources(request)
    with res.events.subscribe() as subscription:
        async with sse_response(request, ping_interval=KEEPALIVE_SECONDS) as stream:
            with contextlib.suppress(ConnectionResetError):
                while (change := await subscription.next()) is not None:
                    media_id, record = change
                    if record is None:
                        await stream.send(json.dumps({"media_id": media_id}), event="deleted")
                    else:
                        await _send_status(stream, media_id, record)
    return stream


def add_routes(app: web.Application) -> None:
    app.router.add_get("/images/{media_id}/events", media_events)
    app.router.add_get("/events", all_events)
