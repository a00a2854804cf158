"""The tus endpoints: OPTIONS, POST (create), HEAD, PATCH, DELETE, and GET for the outcome.

Why by hand: the one aiohttp tus server on PyPI (aiohttp-tus, last release 1.1.0 in January 2022)
keeps uploads in one process's directory; ours keeps offsets and locks in the state store and
bytes in the files backend (volume or bucket), so any server process takes any PATCH.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import hdrs, web

from thumbnailify import media, state
from thumbnailify.media import new_media_id
from thumbnailify.record import iso
from thumbnailify.server import limits
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.http.middleware import LOG_EXTRA
from thumbnailify.server.resources import Resources, resources
from thumbnailify.server.resumable import protocol
from thumbnailify.server.resumable.finish import drop, finish
from thumbnailify.server.resumable.protocol import (
    MEDIA_ID_HEADER,
    OFFSET_TYPE,
    RESUMABLE,
    UPLOAD_EXPIRES,
    UPLOAD_LENGTH,
    UPLOAD_METADATA,
    UPLOAD_OFFSET,
    VERSION,
    refuse,
)
from thumbnailify.server.resumable.receive import Lease, append
from thumbnailify.server.resumable.record import Upload, find
from thumbnailify.server.uploads import idempotency
from thumbnailify.server.uploads.forms import MAX_FILENAME, not_accepted
from thumbnailify.server.uploads.intake import too_large
from thumbnailify.server.uploads.webhook_url import checked_callback
from thumbnailify.upload_bounds import Full, UploadBounds

FULL_RETRY_AFTER = "60"  # seconds: uploads in flight finish, or a client deletes some
PATH = "/uploads/"
R = TypeVar("R", bound=web.StreamResponse)


def speaks_tus(handler: Callable[[web.Request], Awaitable[R]]) -> Callable[[web.Request], Awaitable[R]]:
    """Every answer, errors included, carries Tus-Resumable (tus clients look for it)."""
    @functools.wraps(handler)
    async def answer(request: web.Request) -> R:
        try:
            return await handler(request)
        except ApiError as exc:
            exc.headers.setdefault(RESUMABLE, VERSION)
            raise

    return answer


def _headers(upload: Upload, media_id: str = "") -> dict[str, str]:
    headers = {RESUMABLE: VERSION, UPLOAD_OFFSET: str(upload.offset), UPLOAD_LENGTH: str(upload.length),
               hdrs.CACHE_CONTROL: "no-store"}
    if media_id or upload.media_id:
        headers[MEDIA_ID_HEADER] = media_id or upload.media_id
    else:
        headers[UPLOAD_EXPIRES] = protocol.http_date(upload.expires)
    return headers


@speaks_tus
async def options(request: web.Request) -> web.Response:
    max_size = resources(request).settings.limits.max_resumable_bytes
    return web.Response(status=204, headers={
        RESUMABLE: VERSION, "Tus-Version": VERSION, "Tus-Extension": protocol.EXTENSIONS,
        "Tus-Max-Size": str(max_size), "Tus-Checksum-Algorithm": protocol.CHECKSUM_ALGORITHM,
    })


async def _new_upload(request: web.Request, res: Resources) -> Upload:
    """The upload the creation headers describe, checked as a POST's would be before its body."""
    for unsupported in ("Upload-Defer-Length", "Upload-Concat"):
        if unsupported in request.headers:
            raise refuse(400, f"{unsupported} is not supported here; send {UPLOAD_LENGTH}")
    length = protocol.number(request, UPLOAD_LENGTH)  # a malformed header is a 400 before the version's 412
    protocol.require_version(request)
    limit = res.settings.limits.max_resumable_bytes
    if length > limit:
        raise refuse(413, too_large(limit), {"Tus-Max-Size": str(limit)})
    if length == 0:
        raise refuse(400, f"{UPLOAD_LENGTH} is 0; send the media")
    raw_metadata = request.headers.get(UPLOAD_METADATA, "")
    meta = protocol.metadata(raw_metadata)
    declared = media.parse_content_type(meta.get("filetype"))
    if declared is None:  # the words a person sees on the page, as a POST's
        given = meta.get("filetype")
        raise refuse(415, not_accepted(given) if given else f"{UPLOAD_METADATA} names no filetype; send one of "
                     + ", ".join(media.ACCEPTED))
    filename = meta.get("filename", "")
    if len(filename) > MAX_FILENAME or not filename.isprintable():
        raise refuse(400, f"{UPLOAD_METADATA} filename must be at most {MAX_FILENAME} printable characters")
    callback = await checked_callback(meta.get("callback_url"), res.settings.webhooks)
    key = meta.get("idempotency_key", "")
    owner = caller(request).name
    if key:
        idempotency.scoped_key(owner, key)  # 400 now, not at the last byte
    hours = res.settings.uploads.resumable_hours
    return Upload(new_media_id(), length, 0, declared.name, filename, raw_metadata, callback or "", key,
                  iso(state.now()), time.time() + hours * 3600, "", owner)


def _full_message(full: Full, per_client: int) -> str:
    if full is Full.CLIENT:
        return (f"this client has {per_client} unfinished uploads, its limit: finish or delete some "
                f"(DELETE {PATH}<id>), or try again once they expire")
    return "the server holds as many unfinished uploads as it may (of all clients together); try again later"


