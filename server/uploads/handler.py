"""POST /images: an upload in any form, through the upload chain, to records and queued jobs.

Order, for every form: the headers judged (answers instead of "100 Continue") → the
Idempotency-Key reserved → each file through the chain into the files backend → the callback
checked → a record per file (Processing) → a job per file, confirmed by the queue → 202. All or
nothing: if any file or step fails, nothing of any file is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import ClientPayloadError, hdrs, web

from thumbnailify import media, state
from thumbnailify.clients import Client, QuotaExceeded
from thumbnailify.media import new_media_id
from thumbnailify.record import MediaRecord
from thumbnailify.server import limits as client_limits
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.http.middleware import CONTINUED, LOG_EXTRA
from thumbnailify.server.resources import Resources, resources
from thumbnailify.server.uploads import idempotency
from thumbnailify.server.uploads.bodies import BodyTimeout, BodyTooLarge, InvalidBase64, ReadLimits
from thumbnailify.server.uploads.forms import UploadForm, upload_form
from thumbnailify.server.uploads.intake import Discard, Intake, Received, Sink, take_in
from thumbnailify.server.uploads.rollback import roll_back
from thumbnailify.server.uploads.webhook_url import checked_callback


@dataclass
class Kept:
    media_id: str
    declared: media.MediaType
    filename: str | None
    received: Received
    sink: Sink


async def defer_continue(request: web.Request) -> None:
    """aiohttp would answer "100 Continue" before any check; create_image does, after them."""


async def _send_continue(request: web.Request) -> None:
    if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue" and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        request[CONTINUED] = True


@contextlib.contextmanager
def _client_faults(filename: str | None) -> Iterator[None]:
    """What a client got wrong in its body, as the 4xx that says so (naming a multipart file)."""
    where = f"{filename}: " if filename else ""
    try:
        yield
    except InvalidBase64 as exc:
        raise ApiError(400, f"{where}the body is not valid base64: {exc}") from exc
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from exc
    except BodyTimeout as exc:
        raise ApiError(408, str(exc)) from exc
    except (ClientPayloadError, ConnectionResetError, asyncio.IncompleteReadError) as exc:
        raise ApiError(400, f"the upload was cut off: {exc}") from exc
    except ApiError as exc:
        if where and not exc.message.startswith(where):
            raise ApiError(exc.status, where + exc.message, exc.headers) from exc
        raise


async def _receive(form: UploadForm, res: Resources, limits: ReadLimits, replay: bool) -> list[Kept]:
    kept: list[Kept] = []
    try:
        with _client_faults(None):
            async for incoming in form.files(limits):
                media_id = new_media_id()
                sink: Sink = Discard() if replay else res.files.upload(media_id)
                with _client_faults(incoming.filename if form.many else None):  # names one file of several
                    intake = Intake(sink, incoming.declared, res.settings.limits.max_upload_bytes)
                    received = await take_in(incoming.chunks, intake)
                kept.append(Kept(media_id, incoming.declared, incoming.filename, received, sink))
    except BaseException:
        for item in kept:
            await item.sink.discard()
        raise
    return kept


async def persist(res: Resources, kept: list[Kept], callback_url: str | None, client: Client) -> list[MediaRecord]:
    """A record per file, `client`'s (413 past its quota), then a job per file; on any failure no
    record stays."""
    moment = state.now()
    records = [state.accepted(item.declared.name, moment, item.received.sha256, callback_url,
                              filename=item.filename, size=item.received.size, owner=client.name,
                              lane=client.priority) for item in kept]
    created: list[str] = []
    bound = client_limits.quota(client)
    try:
        for index, (item, record) in enumerate(zip(kept, records, strict=True)):
            # Counted before the write: one that timed out may still have been applied.
            created.append(item.media_id)
            # A microsecond apart: newest first lists a batch's last file first, in part order.
            try:
                await res.store.create(item.media_id, record, moment.timestamp() + index * 1e-6, bound)
            except QuotaExceeded as exc:
                res.metrics.refused(client.name, "quota")
                raise client_limits.over_quota(client, exc) from exc
        await asyncio.gather(*(res.publisher.publish(item.media_id, item.declared.name, client.priority, client.name)
                               for item in kept))
    except BaseException:
        await roll_back(res, created)
        raise
    return records


Body = dict[str, object]


def _answer(form: UploadForm, kept: list[Kept], records: list[MediaRecord]) -> tuple[web.Response, Body]:
    bodies = [state.status_body(item.media_id, record) for item, record in zip(kept, records, strict=True)]
    if form.many:
        body: Body = {"items": [b | {"filename": item.filename} for b, item in zip(bodies, kept, strict=True)]}
        return web.json_response(body, status=202), body
    headers = {hdrs.LOCATION: f"/images/{kept[0].media_id}"}
    return web.json_response(bodies[0], status=202, headers=headers), bodies[0]


async def create_image(request: web.Request) -> web.Response:
    res = resources(request)
    conf = res.settings.limits
    form = upload_form(request, conf)
    if not form.many:
        await checked_callback(form.callback_url, res.settings.webhooks)  # before the body is read
    client = caller(request)
    await client_limits.admit(request)
    key = idempotency.storage_key(request, client.name)
    marker = idempotency.new_marker() if key else ""  # only a keyed request reserves anything
    prior = await idempotency.begin(res, key, marker) if key else None
    try:
        if prior is None:  # a replay is answered whatever the quota says now: its upload was taken
            await client_limits.check_room(request)
        limits = ReadLimits(form.wire_limit, conf.upload_idle_timeout,
                            asyncio.get_running_loop().time() + conf.upload_timeout)
        async with res.upload_slots.slot(conf.upload_timeout):  # the wait counts against the whole upload's time
            await _send_continue(request)
            kept = await _receive(form, res, limits, replay=prior is not None)
        files = [(item.declared.name, item.received.sha256, item.filename) for item in kept]
        fingerprint = idempotency.fingerprint(form.encoding, files, form.callback_url)
        if prior is not None:
            return idempotency.replay(prior, fingerprint)
        try:
            records = await persist(res, kept, await checked_callback(form.callback_url, res.settings.webhooks), client)
        except BaseException:
            for item in kept:
                await item.sink.discard()
            raise
    except BaseException:
        if key and prior is None:
            with contextlib.suppress(ApiError):
                await idempotency.release(res, key, marker)
        raise
    response, body = _answer(form, kept, records)
    if key:
        await idempotency.finish(res, key, fingerprint, response, body)
    res.metrics.accepted(client.name, [item.received.size for item in kept])
    request[LOG_EXTRA] = {"media_id": ",".join(item.media_id for item in kept),
                          "bytes": sum(item.received.size for item in kept)}
    return response
