"""The media volume (a local disk, or a shared mount on every machine), from a worker's side."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thumbnailify.backends.filesystem.volume import Volume
from thumbnailify.media import MediaType
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import SourceMissing


class FilesystemFiles:
    transient: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, settings: Settings, scratch: Path) -> None:
        self.volume = Volume(settings.path(settings.files.root))

    def prepare(self) -> None:
        self.volume.prepare()

    @contextmanager
    def source(self, media_id: str) -> Iterator[Path]:
        path = self.volume.raw_path(media_id)
        if not path.exists():
            self.volume.check_writable()  # an unreachable volume is an outage, not a missing file
            raise SourceMissing("the upload is missing from the volume")
        yield path

    def write_thumbnails(self, media_id: str, sizes: dict[str, tuple[MediaType, bytes]]) -> None:
        self.volume.write_thumbnails(media_id, sizes)

    def copy_thumbnails(self, source_id: str, media_id: str, sizes: dict[str, MediaType]) -> bool:
        copies = {}
        for size, media_type in sizes.items():
            try:
                copies[size] = (media_type, self.volume.thumb_path(source_id, media_type, size).read_bytes())
            except FileNotFoundError:
                return False
        self.volume.write_thumbnails(media_id, copies)
        return True

    def remove_upload(self, media_id: str) -> None:
        self.volume.raw_path(media_id).unlink(missing_ok=True)

    def remove(self, media_id: str) -> None:
        self.volume.remove(media_id)
