"""tus 1.0 on the wire: its headers, and each one read strictly (a wrong one is a clear 4xx).

https://tus.io/protocols/resumable-upload: core protocol plus the creation,
creation-with-upload, termination, expiration and checksum (sha256) extensions.
"""

from __future__ import annotations

import base64
import binascii
import email.utils

from aiohttp import web

from thumbnailify.server.http.errors import ApiError

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUM_ALGORITHM = "sha256"
OFFSET_TYPE = "application/offset+octet-stream"
CHECKSUM_MISMATCH = 460  # tus's own status for a chunk whose Upload-Checksum does not match
MEDIA_ID_HEADER = "Thumbnailify-Media-Id"

RESUMABLE = "Tus-Resumable"
UPLOAD_LENGTH = "Upload-Length"
UPLOAD_OFFSET = "Upload-Offset"
UPLOAD_METADATA = "Upload-Metadata"
UPLOAD_EXPIRES = "Upload-Expires"
UPLOAD_CHECKSUM = "Upload-Checksum"
METHOD_OVERRIDE = "X-HTTP-Method-Override"
# What a browser's tus client sends and must be able to read (server/http/cors.py lists them).
REQUEST_HEADERS = (RESUMABLE, UPLOAD_LENGTH, UPLOAD_OFFSET, UPLOAD_METADATA, UPLOAD_CHECKSUM,
                   "Upload-Defer-Length", "Upload-Concat", METHOD_OVERRIDE, "X-Requested-With")
RESPONSE_HEADERS = (RESUMABLE, "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
                    UPLOAD_LENGTH, UPLOAD_OFFSET, UPLOAD_METADATA, UPLOAD_EXPIRES, MEDIA_ID_HEADER)

MAX_METADATA_BYTES = 4096  # the header as sent; a filename of 255 characters fits with room to spare
MAX_NUMBER_DIGITS = 19  # every length and offset fits a signed 64-bit integer


def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """An error answer that still speaks tus (clients look for Tus-Resumable on every answer)."""
    return ApiError(status, message, {RESUMABLE: VERSION} | (headers or {}))


def require_version(request: web.Request) -> None:
    """412 unless the client speaks the version we do (every request but OPTIONS must say so)."""
    given = request.headers.get(RESUMABLE)
    if given != VERSION:
        raise refuse(412, f"{RESUMABLE}: {VERSION} is the version this server speaks (got {given!r})",
                     {"Tus-Version": VERSION})


def number(request: web.Request, name: str) -> int:
    """A header holding a non-negative integer, required."""
    text = request.headers.get(name)
    if text is None:
        raise refuse(400, f"{name} is missing")
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_NUMBER_DIGITS:
        raise refuse(400, f"{name} must be a non-negative integer of at most {MAX_NUMBER_DIGITS} digits")
    return int(text)


def metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a value may be absent)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_BYTES:
        raise refuse(400, f"{UPLOAD_METADATA} is longer than {MAX_METADATA_BYTES} characters")
    found: dict[str, str] = {}
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key or not key.isascii() or not key.isprintable():
            raise refuse(400, f"{UPLOAD_METADATA} has an empty or non-ASCII key")
        if key in found:
            raise refuse(400, f"{UPLOAD_METADATA} names {key!r} twice")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise refuse(400, f"{UPLOAD_METADATA}: the value of {key!r} is not base64 of UTF-8 text") from exc
    return found


def checksum(header: str | None) -> bytes | None:
    """Upload-Checksum: `sha256 <base64 of the digest>`, or None when absent."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm.lower() != CHECKSUM_ALGORITHM:
        raise refuse(400, f"{UPLOAD_CHECKSUM}: only {CHECKSUM_ALGORITHM} is supported (got {algorithm!r})")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise refuse(400, f"{UPLOAD_CHECKSUM}: the digest is not base64") from exc
    if len(digest) != 32:
        raise refuse(400, f"{UPLOAD_CHECKSUM}: a sha256 digest has 32 bytes, not {len(digest)}")
    return digest


def http_date(seconds: float) -> str:
    """Upload-Expires: an HTTP date (RFC 9110), as tus asks."""
    return email.utils.formatdate(seconds, usegmt=True)
