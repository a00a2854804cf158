"""The shared volume's file operations, for the server's and the workers' filesystem backends.

Files are written under a temporary name and renamed into place, so a reader never sees half a
file and a retried write replaces rather than appends.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from thumbnailify.backends.layout import RAW, THUMBS, StoredFile, legacy_thumb_name, raw_name, thumb_name
from thumbnailify.media import THUMBNAIL_TYPES, MediaType, is_media_id

# Temporary names: the pid and a random part drawn once tell processes apart (containers sharing
# the volume may run theirs under the same pid), a count tells a process's files apart. A random part
# per name cost a system call that lets go of the GIL, and a busy event loop waited to take it back.
_PROCESS_PART = os.urandom(4).hex()
_TEMP_NUMBERS = itertools.count()


class Volume:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.raw_dir = root / RAW
        self.thumb_dir = root / THUMBS

    def prepare(self) -> None:
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        self.thumb_dir.mkdir(parents=True, exist_ok=True)

    def raw_path(self, media_id: str) -> Path:
        return self.root / raw_name(media_id)

    def thumb_path(self, media_id: str, media_type: MediaType, size: str) -> Path:
        return self.root / thumb_name(media_id, media_type, size)

    def legacy_thumb_path(self, media_id: str, media_type: MediaType) -> Path:
        """Where the one thumbnail of a record without `sizes` is."""
        return self.root / legacy_thumb_name(media_id, media_type)

    @staticmethod
    def temp_path(final: Path) -> Path:
        """A sibling name unique to this process, so concurrent writers never share it."""
        return final.with_name(f".{final.name}.{os.getpid()}.{_PROCESS_PART}.{next(_TEMP_NUMBERS)}.tmp")

    def check_writable(self) -> None:
        """Raise OSError when the volume cannot take files (unmounted, read-only, full)."""
        probe = self.temp_path(self.raw_dir / "probe")
        probe.write_bytes(b"")
        probe.unlink()

    def write_thumbnails(self, media_id: str, sizes: dict[str, tuple[MediaType, bytes]]) -> None:
        """Every size of an item's thumbnail (its type names the file), each file replaced whole."""
        for size, (media_type, data) in sizes.items():
            final = self.thumb_path(media_id, media_type, size)
            temp = self.temp_path(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                temp.write_bytes(data)
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)

    def remove(self, media_id: str) -> None:
        """Remove every file of an item, knowing only its id; missing ones are fine (idempotent)."""
        self.raw_path(media_id).unlink(missing_ok=True)
        self.remove_thumbnails(media_id)

    def remove_thumbnails(self, media_id: str) -> None:
        folder = self.thumb_dir / media_id
        with contextlib.suppress(FileNotFoundError):
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # A worker still writing into it finds the record gone and removes its own files.
            if exc.errno != errno.ENOTEMPTY:
                raise
        for media_type in THUMBNAIL_TYPES:
            self.legacy_thumb_path(media_id, media_type).unlink(missing_ok=True)

    def scan(self) -> Iterator[StoredFile]:
        """Everything under raw/ and thumbs/ by item (names that are neither ids nor our temporary
        files are left alone)."""
        for entry, modified in _entries(self.raw_dir):
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                yield StoredFile("temp", None, entry.path, modified)
            elif is_media_id(entry.name):
                yield StoredFile("upload", entry.name, entry.path, modified)
        for entry, modified in _entries(self.thumb_dir):
            media_id = entry.name.split(".", 1)[0]  # a folder <id>, or a legacy <id>.<ext>
            if is_media_id(media_id):
                yield StoredFile("thumbnail", media_id, entry.path, modified)

    def remove_stored(self, item: StoredFile) -> None:
        if item.kind == "thumbnail" and item.media_id is not None:
            self.remove_thumbnails(item.media_id)
        else:
            Path(item.name).unlink(missing_ok=True)


def _entries(folder: Path) -> Iterator[tuple[os.DirEntry[str], float]]:
    """A folder's entries with their modification times; one removed meanwhile is skipped."""
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            try:
                yield entry, entry.stat().st_mtime
            except FileNotFoundError:
                continue
