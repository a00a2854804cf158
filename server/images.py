"""HTTP handlers for /images: report state, list, serve and delete thumbnails (uploads: server/uploads/handler.py)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping

from aiohttp import hdrs, web
from aiohttp.helpers import ETAG_ANY

from thumbnailify import media, state
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.media import is_media_id
from thumbnailify.record import MediaRecord, State, UnreadableRecord
from thumbnailify.server import similar
from thumbnailify.server.backends import Page
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.http.middleware import LOG_EXTRA
from thumbnailify.server.resources import Resources, resources

DEFAULT_PAGE = 50
MAX_PAGE = 1000
# A media_id's thumbnail never changes. Behind an API key no shared cache may keep it: it would
# hand it to anyone, and a DELETE could never evict it.
PUBLIC_THUMBNAIL = "public, max-age=31536000, immutable"
PRIVATE_THUMBNAIL = "private, max-age=31536000, immutable"


def path_media_id(request: web.Request) -> str:
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise ApiError(404, "no such media")
    return media_id


async def existing_record(request: web.Request, media_id: str) -> MediaRecord:
    """The caller's record of that id: another client's is as unknown as one that does not exist."""
    record = await resources(request).store.get(media_id)
    if record is None or record.client != caller(request).name:
        raise ApiError(404, "no such media")
    return record


async def get_image(request: web.Request) -> web.Response:
    media_id = path_media_id(request)
    record = await existing_record(request, media_id)
    return web.json_response(state.status_body(media_id, record), status=state.http_status(record))


def etag_matches(request: web.Request, tag: str) -> bool:
    """If-None-Match names this ETag (weakly compared, as RFC 9110 says for it) or is "*"."""
    return any(given.value in (tag, ETAG_ANY) for given in request.if_none_match or ())


async def get_thumbnail(request: web.Request) -> web.Response:
    res = resources(request)
    media_id = path_media_id(request)
    encoding = request.query.get("encoding", "base64")
    if encoding not in ("base64", "binary"):
        raise ApiError(400, "encoding must be 'base64' or 'binary'")
    record = await existing_record(request, media_id)
    if record.state != State.COMPLETED:
        raise ApiError(409, f"no thumbnail: the media is {record.state}")
    sizes = list(record.sizes)
    if not sizes:
        raise ApiError(409, "no thumbnail: the record names no thumbnail size")
    size = request.query.get("size", sizes[0])
    if size not in sizes:
        raise ApiError(400, f"no size {size!r}; this media has " + ", ".join(sizes))
    thumb_type = media.BY_NAME.get(record.thumbnail_types.get(size, ""))
    if thumb_type is None:
        raise ApiError(409, "no thumbnail: the record names no thumbnail type")
    tag = f"{media_id}-{size}"
    cache = {
        hdrs.ETAG: f'"{tag}"',
        hdrs.CACHE_CONTROL: PRIVATE_THUMBNAIL if res.settings.auth.enabled else PUBLIC_THUMBNAIL,
    }
    if encoding == "binary" and etag_matches(request, tag):
        return web.Response(status=304, headers=cache)
    data = await res.files.read_thumbnail(media_id, thumb_type, size if record.named_sizes else None)
    if data is None:
        raise ApiError(404, "no such media")
    if encoding == "binary":
        return web.Response(body=data, content_type=thumb_type.name, headers=cache)
    return web.Response(body=base64.b64encode(data), content_type=thumb_type.name)


async def delete_image(request: web.Request) -> web.Response:
    res = resources(request)
    media_id = path_media_id(request)
    try:
        owner = (record.client if (record := await res.store.get(media_id)) else None)
    except UnreadableRecord:
        owner = DEFAULT_CLIENT  # whose it is cannot be read: the operator's to clean up
    if owner is not None and owner != caller(request).name:
        raise ApiError(404, "no such media")  # and nothing of it touched
    # State first: a worker that finishes later finds no record and removes its own thumbnail.
    deleted = await res.store.delete(media_id)
    # Files go even when the record is already gone, so a DELETE that met a files outage (503)
    # is finished by its retry instead of leaving them behind.
    await res.files.remove(media_id)
    if not deleted:
        raise ApiError(404, "no such media")
    request[LOG_EXTRA] = {"media_id": media_id}
    return web.Response(status=204)


def _encode_cursor(score: float, media_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([score, media_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        score, media_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(media_id, str) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError("wrong shape")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "cursor is not one this server handed out") from exc
    return float(score), media_id


SCAN_BATCH = 500  # records read at a time when a filter the store has no index for is given
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _record_filter(query: Mapping[str, str]) -> Callable[[MediaRecord], bool] | None:
    """What `?filename=` (part of the name, any case) and `?sha256=` (exact) keep, if given."""
    digest = query.get("sha256")
    if digest is not None and not SHA256_HEX.fullmatch(digest.lower()):
        raise ApiError(400, "sha256 must be 64 hexadecimal digits")
    name = query.get("filename", "").casefold()
    if digest is None and not name:
        return None
    wanted = digest.lower() if digest is not None else None
    return lambda record: ((wanted is None or record.sha256 == wanted)
                           and name in (record.filename or "").casefold())


async def _matching(res: Resources, limit: int, after: tuple[float, str] | None, wanted: State | None, *,
                    owner: str, keep: Callable[[MediaRecord], bool]) -> Page:
    """Up to `limit` rows that `keep` accepts, newest first, reading the store a batch at a time:
    neither backend indexes names, so a search walks the list (fine for a person's library)."""
    rows: Page = []
    while len(rows) < limit:
        batch = await res.store.page(SCAN_BATCH, after, wanted, owner)
        rows += [row for row in batch if keep(row[2])]
        if len(batch) < SCAN_BATCH:
            break
        after = (batch[-1][1], batch[-1][0])
    return rows[:limit]


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
    if wanted is not None and wanted not in tuple(State):
        raise ApiError(400, "state must be one of " + ", ".join(State))
    after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
    if "distance" in query and "similar_to" not in query:
        raise ApiError(400, "distance goes with similar_to=<media_id>")
    owner = caller(request).name
    if "similar_to" in query:
        origin, distance = similar.target(query), similar.wanted_distance(query)
        rows = await similar.similar_page(res.store, origin, distance, limit + 1, after, owner=owner)
    else:
        in_state = None if wanted is None else State(wanted)
        keep = _record_filter(query)
        if keep is None:
            rows = await res.store.page(limit + 1, after, in_state, owner)
        else:
            rows = await _matching(res, limit + 1, after, in_state, owner=owner, keep=keep)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [state.status_body(media_id, record) for media_id, _, record in rows]
    if "similar_to" in query:
        for item, (_, apart, _) in zip(items, rows, strict=True):
            item["distance"] = int(apart)
    cursor = _encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
    return web.json_response({"items": items, "next": cursor})
