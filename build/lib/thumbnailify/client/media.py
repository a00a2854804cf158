"""Which files the service takes, told by their extension, and the extension of each thumbnail type."""

from __future__ import annotations

from pathlib import Path

# What a folder walk picks up and the Content-Type each is sent with: the contract's accepted
# types, videos included (a server that does not take one yet answers 415 with its reason).
BY_EXTENSION: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
}
# Sent for a file named on the command line whose extension says nothing: the server's 415
# then tells the user what it takes.
UNKNOWN = "application/octet-stream"

THUMBNAIL_EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
}


def accepted(path: Path) -> bool:
    return path.suffix.lower() in BY_EXTENSION


def media_type(path: Path) -> str:
    return BY_EXTENSION.get(path.suffix.lower(), UNKNOWN)


def thumbnail_extension(content_type: str) -> str:
    """The file extension for a thumbnail's Content-Type (parameters and case ignored)."""
    name = content_type.split(";", 1)[0].strip().lower()
    return THUMBNAIL_EXTENSIONS.get(name) or name.rpartition("/")[2] or "bin"
