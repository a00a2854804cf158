"""Every request the API takes, built as plain data: a method, a path, its query, headers and body.

One place knows the routes, parameters and headers; `client.session` sends these calls with
requests, and `stress/locustfile.py` sends the same ones with locust's own HTTP client.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlencode

TERMINAL = frozenset({"Completed", "Error"})
STATES = ("Processing", "Completed", "Error")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class Rewindable(Protocol):
    """A body that can be sent again from its start (a file), as a retry does."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


Body = bytes | Readable | None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    name: str  # the route with placeholders, to group statistics by
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None

    @property
    def target(self) -> str:
        """Path and query, as they go on the request line."""
        return f"{self.path}?{urlencode(self.params)}" if self.params else self.path


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _media(media_id: str) -> str:
    return f"/images/{quote(media_id, safe='')}"


def upload(
    body: bytes | Readable, media_type: str, *, idempotency_key: str | None, binary: bool = True,
    callback_url: str | None = None, filename: str | None = None,
) -> Call:
    """POST /images with one file: raw bytes (`?encoding=binary`) or, with binary=False, base64;
    `filename` is kept with the item, for people to recognise it.

    The same idempotency key on a retry gets the first answer instead of a second upload.
    """
    params = {"encoding": "binary"} if binary else {}
    if callback_url:
        params["callback_url"] = callback_url
    if filename:
        params["filename"] = filename
    if not binary:
        raw = body if isinstance(body, bytes) else body.read()
        body = base64.b64encode(raw)
    headers = {"Content-Type": media_type}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return Call("POST", "/images", "/images", params, headers, body)


def status(media_id: str) -> Call:
    return Call("GET", _media(media_id), "/images/[id]")


def events(media_id: str | None = None) -> Call:
    """One media's status as server-sent events until it is terminal; every media's without an id."""
    path, name = (f"{_media(media_id)}/events", "/images/[id]/events") if media_id else ("/events", "/events")
    return Call("GET", path, name, headers={"Accept": "text/event-stream"})


def thumbnail(media_id: str, size: str | None = None) -> Call:
    params = {"encoding": "binary"} | ({"size": size} if size else {})
    return Call("GET", f"{_media(media_id)}/thumbnail", "/images/[id]/thumbnail", params)


def delete(media_id: str) -> Call:
    return Call("DELETE", _media(media_id), "/images/[id]")


def listing(limit: int | None = None, cursor: str | None = None, state: str | None = None, *,
            sha256: str | None = None, filename: str | None = None) -> Call:
    """A page of the list, newest first; `sha256` keeps exact copies of a file, `filename` the
    items whose name contains that text."""
    given = {"limit": str(limit) if limit else None, "cursor": cursor, "state": state, "sha256": sha256,
             "filename": filename}
    return Call("GET", "/images", "/images", {name: value for name, value in given.items() if value})


def usage() -> Call:
    """GET /usage: the calling client's items and bytes, and its quotas."""
    return Call("GET", "/usage", "/usage")


# -- the admin API (/admin/keys, with auth.admin_key) ---------------------------------------------
ADMIN_KEYS = "/admin/keys"
JSON = {"Content-Type": "application/json"}


def _client(name: str) -> str:
    return f"{ADMIN_KEYS}/{quote(name, safe='')}"


def create_key(name: str, *, quota_bytes: int = 0, quota_items: int = 0, rate: float = 0.0,
               priority: str = "normal") -> Call:
    """POST /admin/keys: a new client; its key is in the answer, once."""
    body = {"name": name, "quota_bytes": quota_bytes, "quota_items": quota_items, "rate": rate, "priority": priority}
    return Call("POST", ADMIN_KEYS, ADMIN_KEYS, headers=dict(JSON), body=json.dumps(body).encode())


def list_keys() -> Call:
    return Call("GET", ADMIN_KEYS, ADMIN_KEYS)


def revoke_key(name: str) -> Call:
    return Call("POST", f"{_client(name)}/revoke", f"{ADMIN_KEYS}/[name]/revoke")


def rotate_key(name: str, grace_seconds: float | None = None) -> Call:
    body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
    return Call("POST", f"{_client(name)}/rotate", f"{ADMIN_KEYS}/[name]/rotate", headers=dict(JSON),
                body=json.dumps(body).encode())


def similar(media_id: str, distance: int | None = None, limit: int | None = None, cursor: str | None = None) -> Call:
    """A page of the items near `media_id` by perceptual hash (within `distance` bits), nearest first."""
    given = {"similar_to": media_id, "distance": None if distance is None else str(distance),
             "limit": str(limit) if limit else None, "cursor": cursor}
    return Call("GET", "/images", "/images", {name: value for name, value in given.items() if value is not None})


def health() -> Call:
    """GET /health: the process is up; its body names the thumbnail sizes the server makes."""
    return Call("GET", "/health", "/health")


# -- resumable uploads (tus 1.0 at /uploads/) --------------------------------------------------------
TUS = {"Tus-Resumable": "1.0.0"}
UPLOADS = "/uploads/"


def _tus_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in values.items())


def tus_create(length: int, media_type: str, filename: str, *, idempotency_key: str) -> Call:
    """POST /uploads/: a resumable upload of `length` bytes; its URL comes back in Location. The
    idempotency key travels in the metadata, as the header does on POST /images."""
    metadata = {"filename": filename, "filetype": media_type, "idempotency_key": idempotency_key}
    headers = TUS | {"Upload-Length": str(length), "Upload-Metadata": _tus_metadata(metadata)}
    return Call("POST", UPLOADS, UPLOADS, headers=headers)


def tus_offset(path: str) -> Call:
    """HEAD: how many bytes the server has (Upload-Offset) of the upload at `path`."""
    return Call("HEAD", path, "/uploads/[id]", headers=dict(TUS))


def tus_append(path: str, offset: int, body: bytes) -> Call:
    """PATCH: these bytes at this offset; the one with the last byte answers Thumbnailify-Media-Id."""
    headers = TUS | {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    return Call("PATCH", path, "/uploads/[id]", headers=headers, body=body)


def tus_upload(path: str) -> Call:
    """GET: the upload as JSON, its media_id once finished."""
    return Call("GET", path, "/uploads/[id]", headers=dict(TUS))
