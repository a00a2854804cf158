"""Idempotency-Key on POST /images, as the IETF httpapi draft describes it.

The first request with a key reserves it (an in-flight marker of its own in the store, so a
concurrent duplicate gets 409); once it is answered 202, the answer is kept under the key for
`idempotency.ttl_seconds` with a fingerprint of what was uploaded. A retry with the same key and
the same content gets that answer again, with `Idempotent-Replayed: true`, and creates nothing;
the same key with other content is a 422. A request that fails frees its key (only its own
marker: a reservation that timed out may have been written all the same), so the client may
retry it for real. Keys are scoped to the client: two clients may use the same key.

The fingerprint is of the content, not the raw bytes: a multipart retry has a new boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass

from aiohttp import hdrs, web

from thumbnailify.server.http.errors import ApiError, BackendUnavailable
from thumbnailify.server.resources import Resources

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
PENDING = "pending"
MAX_LENGTH = 255
PENDING_MARGIN = 60.0  # seconds an in-flight marker outlives the longest upload


@dataclass(frozen=True)
class Prior:
    """What the first request with the key was answered."""

    fingerprint: str
    status: int
    body: dict[str, object]
    location: str | None


def storage_key(request: web.Request, client: str) -> str | None:
    """The key as stored (scoped to the client), or None when the request has none."""
    given = request.headers.get(HEADER)
    if given is None:
        return None
    return scoped_key(client, given)


def scoped_key(client: str, given: str) -> str:
    """A client's key as stored: scoped to the client, whichever way it sent it (a header, or a
    resumable upload's metadata); 400 unless it is 1 to 255 printable ASCII characters."""
    if not 1 <= len(given) <= MAX_LENGTH or not all(" " <= c <= "~" for c in given):
        raise ApiError(400, f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters")
    return hashlib.sha256(f"{client}\n{given}".encode()).hexdigest()


def new_marker() -> str:
    """What one request puts under its key while it is handled (saved answers are JSON objects)."""
    return f"{PENDING}:{uuid.uuid4().hex}"


async def begin(res: Resources, key: str, marker: str) -> Prior | None:
    """Reserve the key; None when this request is the first, else the answer to replay."""
    ttl = res.settings.limits.upload_timeout + PENDING_MARGIN
    try:
        found = await res.store.reserve_request(key, marker, ttl)
    except BackendUnavailable:
        with contextlib.suppress(BackendUnavailable):
            await release(res, key, marker)
        raise
    if found is None:
        return None
    if found.startswith(PENDING):
        raise ApiError(409, f"a request with this {HEADER} is still being handled; retry when it is answered")
    return Prior(**json.loads(found))


async def finish(res: Resources, key: str, fingerprint: str, response: web.Response, body: dict[str, object]) -> None:
    """Keep the answer for replays. The upload is done whatever happens here: if the store cannot
    keep it, the in-flight marker stays until it expires (a retry meanwhile is a 409, never a
    second upload)."""
    saved = Prior(fingerprint, response.status, body, response.headers.get(hdrs.LOCATION))
    try:
        await res.store.save_request(key, json.dumps(saved.__dict__), res.settings.idempotency.ttl_seconds)
    except BackendUnavailable as exc:
        log.warning("could not keep an idempotent answer: %s unavailable: %s", exc.backend, exc.detail)


async def release(res: Resources, key: str, marker: str) -> None:
    await res.store.release_request(key, marker)


def replay(prior: Prior, fingerprint: str) -> web.Response:
    if prior.fingerprint != fingerprint:
        raise ApiError(422, f"this {HEADER} was used with other content; use a new key for a new upload")
    headers = {REPLAYED: "true"} | ({hdrs.LOCATION: prior.location} if prior.location else {})
    return web.json_response(prior.body, status=prior.status, headers=headers)


def fingerprint(encoding: str, files: list[tuple[str, str, str | None]], callback_url: str | None) -> str:
    """Of (media type, sha256, filename) per file, the form and the callback: what the upload means."""
    return hashlib.sha256(json.dumps([encoding, files, callback_url]).encode()).hexdigest()
