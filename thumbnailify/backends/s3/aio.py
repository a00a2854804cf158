"""Media in an S3-compatible bucket, from the server's side (obstore, async): no shared directory.

An upload that fits in one part is sent with one PUT at commit; a bigger one becomes a multipart
upload whose parts go out while the body is still arriving. Either way the object exists only
once it is complete (S3 shows no half object), so the 202 that follows `commit` names a whole
upload, and `discard` leaves nothing: an unfinished multipart upload is aborted, a finished
object deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import S3Store

from thumbnailify.backends import layout
from thumbnailify.backends.layout import StoredFile
from thumbnailify.backends.s3.bucket import FAULTS, PART_BYTES, PARTS_IN_FLIGHT, StoredObject, describe, open_bucket
from thumbnailify.backends.s3.partial import S3Partial
from thumbnailify.media import THUMBNAIL_TYPES, MediaType, is_media_id
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings

if TYPE_CHECKING:  # names of obstore's stubs only
    from obstore import ObjectMeta, PutResult

log = logging.getLogger(__name__)

NAME = "s3"


class Aborted(Exception):
    """Raised into the parts' stream: obstore then aborts the multipart upload."""


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(NAME, describe(exc))


class S3Upload:
    """One upload into one object: buffered up to a part, then streamed as a multipart upload."""

    def __init__(self, bucket: S3Store, name: str) -> None:
        self.bucket = bucket
        self.name = name
        self._buffer: list[bytes] = []
        self._buffered = 0
        # Parts on their way: a queue of one chunk, so a slow bucket slows the reading of the body.
        # None ends the stream (the upload is complete); an Aborted aborts it.
        self._chunks: asyncio.Queue[bytes | Aborted | None] = asyncio.Queue(maxsize=1)
        self._sending: asyncio.Future[PutResult] | None = None
        self._committed = False

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._sending is None:
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered < PART_BYTES:
                return
            self._sending = asyncio.ensure_future(obstore.put_async(
                self.bucket, self.name, self._parts(), chunk_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT,
            ))
            data, self._buffer, self._buffered = b"".join(self._buffer), [], 0
        await self._send(data)

    async def _parts(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            if isinstance(chunk, Aborted):
                raise chunk
            yield chunk

    async def _send(self, chunk: bytes | None) -> None:
        """Hand a chunk to the multipart upload, unless that upload has failed meanwhile."""
        assert self._sending is not None
        handing = asyncio.ensure_future(self._chunks.put(chunk))
        racing: set[asyncio.Future[Any]] = {handing, self._sending}
        try:
            done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            handing.cancel()
            raise
        if handing not in done:
            handing.cancel()
            await self._settle()  # raises: the upload failed

    async def _settle(self) -> None:
        assert self._sending is not None
        try:
            await asyncio.shield(self._sending)
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    async def commit(self) -> None:
        try:
            if self._sending is None:
                await obstore.put_async(self.bucket, self.name, b"".join(self._buffer), use_multipart=False)
                self._buffer, self._buffered = [], 0
            else:
                await self._send(None)
                await self._settle()
        except FAULTS as exc:
            raise _unavailable(exc) from exc
        self._committed = True

    async def discard(self) -> None:
        """Leave nothing of this upload in the bucket, committed or not; never raises."""
        self._buffer, self._buffered = [], 0
        sending = self._sending
        if sending is not None and not sending.done():
            while not self._chunks.empty():
                self._chunks.get_nowait()
            self._chunks.put_nowait(Aborted("upload discarded"))  # obstore aborts the multipart upload
            with contextlib.suppress(Exception):
                await asyncio.shield(sending)
        if self._committed or sending is not None:
            try:
                await obstore.delete_async(self.bucket, self.name)
            except FAULTS as exc:  # the retention sweep removes what no record names
                log.warning("could not remove a discarded upload: %s", describe(exc))


class S3Files:
    name = NAME
    # What one upload in flight may hold in this process: the part being filled and one on its way.
    upload_memory = PART_BYTES * (1 + PARTS_IN_FLIGHT)

    def __init__(self, settings: Settings) -> None:
        self.bucket = open_bucket(settings.s3)

    async def open(self) -> None:
        with contextlib.suppress(BackendUnavailable):  # an outage at start is reported by /ready
            await self.ping()

    async def ping(self) -> None:
        """One request that fails when the bucket is unreachable, refuses us, or does not exist."""
        try:
            await obstore.list_with_delimiter_async(self.bucket, f"{layout.RAW}/.ready/")
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    def upload(self, media_id: str) -> S3Upload:
        return S3Upload(self.bucket, layout.raw_name(media_id))

    def partial(self, upload_id: str) -> S3Partial:
        return S3Partial(self.bucket, upload_id, S3Upload)

    async def raw_exists(self, media_id: str) -> bool:
        try:
            await obstore.head_async(self.bucket, layout.raw_name(media_id))
        except FileNotFoundError:
            return False
        except FAULTS as exc:
            raise _unavailable(exc) from exc
        return True

    async def read_thumbnail(self, media_id: str, media_type: MediaType, size: str | None) -> bytes | None:
        if size is None:
            name = layout.legacy_thumb_name(media_id, media_type)
        else:
            name = layout.thumb_name(media_id, media_type, size)
        try:
            result = await obstore.get_async(self.bucket, name)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    async def remove(self, media_id: str) -> None:
        """Every object of the item, whatever state its record is in (or if it has none)."""
        try:
            thumbnails = [meta["path"] async for meta in self._listed(layout.thumbs_folder(media_id) + "/")]
            await obstore.delete_async(self.bucket, layout.names_of(media_id, thumbnails))
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    async def _listed(self, prefix: str) -> AsyncIterator[ObjectMeta]:
        async for batch in obstore.list(self.bucket, prefix, chunk_size=1000):
            for meta in batch:
                yield meta

    # -- for the retention sweep --------------------------------------------------------------
    async def listing(self, folder: str) -> AsyncIterator[StoredObject]:
        """Every object under a folder of the layout (`raw`, `thumbs`), in name order."""
        try:
            async for meta in self._listed(folder.rstrip("/") + "/"):
                yield StoredObject(meta["path"], meta["last_modified"], meta["size"])
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    async def remove_names(self, names: list[str]) -> None:
        """Objects by name (as `listing` gives them); missing ones are fine."""
        try:
            for start in range(0, len(names), 1000):
                await obstore.delete_async(self.bucket, names[start:start + 1000])
        except FAULTS as exc:
            raise _unavailable(exc) from exc

    async def scan(self) -> AsyncIterator[StoredFile]:
        """Every upload, and every item's thumbnails as one entry (the newest's time): an upload is
        one object that exists only once whole, so there are no temporary files to find."""
        async for stored in self.listing(layout.RAW):
            media_id = stored.name.rpartition("/")[2]
            if is_media_id(media_id):
                yield StoredFile("upload", media_id, stored.name, stored.modified.timestamp())
        current: StoredFile | None = None
        async for stored in self.listing(layout.THUMBS):
            media_id = stored.name.split("/")[1].split(".")[0]  # thumbs/<id>/<size>.<ext>, thumbs/<id>.<ext>
            if not is_media_id(media_id):
                continue
            if current is not None and current.media_id != media_id:
                yield current
                current = None
            newest = max(stored.modified.timestamp(), current.modified if current else 0.0)
            current = StoredFile("thumbnail", media_id, layout.thumbs_folder(media_id), newest)
        if current is not None:
            yield current

    async def remove_stored(self, item: StoredFile) -> None:
        if item.kind == "thumbnail" and item.media_id is not None:
            thumbnails = [stored.name async for stored in self.listing(layout.thumbs_folder(item.media_id))]
            await self.remove_names(thumbnails + [layout.legacy_thumb_name(item.media_id, t)
                                                  for t in THUMBNAIL_TYPES])
        else:
            await self.remove_names([item.name])

    async def close(self) -> None:
        return None
