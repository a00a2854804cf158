"""The last byte is in: the upload becomes a media item exactly as POST /images makes one.

Its bytes run, in order, through the same chain a POST's body does (server/uploads/intake.py:
the declared type against the magic bytes, the size limit, the SHA-256) into the item's upload,
then the same record, job and idempotent answer (server/uploads/handler.py, idempotency.py).
The upload's own bytes are then removed and its record names the item's media_id.

An upload whose content is refused (its bytes are not the declared type, ...) is removed with
its bytes: the client's answer says why, and sending it again cannot help. A backend outage
keeps it whole: a PATCH at its full length with an empty body tries the finish again.
"""

from __future__ import annotations

import contextlib

from aiohttp import hdrs, web

from thumbnailify import media, state
from thumbnailify.clients import Client
from thumbnailify.media import new_media_id
from thumbnailify.server.http.errors import ApiError, BackendUnavailable
from thumbnailify.server.resources import Resources
from thumbnailify.server.resumable.record import Upload
from thumbnailify.server.uploads import idempotency
from thumbnailify.server.uploads.handler import Kept, persist
from thumbnailify.server.uploads.intake import Intake, Received, take_in
from thumbnailify.server.uploads.webhook_url import checked_callback

ENCODING = "tus"  # in the idempotency fingerprint, as `base64`, `binary` or `multipart` are


async def finish(res: Resources, upload: Upload, client: Client) -> str:
    """The item's media_id (an earlier one's, for a replayed idempotency key), `client`'s."""
    try:
        media_id = await _make_item(res, upload, client)
    except BackendUnavailable:
        raise
    except ApiError as exc:
        if exc.status != 409:  # a 409 is an idempotency key still in use: try again later
            await drop(res, upload.upload_id)
        raise
    await res.store.update_upload(upload.upload_id, upload.length, {"media_id": media_id})
    with contextlib.suppress(ApiError):  # else the expiry sweep removes them
        await res.files.partial(upload.upload_id).remove()
    return media_id


async def drop(res: Resources, upload_id: str) -> None:
    """The upload and its bytes, gone."""
    await res.files.partial(upload_id).remove()
    await res.store.delete_upload(upload_id)


async def _make_item(res: Resources, upload: Upload, client: Client) -> str:
    declared = media.ACCEPTED[upload.filetype]
    media_id = new_media_id()
    sink = res.files.upload(media_id)
    intake = Intake(sink, declared, res.settings.limits.max_resumable_bytes)
    received = await take_in(res.files.partial(upload.upload_id).read(upload.length), intake)
    try:
        return await _record(res, upload, Kept(media_id, declared, upload.filename or None, received, sink), client)
    except BaseException:
        await sink.discard()
        raise


async def _record(res: Resources, upload: Upload, kept: Kept, client: Client) -> str:
    """Record and job (or the earlier answer to the same idempotency key)."""
    key = idempotency.scoped_key(client.name, upload.idempotency_key) if upload.idempotency_key else None
    marker = idempotency.new_marker()
    prior = await idempotency.begin(res, key, marker) if key else None
    try:
        callback = await checked_callback(upload.callback_url or None, res.settings.webhooks)
        fingerprint = _fingerprint(kept.declared, kept.received, kept.filename, callback)
        if prior is not None:
            idempotency.replay(prior, fingerprint)  # 422 when the key was used for other content
            await kept.sink.discard()
            return str(prior.body["media_id"])
        records = await persist(res, [kept], callback, client)
    except BaseException:
        if key and prior is None:
            with contextlib.suppress(ApiError):
                await idempotency.release(res, key, marker)
        raise
    res.metrics.accepted(client.name, [kept.received.size])
    if key:
        body = state.status_body(kept.media_id, records[0])
        answer = web.json_response(body, status=202, headers={hdrs.LOCATION: f"/images/{kept.media_id}"})
        await idempotency.finish(res, key, fingerprint, answer, body)
    return kept.media_id


def _fingerprint(declared: media.MediaType, received: Received, filename: str | None, callback: str | None) -> str:
    return idempotency.fingerprint(ENCODING, [(declared.name, received.sha256, filename)], callback)
