"""Large files by tus (the server's /uploads/): sent in PATCHes of a chunk size, each unfinished
upload noted in a small JSON file under the user's cache folder, so a run cut short (Ctrl-C, a
kill, a lost link) is continued by the next run from the server's offset instead of from zero.

The protocol by hand rather than tuspy: it is four calls over the client's own session (its key,
its retries and Retry-After, its error messages), where tuspy would bring aiohttp and tinydb into
the client's dependencies and its own retry and storage rules beside ours.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from thumbnailify.client import calls
from thumbnailify.client.session import ApiError, Client, Progress, message_of

MEDIA_ID_HEADER = "Thumbnailify-Media-Id"
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024  # under the body caps of proxies (Cloudflare's is 100 MB)
# Answers after which asking the server for its offset and going on from there is right.
RESUMABLE = frozenset({408, 409, 460})


def default_log() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "thumbnailify" / "unfinished-uploads.json"


class UnfinishedUploads:
    """Upload paths on the server by (server, file): the file's absolute path, size and modification
    time, so a changed file is never continued with another's bytes. Safe between threads; between
    two runs at once the last writer wins (at worst an upload starts again)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @staticmethod
    def key(server: str, file: Path) -> str:
        stat = file.stat()
        return f"{server} {file.resolve()} {stat.st_size} {stat.st_mtime_ns}"

    def _read(self) -> dict[str, str]:
        try:
            noted = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: uploads begin anew, nothing is lost on the server
        return {str(k): str(v) for k, v in noted.items()} if isinstance(noted, dict) else {}

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._read().get(key)

    def _change(self, key: str, upload: str | None) -> None:
        with self._lock:
            noted = self._read()
            if upload is None:
                noted.pop(key, None)
            else:
                noted[key] = upload
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            partial.write_text(json.dumps(noted, indent=1))
            partial.replace(self.path)  # never a half-written file: a kill leaves the old one or the new

    def put(self, key: str, upload: str) -> None:
        self._change(key, upload)

    def drop(self, key: str) -> None:
        self._change(key, None)


def _offset(client: Client, upload: str) -> int | None:
    """What the server has of the upload; None when it has it no more (expired, removed)."""
    response = client.send(calls.tus_offset(upload))
    if response.status_code in (404, 410):
        return None
    if response.status_code >= 400:
        raise ApiError(response.status_code, message_of(response))
    return int(response.headers["Upload-Offset"])


def _create(client: Client, path: Path, media_type: str, filename: str) -> str:
    call = calls.tus_create(path.stat().st_size, media_type, filename, idempotency_key=calls.new_idempotency_key())
    response = client.send(call)
    if response.status_code != 201:
        raise ApiError(response.status_code, message_of(response))
    return urlsplit(response.headers["Location"]).path


def _finished_media_id(client: Client, upload: str) -> str | None:
    """The media_id of an upload that has all its bytes, if its last PATCH got that far."""
    response = client.send(calls.tus_upload(upload))
    if response.status_code >= 400:
        raise ApiError(response.status_code, message_of(response))
    media_id = response.json().get("media_id")
    return str(media_id) if media_id else None


def _begin(client: Client, path: Path, media_type: str, unfinished: UnfinishedUploads | None,
           key: str) -> tuple[str, int]:
    """The upload to go on with and the server's offset in it: the noted one, else a new one."""
    upload = unfinished.get(key) if unfinished else None
    offset = _offset(client, upload) if upload else None
    if upload is not None and offset is not None:
        return upload, offset
    upload = _create(client, path, media_type, path.name)
    if unfinished:
        unfinished.put(key, upload)
    return upload, 0


def _refused_for_good(response: requests.Response | None) -> bool:
    """A 4xx that asking for the offset and sending again cannot mend (the server removed the upload)."""
    return response is not None and response.status_code < 500 and response.status_code not in RESUMABLE


def send(client: Client, path: Path, media_type: str, *, chunk_bytes: int,
         unfinished: UnfinishedUploads | None, progress: Progress | None = None) -> str:
    """The media_id the server made of the file, sent by tus (continuing a noted upload if there
    is one); the server's refusal, or a link that stays down, as an ApiError."""
    size = path.stat().st_size
    key = UnfinishedUploads.key(client.url, path)
    upload, offset = _begin(client, path, media_type, unfinished, key)
    tries = 0  # in a row without progress
    with path.open("rb") as file:
        while True:
            if progress:
                progress(offset, size)
            if offset == size and (media_id := _finished_media_id(client, upload)):
                break
            file.seek(offset)
            body = file.read(chunk_bytes)  # empty at the end: the last PATCH again, to finish
            response: requests.Response | None = None
            try:
                response = client.send(calls.tus_append(upload, offset, body))
            except ApiError as lost:  # the link died mid-PATCH: the server kept what arrived
                failure = lost
            if response is not None and response.status_code == 204:
                offset, tries = int(response.headers["Upload-Offset"]), 0
                if media_id := response.headers.get(MEDIA_ID_HEADER, ""):
                    break
                continue
            if response is not None:
                failure = ApiError(response.status_code, message_of(response))
            tries += 1
            if _refused_for_good(response):
                if unfinished:
                    unfinished.drop(key)
                raise failure
            if tries >= client.attempts:
                raise failure
            known = _offset_after(client, upload, tries)
            tries = 0 if known > offset else tries
            offset = known
    if unfinished:
        unfinished.drop(key)
    if progress:
        progress(size, size)
    return media_id


def _offset_after(client: Client, upload: str, tries: int) -> int:
    """The server's offset after a pause that grows with the tries in a row without progress."""
    time.sleep(min(0.5 * 2.0 ** (tries - 1), 30.0))
    known = _offset(client, upload)
    if known is None:
        raise ApiError(410, "the server no longer has this upload (expired or removed); run again to send it anew")
    return known
