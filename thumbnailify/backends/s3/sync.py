"""Media in an S3-compatible bucket, from a worker's side (obstore, blocking): no shared directory.

The upload is downloaded into the worker's own scratch folder for the decoder and removed after
the job; thumbnails are put whole (an object is never seen half written), and an identical upload's
thumbnails are copied inside the bucket. Every fault of the bucket (unreachable, refusing, a 5xx)
is in `transient`, so the job runner retries it and dead-letters the job when the retries run out.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import obstore

from thumbnailify.backends import layout
from thumbnailify.backends.s3.bucket import FAULTS, StoredObject, open_bucket
from thumbnailify.media import MediaType
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import SourceMissing


class S3Files:
    transient: tuple[type[BaseException], ...] = FAULTS

    def __init__(self, settings: Settings, scratch: Path) -> None:
        self.bucket = open_bucket(settings.s3)
        self.scratch = scratch

    def prepare(self) -> None:
        self._check_bucket()

    def _check_bucket(self) -> None:
        """Raises unless the bucket answers (an unreachable or missing bucket is an outage)."""
        obstore.list_with_delimiter(self.bucket, f"{layout.RAW}/.ready/")

    @contextmanager
    def source(self, media_id: str) -> Iterator[Path]:
        local = self.scratch / f"source-{uuid.uuid4().hex}"
        try:
            try:
                result = obstore.get(self.bucket, layout.raw_name(media_id))
            except FileNotFoundError:
                self._check_bucket()  # a missing bucket is an outage, not a missing upload
                raise SourceMissing("the upload is missing from the bucket") from None
            with local.open("wb") as file:
                for chunk in result:  # streamed to disk: a 20 MiB upload is never in memory whole
                    file.write(chunk)
            yield local
        finally:
            local.unlink(missing_ok=True)

    def write_thumbnails(self, media_id: str, sizes: dict[str, tuple[MediaType, bytes]]) -> None:
        for size, (media_type, data) in sizes.items():
            obstore.put(self.bucket, layout.thumb_name(media_id, media_type, size), data, use_multipart=False)

    def copy_thumbnails(self, source_id: str, media_id: str, sizes: dict[str, MediaType]) -> bool:
        try:
            for size, media_type in sizes.items():
                obstore.copy(self.bucket, layout.thumb_name(source_id, media_type, size),
                             layout.thumb_name(media_id, media_type, size))
        except FileNotFoundError:
            with contextlib.suppress(*FAULTS):  # a copy made before the source went is not ours to keep
                obstore.delete(self.bucket, [layout.thumb_name(media_id, t, s) for s, t in sizes.items()])
            return False
        return True

    def remove_upload(self, media_id: str) -> None:
        obstore.delete(self.bucket, layout.raw_name(media_id))

    def remove(self, media_id: str) -> None:
        thumbnails = [meta.name for meta in self.listing(layout.thumbs_folder(media_id))]
        obstore.delete(self.bucket, layout.names_of(media_id, thumbnails))

    # -- for the retention sweep --------------------------------------------------------------
    def listing(self, folder: str) -> Iterator[StoredObject]:
        """Every object under a folder of the layout (`raw`, `thumbs`, `thumbs/<id>`), in name order."""
        for batch in obstore.list(self.bucket, folder.rstrip("/") + "/", chunk_size=1000):
            for meta in batch:
                yield StoredObject(meta["path"], meta["last_modified"], meta["size"])

    def remove_names(self, names: list[str]) -> None:
        """Objects by name (as `listing` gives them); missing ones are fine."""
        for start in range(0, len(names), 1000):
            obstore.delete(self.bucket, names[start:start + 1000])
