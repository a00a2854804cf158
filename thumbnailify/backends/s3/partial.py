"""A resumable upload's bytes in the bucket: one object per PATCH, `resumable/<upload id>/<offset>`.

obstore streams each PATCH's body into its object (a multipart upload of PART_BYTES parts once
it outgrows one part), so a server process holds at most a part or two of it. S3's own
multipart upload cannot be continued by another process through obstore (it does not expose
upload ids and part ETags), so the pieces are objects of their own and the item's upload is
written from them, in order, when the last byte is in. A piece is named by the offset the store
gave its PATCH: a PATCH killed before the store heard of it is overwritten by the next one at
that offset, and the read takes only the pieces that follow each other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import obstore
from obstore.store import S3Store

from thumbnailify.backends.s3.bucket import FAULTS, describe
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.uploads.intake import Sink

FOLDER = "resumable"
READ_BYTES = 1024 * 1024
DIGITS = 16  # offsets in names are zero-padded, so name order is offset order


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable("s3", describe(exc))


class S3Partial:
    def __init__(self, bucket: S3Store, upload_id: str, writer: Callable[[S3Store, str], Sink]) -> None:
        self.bucket = bucket
        self.folder = f"{FOLDER}/{upload_id}/"
        self.writer = writer

    def append(self, offset: int) -> Sink:
        return self.writer(self.bucket, f"{self.folder}{offset:0{DIGITS}d}")

    async def _pieces(self) -> list[tuple[int, str, int]]:
        """(offset, name, size) of each piece, by offset."""
        found: list[tuple[int, str, int]] = []
        try:
            async for batch in obstore.list(self.bucket, self.folder, chunk_size=1000):
                for meta in batch:
                    start = meta["path"].rpartition("/")[2]
                    if start.isdigit():
                        found.append((int(start), meta["path"], meta["size"]))
        except FAULTS as exc:
            raise _unavailable(exc) from exc
        return sorted(found)

    async def read(self, length: int) -> AsyncGenerator[bytes, None]:
        position = 0
        for start, name, size in await self._pieces():
            if start != position or size == 0:
                continue  # a piece the store never counted (its PATCH was killed)
            left = min(size, length - position)
            try:
                result = await obstore.get_async(self.bucket, name)
                async for chunk in result.stream(min_chunk_size=READ_BYTES):
                    data = bytes(chunk)[:left]
                    left -= len(data)
                    position += len(data)
                    if data:
                        yield data
                    if left == 0:
                        break
            except FAULTS as exc:
                raise _unavailable(exc) from exc
            if position >= length:
                return
        raise BackendUnavailable("s3", f"resumable upload has {position} of {length} bytes")

    async def remove(self) -> None:
        names = [name for _, name, _ in await self._pieces()]
        try:
            for start in range(0, len(names), 1000):
                await obstore.delete_async(self.bucket, names[start:start + 1000])
        except FAULTS as exc:
            raise _unavailable(exc) from exc