@speaks_tus
async def create(request: web.Request) -> web.Response:
    """POST /uploads/: 201 with its Location; with a body (creation-with-upload), its first bytes."""
    res = resources(request)
    upload = await _new_upload(request, res)
    await limits.admit(request)
    await limits.check_room(request, upload.length)
    conf = res.settings.uploads
    full = await res.store.create_upload(upload.upload_id, upload.fields(), upload.expires,
                                         UploadBounds(conf.max_unfinished, conf.max_unfinished_per_client))
    if full is not None:
        raise refuse(503, _full_message(full, conf.max_unfinished_per_client), {hdrs.RETRY_AFTER: FULL_RETRY_AFTER})
    request[LOG_EXTRA] = {"upload_id": upload.upload_id}
    location = {hdrs.LOCATION: f"{PATH}{upload.upload_id}"}
    has_body = request.content_length or request.headers.get(hdrs.TRANSFER_ENCODING)
    if has_body and request.content_type == OFFSET_TYPE:
        response = await _patch(request, res, upload, offset=0)
        return web.Response(status=201, headers=dict(response.headers) | location)
    return web.Response(status=201, headers=_headers(upload) | location)


@speaks_tus
async def head(request: web.Request) -> web.Response:
    protocol.require_version(request)
    upload = await find(resources(request), request.match_info["upload_id"], caller(request).name)
    headers = _headers(upload)
    if upload.metadata:
        headers[UPLOAD_METADATA] = upload.metadata
    return web.Response(status=200, headers=headers)


@speaks_tus
async def patch(request: web.Request) -> web.Response:
    res = resources(request)
    offset = protocol.number(request, UPLOAD_OFFSET)  # a malformed header is a 400 before the version's 412
    protocol.require_version(request)
    upload = await find(res, request.match_info["upload_id"], caller(request).name)
    return await _patch(request, res, upload, offset)


def _check_body(request: web.Request, upload: Upload, offset: int) -> None:
    if request.content_type != OFFSET_TYPE:
        raise refuse(415, f"a PATCH body is Content-Type: {OFFSET_TYPE}")
    if request.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
        raise refuse(415, "Content-Encoding is not accepted on uploads; send the bytes as they are")
    if offset != upload.offset:
        raise refuse(409, f"{UPLOAD_OFFSET} is {offset} but the upload is at {upload.offset}",
                     {UPLOAD_OFFSET: str(upload.offset)})
    if request.content_length is not None and offset + request.content_length > upload.length:
        raise refuse(413, f"the PATCH goes past {UPLOAD_LENGTH} ({upload.length} bytes)")


async def _patch(request: web.Request, res: Resources, upload: Upload, offset: int) -> web.Response:
    expected = protocol.checksum(request.headers.get(protocol.UPLOAD_CHECKSUM))
    if upload.finished:
        if offset == upload.length and not request.content_length:
            return web.Response(status=204, headers=_headers(upload))
        raise refuse(409, "this upload is complete", _headers(upload))
    _check_body(request, upload, offset)
    lease = Lease(res, upload)
    await lease.take()
    try:
        upload = await find(res, upload.upload_id, upload.owner)  # as it is now that the lock is ours
        _check_body(request, upload, offset)
        conf = res.settings.limits
        # The finish runs the bytes through the upload chain again, into the item's upload: its
        # buffers count against limits.upload_memory as the PATCH's own did, in the same slot.
        async with res.upload_slots.slot(conf.upload_timeout):
            moved = Upload.of(upload.upload_id, upload.fields() | {"offset": str(await append(
                request, res, upload, lease, expected))})
            media_id = await finish(res, moved, caller(request)) if moved.offset == moved.length else ""
    finally:
        await lease.release()
    request[LOG_EXTRA] = {"upload_id": upload.upload_id, "bytes": moved.offset - offset} | (
        {"media_id": media_id} if media_id else {})
    return web.Response(status=204, headers=_headers(moved, media_id))


@speaks_tus
async def delete(request: web.Request) -> web.Response:
    """Termination: the upload and its bytes (a finished one's item stays: DELETE /images/ for that)."""
    res = resources(request)
    protocol.require_version(request)
    upload = await find(res, request.match_info["upload_id"], caller(request).name)
    lease = Lease(res, upload)
    await lease.take()
    try:
        await drop(res, upload.upload_id)
    finally:
        await lease.release()
    return web.Response(status=204, headers={RESUMABLE: VERSION})


@speaks_tus
async def get(request: web.Request) -> web.Response:
    """JSON for people and scripts: where the upload is, and its media_id once finished."""
    upload = await find(resources(request), request.match_info["upload_id"], caller(request).name, expired_too=True)
    upload_id = upload.upload_id
    body: dict[str, object] = {
        "upload_id": upload_id, "offset": upload.offset, "length": upload.length, "filename": upload.filename,
        "media_type": upload.filetype, "created_at": upload.created_at,
        "expires_at": iso(datetime.fromtimestamp(upload.expires, UTC)),
        "media_id": upload.media_id or None,
    }
    if upload.media_id:
        body["status"] = f"/images/{upload.media_id}"
    return web.json_response(body, headers={RESUMABLE: VERSION, hdrs.CACHE_CONTROL: "no-store"})


OVERRIDES = {"PATCH": patch, "DELETE": delete, "HEAD": head, "GET": get}


@speaks_tus
async def overridden(request: web.Request) -> web.StreamResponse:
    """POST /uploads/<id> with X-HTTP-Method-Override, for clients that can only send GET and POST."""
    method = request.headers.get(protocol.METHOD_OVERRIDE, "").strip().upper()
    handler = OVERRIDES.get(method)
    if handler is None:
        raise refuse(400, f"POST to an upload needs {protocol.METHOD_OVERRIDE}: one of {', '.join(OVERRIDES)}")
    return await handler(request)
