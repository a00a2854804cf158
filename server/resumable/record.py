"""One resumable upload as the state store keeps it (text fields), and finding it by id."""

from __future__ import annotations

import time
from dataclasses import dataclass

from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.media import is_media_id
from thumbnailify.server.resources import Resources
from thumbnailify.server.resumable.protocol import refuse


@dataclass(frozen=True)
class Upload:
    upload_id: str
    length: int
    offset: int
    filetype: str
    filename: str
    metadata: str  # the Upload-Metadata header as sent, given back on HEAD
    callback_url: str
    idempotency_key: str
    created_at: str
    expires: float  # seconds since the epoch
    media_id: str  # set once the last byte is in and the item exists
    owner: str = DEFAULT_CLIENT  # the client that created it (uploads from before clients: the default one)

    @classmethod
    def of(cls, upload_id: str, fields: dict[str, str]) -> Upload:
        return cls(
            upload_id, int(fields["length"]), int(fields["offset"]), fields["filetype"],
            fields.get("filename", ""), fields.get("metadata", ""), fields.get("callback_url", ""),
            fields.get("idempotency_key", ""), fields.get("created_at", ""), float(fields["expires"]),
            fields.get("media_id", ""), fields.get("owner") or DEFAULT_CLIENT,
        )

    def fields(self) -> dict[str, str]:
        return {
            "length": str(self.length), "offset": str(self.offset), "filetype": self.filetype,
            "filename": self.filename, "metadata": self.metadata, "callback_url": self.callback_url,
            "idempotency_key": self.idempotency_key, "created_at": self.created_at,
            "expires": repr(self.expires), "owner": self.owner,
        }

    @property
    def finished(self) -> bool:
        return bool(self.media_id)

    @property
    def lock(self) -> str:
        """The lock one PATCH (or DELETE) holds on it, across server processes."""
        return f"resumable:{self.upload_id}"


def checked_id(upload_id: str) -> str:
    """Upload ids are UUID4s, like media ids: anything else is a 404 that touches nothing."""
    if not is_media_id(upload_id):
        raise refuse(404, "no such upload")
    return upload_id


async def find(res: Resources, upload_id: str, owner: str, *, expired_too: bool = False) -> Upload:
    """The upload, if it is `owner`'s, or 404 (never was, swept, or another client's) / 410 (its
    time ran out; the sweep has yet to come) unless `expired_too`."""
    fields = await res.store.get_upload(checked_id(upload_id))
    upload = Upload.of(upload_id, fields) if fields is not None else None
    if upload is None or upload.owner != owner:
        raise refuse(404, "no such upload")
    if expired_too:
        return upload
    if not upload.finished and upload.expires <= time.time():
        raise refuse(410, "this upload expired; start a new one")
    return upload
