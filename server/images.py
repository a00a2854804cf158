"""HTTP handlers for /images: accept an upload, report state, serve and delete thumbnails."""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import ClientPayloadError, hdrs, web

from common import media, state
from common.volume import is_media_id, new_media_id
from server.errors import ApiError
from server.files import Upload
from server.middleware import LOG_EXTRA
from server.resources import Resources, resources
from server.upload import Base64Decoder, InvalidBase64, TooLarge

CHUNK_BYTES = 256 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 1000
THUMBNAIL_CACHE = "public, max-age=31536000, immutable"  # a media_id's thumbnail never changes


def _media_id(request: web.Request) -> str:
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise ApiError(404, "no such media")
    return media_id


async def _record(res: Resources, media_id: str) -> dict[str, str]:
    record = await res.store.get(media_id)
    if record is None:
        raise ApiError(404, "no such media")
    return record


async def _receive(
    request: web.Request, res: Resources, media_id: str, declared: media.MediaType
) -> tuple[Upload, int]:
    """Decode the body into the volume; check its magic bytes before keeping anything."""
    decoder = Base64Decoder(res.settings.limits.max_upload_bytes)
    upload = res.files.upload(media_id)
    head = b""
    try:
        try:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                decoded = decoder.feed(chunk)
                if len(head) < media.SNIFF_BYTES:
                    head += decoded[: media.SNIFF_BYTES]
                    if len(head) >= media.SNIFF_BYTES:
                        _check_magic(head, declared)
                if decoded:
                    await upload.write(decoded)
            decoder.finish()
        except InvalidBase64 as exc:
            raise ApiError(400, f"the body is not valid base64: {exc}") from exc
        except (ClientPayloadError, ConnectionResetError) as exc:
            raise ApiError(400, f"the upload was cut off: {exc}") from exc
        except TooLarge as exc:
            raise ApiError(413, str(exc)) from exc
        if decoder.size == 0:
            raise ApiError(400, "the body is empty; send the media as base64")
        _check_magic(head, declared)
        await upload.commit()
    except BaseException:
        await upload.discard()  # whatever went wrong, nothing of this upload stays
        raise
    return upload, decoder.size


def _check_magic(head: bytes, declared: media.MediaType) -> None:
    if not media.looks_like(head, declared):
        raise ApiError(
            415,
            f"the body is not {declared.name}: its first bytes look like {media.describe(head)}",
        )


async def create_image(request: web.Request) -> web.Response:
    res = resources(request)
    header = request.headers.get(hdrs.CONTENT_TYPE)
    if not header:
        raise ApiError(400, "missing Content-Type; send one of " + ", ".join(media.ACCEPTED))
    declared = media.parse_content_type(header)
    if declared is None:
        raise ApiError(415, f"unsupported Content-Type {header!r}; use one of " + ", ".join(media.ACCEPTED))
    media_id = new_media_id()
    upload, size = await _receive(request, res, media_id, declared)
    moment = state.now()
    record = state.accepted(declared.name, moment)
    try:
        await res.store.create(media_id, record, moment.timestamp())
    except BaseException:
        await upload.discard()
        raise
    try:
        await res.publisher.publish(media_id, declared.name)
    except BaseException:
        try:
            await res.store.delete(media_id)
        finally:
            await upload.discard()
        raise
    res.metrics.uploads.inc()
    request[LOG_EXTRA] = {"media_id": media_id, "media_type": declared.name, "bytes": size}
    return web.json_response(
        state.status_body(media_id, record),
        status=202,
        headers={hdrs.LOCATION: f"/images/{media_id}"},
    )


async def get_image(request: web.Request) -> web.Response:
    res = resources(request)
    media_id = _media_id(request)
    record = await _record(res, media_id)
    return web.json_response(state.status_body(media_id, record), status=state.http_status(record))


async def get_thumbnail(request: web.Request) -> web.Response:
    res = resources(request)
    media_id = _media_id(request)
    encoding = request.query.get("encoding", "base64")
    if encoding not in ("base64", "binary"):
        raise ApiError(400, "encoding must be 'base64' or 'binary'")
    record = await _record(res, media_id)
    if record.get("state") != state.State.COMPLETED:
        raise ApiError(409, f"no thumbnail: the media is {record.get('state', 'unknown')}")
    thumb_type = media.BY_NAME.get(record.get("thumbnail_type", ""))
    if thumb_type is None:
        raise ApiError(409, "no thumbnail: the record names no thumbnail type")
    sizes = list(state.thumbnail_sizes(record))
    size = request.query.get("size", sizes[0])
    if size not in sizes:
        raise ApiError(400, f"no size {size!r}; this media has " + ", ".join(sizes))
    etag = f'"{media_id}-{size}"'
    if encoding == "binary" and etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers={hdrs.ETAG: etag, hdrs.CACHE_CONTROL: THUMBNAIL_CACHE})
    data = await res.files.read_thumbnail(media_id, thumb_type, None if "sizes" not in record else size)
    if data is None:
        raise ApiError(404, "no such media")
    if encoding == "binary":
        return web.Response(
            body=data,
            content_type=thumb_type.name,
            headers={hdrs.ETAG: etag, hdrs.CACHE_CONTROL: THUMBNAIL_CACHE},
        )
    return web.Response(body=base64.b64encode(data), content_type=thumb_type.name)


async def delete_image(request: web.Request) -> web.Response:
    res = resources(request)
    media_id = _media_id(request)
    await _record(res, media_id)
    # State first: a worker that finishes later finds no record and removes its own thumbnail.
    if not await res.store.delete(media_id):
        raise ApiError(404, "no such media")
    await res.files.remove(media_id)
    request[LOG_EXTRA] = {"media_id": media_id}
    return web.Response(status=204)


def _encode_cursor(score: float, media_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([score, media_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        score, media_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(media_id, str) or not isinstance(score, (int, float)):
            raise ValueError("wrong shape")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "cursor is not one this server handed out") from exc
    return float(score), media_id


async def list_images(request: web.Request) -> web.Response:
    res = resources(request)
    query = request.query
    try:
        limit = int(query.get("limit", DEFAULT_PAGE))
    except ValueError as exc:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_PAGE}") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_PAGE}")
    wanted = query.get("state")
    if wanted is not None and wanted not in tuple(state.State):
        raise ApiError(400, "state must be one of " + ", ".join(state.State))
    after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
    rows = await res.store.page(limit + 1, after, wanted)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [state.status_body(media_id, record) for media_id, _, record in rows]
    cursor = _encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
    return web.json_response({"items": items, "next": cursor})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/images", create_image)
    app.router.add_get("/images", list_images)
    app.router.add_get("/images/{media_id}", get_image)
    app.router.add_delete("/images/{media_id}", delete_image)
    app.router.add_get("/images/{media_id}/thumbnail", get_thumbnail)
