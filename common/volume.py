"""Where media lives on the shared volume, and the file operations both sides need.

Layout under the root: `raw/<id>` holds an upload until its thumbnail exists, `thumbs/<id>.<ext>`
the thumbnail. Files are written under a temporary name and renamed into place, so a reader never
sees half a file and a retried write replaces rather than appends.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from common.media import BY_NAME, MediaType


def is_media_id(text: str) -> bool:
    """Only canonical UUID4 strings name media; anything else never reaches the filesystem."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == text


def new_media_id() -> str:
    return str(uuid.uuid4())


class Volume:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.raw_dir = root / "raw"
        self.thumb_dir = root / "thumbs"

    def prepare(self) -> None:
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        self.thumb_dir.mkdir(parents=True, exist_ok=True)

    def raw_path(self, media_id: str) -> Path:
        return self.raw_dir / media_id

    def thumb_path(self, media_id: str, media_type: MediaType) -> Path:
        return self.thumb_dir / f"{media_id}.{media_type.extension}"

    @staticmethod
    def temp_path(final: Path) -> Path:
        """A sibling name unique to this process, so concurrent writers never share it."""
        return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")

    def check_writable(self) -> None:
        """Raise OSError when the volume cannot take files (unmounted, read-only, full)."""
        probe = self.temp_path(self.raw_dir / "probe")
        probe.write_bytes(b"")
        probe.unlink()

    def write_thumbnail(self, media_id: str, media_type: MediaType, data: bytes) -> Path:
        final = self.thumb_path(media_id, media_type)
        temp = self.temp_path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            temp.write_bytes(data)
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        return final

    def remove(self, media_id: str) -> None:
        """Remove every file of an item, whatever its type; missing ones are fine (idempotent)."""
        self.raw_path(media_id).unlink(missing_ok=True)
        for media_type in BY_NAME.values():
            self.thumb_path(media_id, media_type).unlink(missing_ok=True)
