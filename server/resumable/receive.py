"""One PATCH's body onto its upload's bytes, under the upload's lock.

The lock lives in the state store, so two PATCHes to one upload (on one server process or two)
never write together: the second is a 409. The body goes straight to the files backend; what
arrived before a connection was cut (or stalled past the idle timeout) is kept and counted, so
the client resumes from there. With Upload-Checksum the PATCH is all or nothing: a mismatch (460)
or a cut keeps none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid

from aiohttp import ClientPayloadError, hdrs, web

from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.resources import Resources
from thumbnailify.server.resumable.protocol import CHECKSUM_MISMATCH, UPLOAD_OFFSET, refuse
from thumbnailify.server.resumable.record import Upload
from thumbnailify.server.uploads.bodies import BodyTimeout, ReadLimits
from thumbnailify.server.uploads.intake import Sink

LEASE_MARGIN = 10.0  # seconds the lock outlives a PATCH that went silent (the idle timeout cuts it first)
CUT = (ClientPayloadError, ConnectionResetError, asyncio.IncompleteReadError, BodyTimeout, asyncio.CancelledError)


class Lease:
    """The upload's lock for one PATCH, renewed while its body keeps coming."""

    def __init__(self, res: Resources, upload: Upload) -> None:
        self.res = res
        self.name = upload.lock
        self.owner = uuid.uuid4().hex
        self.seconds = res.settings.limits.upload_idle_timeout + LEASE_MARGIN
        self.renewed = 0.0

    async def take(self) -> None:
        if not await self.res.store.acquire_lock(self.name, self.owner, self.seconds):
            raise refuse(409, "another request is writing to this upload; ask for its offset (HEAD) and resume")
        self.renewed = asyncio.get_running_loop().time()

    async def keep(self) -> None:
        """Renew once a third of the lease has passed; 409 if another took it meanwhile."""
        if asyncio.get_running_loop().time() - self.renewed > self.seconds / 3:
            await self.take()

    async def release(self) -> None:
        with contextlib.suppress(ApiError):
            await self.res.store.release_lock(self.name, self.owner)


async def append(request: web.Request, res: Resources, upload: Upload, lease: Lease,
                 expected: bytes | None) -> int:
    """Store the body at the upload's offset; the new offset (already in the store)."""
    conf = res.settings.limits
    room = upload.length - upload.offset
    sink = res.files.partial(upload.upload_id).append(upload.offset)
    digest = hashlib.sha256()
    written = 0
    limits = ReadLimits(room, conf.upload_idle_timeout, asyncio.get_running_loop().time() + conf.upload_timeout)
    cut: BaseException | None = None
    try:
        while chunk := await limits.wait(request.content.readany()):
            if len(chunk) > room - written:
                raise refuse(413, f"the PATCH goes past Upload-Length ({upload.length} bytes); nothing of it is kept")
            await sink.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            await lease.keep()
    except CUT as exc:
        cut = exc
    except BaseException:
        await sink.discard()
        raise
    if expected is not None and (cut is not None or digest.digest() != expected):
        await sink.discard()
        if cut is None:
            raise refuse(CHECKSUM_MISMATCH, "Upload-Checksum does not match the body; nothing of it is kept")
        raise _answer_to(cut)
    await asyncio.shield(_keep(res, upload, sink, written))  # a cancelled handler still counts its bytes
    if cut is not None:
        raise _answer_to(cut)
    return upload.offset + written


async def _keep(res: Resources, upload: Upload, sink: Sink, written: int) -> None:
    if not written:
        await sink.discard()  # nothing to keep (and no empty piece to write)
        return
    await sink.commit()
    moved = {"offset": str(upload.offset + written)}
    if not await res.store.update_upload(upload.upload_id, upload.offset, moved):
        raise refuse(409, "the upload changed meanwhile (deleted, or its lock ran out); ask for its offset")


def _answer_to(cut: BaseException) -> BaseException:
    if isinstance(cut, asyncio.CancelledError):
        return cut
    if isinstance(cut, BodyTimeout):
        return refuse(408, f"{cut}; what arrived is kept: ask for {UPLOAD_OFFSET} (HEAD) and resume",
                      {hdrs.CONNECTION: "close"})
    return refuse(400, "the PATCH was cut off; what arrived is kept: ask for its offset (HEAD) and resume")
