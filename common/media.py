"""The media types we accept, how to recognise them by their first bytes, and their coders."""

from __future__ import annotations

from dataclasses import dataclass

import puremagic


@dataclass(frozen=True)
class MediaType:
    name: str  # canonical media type, e.g. "image/jpeg"
    extension: str  # file extension of the stored thumbnail
    coder: str  # ImageMagick coder prefix: the file is never read as anything else
    animated: bool  # may hold several frames that must stay several frames


JPEG = MediaType("image/jpeg", "jpg", "JPEG", animated=False)
PNG = MediaType("image/png", "png", "PNG", animated=False)
GIF = MediaType("image/gif", "gif", "GIF", animated=True)
WEBP = MediaType("image/webp", "webp", "WEBP", animated=True)

# Content-Type values a client may send, mapped to what they mean ("image/jpg" is common).
ACCEPTED: dict[str, MediaType] = {
    "image/jpeg": JPEG,
    "image/jpg": JPEG,
    "image/png": PNG,
    "image/gif": GIF,
    "image/webp": WEBP,
}
BY_NAME: dict[str, MediaType] = {m.name: m for m in (JPEG, PNG, GIF, WEBP)}

# Bytes needed to tell the accepted formats apart (RIFF....WEBP is the longest signature).
SNIFF_BYTES = 16


def parse_content_type(header: str | None) -> MediaType | None:
    """The accepted media type a Content-Type header names, ignoring parameters and case."""
    if not header:
        return None
    return ACCEPTED.get(header.split(";", 1)[0].strip().lower())


def sniff(head: bytes) -> MediaType | None:
    """Which accepted format these leading bytes start, by magic signature alone."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def describe(head: bytes) -> str:
    """A human name for bytes that are none of ours, for the 415 message."""
    found = sniff(head)
    if found is not None:
        return found.name
    try:
        match = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        match = []
    if match:
        best = match[0]
        return best.mime_type or best.name or "unrecognised data"
    if head.lstrip().startswith(b"<"):
        return "markup (XML/SVG/HTML)"
    if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return "text"
    return "unrecognised data"
