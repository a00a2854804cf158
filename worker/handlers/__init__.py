"""What makes a media item's thumbnails, one handler per kind of media, behind one interface.

The media state machine (thumbnailify.worker.jobs) hands a handler the upload, as a local file, and
its declared type; the handler returns every configured size, or raises ImageRejected with the code
the record keeps. A handler is chosen by the media's kind (thumbnailify.kinds.media_kind: image,
video) here, and loaded by name, so a photo worker never imports a video decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thumbnailify.backends.loader import load_backend
from thumbnailify.media import MediaType
from thumbnailify.record import Metadata
from thumbnailify.settings import Settings
from thumbnailify.worker.fingerprints import Samples

# Keyed as thumbnailify.backends.loader's tables are (tests/unit/test_conformance.py reads it).
HANDLERS: dict[str, dict[str, str]] = {
    "handler": {
        "image": "thumbnailify.worker.handlers.image:ThumbHandler",
        "video": "thumbnailify.worker.handlers.video:VideoHandler",
    },
}


class ImageRejected(Exception):
    """The upload cannot be made into thumbnails: `code` is the HTTP-style code its record keeps
    (413 too many pixels, 415 not a format we read, 422 cannot decode)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SizedThumbnail:
    name: str
    data: bytes
    width: int
    height: int
    media_type: MediaType  # the size's own format (`name=WxH:format`), else the source kind's


@dataclass(frozen=True)
class Thumbnails:
    """Every size of one item's thumbnail, in config order (the first is the default)."""

    media_type: MediaType  # what the source's kind makes: the type of every size that names no format
    sizes: tuple[SizedThumbnail, ...]
    frames: int
    samples: Samples  # the smallest size's first frame, for the fingerprints (worker.handlers.sample)
    metadata: Metadata  # what the decode told of the original (worker.handlers.about)

    def dimensions(self) -> dict[str, tuple[int, int]]:
        return {size.name: (size.width, size.height) for size in self.sizes}

    def types(self) -> dict[str, str]:
        return {size.name: size.media_type.name for size in self.sizes}

    def files(self) -> dict[str, bytes]:
        return {size.name: size.data for size in self.sizes}

    def typed_files(self) -> dict[str, tuple[MediaType, bytes]]:
        """Each size's type (which names its file) and bytes."""
        return {size.name: (size.media_type, size.data) for size in self.sizes}


class Handler(Protocol):
    """Makes every configured size of one item's thumbnail from its upload."""

    @property
    def settings_key(self) -> str:
        """What decides the thumbnails besides the upload's bytes (uploads alike under one key share them)."""

    def make(self, source: Path, media_type: MediaType) -> Thumbnails:
        """Every size (thumbnail.sizes), in config order; ImageRejected when it cannot be made."""


def load_handler(kind: str, settings: Settings) -> Handler:
    """The handler of one kind of media (image, video), configured from the settings."""
    handler: Handler = load_backend(HANDLERS, "handler", kind).from_settings(settings)
    return handler
