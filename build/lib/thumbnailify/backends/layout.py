"""Where media lives, the same names on a shared volume or in a bucket.

Layout under the root (the volume's folder, or the bucket under s3.prefix): `raw/<id>` holds an
upload until its thumbnails exist, `thumbs/<id>/<size name>.<ext>` each thumbnail (ext of the
thumbnail type). Items made before there were several sizes have their one thumbnail at
`thumbs/<id>.<ext>`, which stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass

from thumbnailify.media import THUMBNAIL_TYPES, MediaType


@dataclass(frozen=True)
class StoredFile:
    """One thing in the files backend, as the retention sweep sees it."""

    kind: str  # "upload", "thumbnail" (all of an item's thumbnails) or "temp" (an unfinished write)
    media_id: str | None  # None for a temporary file
    name: str  # where it is, in the backend's own terms
    modified: float  # seconds since the epoch


# The layout as relative names, the same for every files backend.
RAW = "raw"
THUMBS = "thumbs"


def raw_name(media_id: str) -> str:
    return f"{RAW}/{media_id}"


def thumb_name(media_id: str, media_type: MediaType, size: str) -> str:
    return f"{THUMBS}/{media_id}/{size}.{media_type.extension}"


def legacy_thumb_name(media_id: str, media_type: MediaType) -> str:
    return f"{THUMBS}/{media_id}.{media_type.extension}"


def thumbs_folder(media_id: str) -> str:
    """The folder of an item's thumbnails (its legacy one, if any, is beside it)."""
    return f"{THUMBS}/{media_id}"


def names_of(media_id: str, thumbnails: list[str]) -> list[str]:
    """Every name an item may have: its upload, the thumbnails listed in its folder, legacy ones."""
    return [raw_name(media_id), *thumbnails, *(legacy_thumb_name(media_id, t) for t in THUMBNAIL_TYPES)]
