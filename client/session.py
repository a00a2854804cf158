"""Sending the API's calls with requests: the key on every call, a 503 retried after its
Retry-After, uploads safe to retry (each carries an Idempotency-Key), results awaited through
the media's event stream with polling as the fallback."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import requests
import sseclient

from thumbnailify.client import calls, media

CONNECT_TIMEOUT = 10.0
CHECK_TIMEOUT = 3.0  # the first call of a command: a server that does not answer by then is not there
READ_TIMEOUT = 60.0
# An event stream sends a keep-alive comment every 15 s: twice that in silence means it is gone.
EVENTS_READ_TIMEOUT = 30.0
ATTEMPTS = 5  # per call: a 503, a lost connection (when a retry is safe), a 409 "still in flight"
MAX_RETRY_AFTER = 30.0  # a longer Retry-After is waited this long, so a retry loop stays bounded
POLL_INTERVAL = 0.5

Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
JsonObject = dict[str, Any]  # a response body: a status, a listing page, an event's data


class ApiError(Exception):
    """The server's refusal (status and its message), or status None: it could not be reached."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.message}" if self.status else self.message


class ProgressReader:
    """A file as a request body that reports how much of it was read (that is, sent)."""

    def __init__(self, file: BinaryIO, size: int, progress: Progress | None) -> None:
        self._file = file
        self._size = size
        self._progress = progress

    def __len__(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._file.read(size)
        if self._progress is not None:
            self._progress(self._file.tell(), self._size)
        return chunk


def unreachable(url: str, exc: requests.RequestException) -> str:
    """Why the server could not be reached, and what to do about it, in a person's words."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ReadTimeout):
        return f"no answer from {url} — is that the right address, and is the server up?"
    reason = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS connection to {url} failed — does the server take https?"
    if "Name or service not known" in reason or "nodename nor servname" in reason or "getaddrinfo" in reason:
        return f"cannot find the host of {url} — check the address"
    if isinstance(exc, requests.exceptions.ConnectionError) and "refused" in reason.lower():
        return f"connection refused — is the server running at {url}?"
    return f"cannot reach {url} ({type(exc).__name__}) — is the server running there?"


def message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.text.strip()[:200] or response.reason or "no message"


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait before a retry when the server says it is worth one, else None."""
    if response.status_code == 409 and "Idempotency-Key" in response.request.headers:
        return 1.0  # the first request with this key is still being handled
    header = response.headers.get("Retry-After")
    if response.status_code not in (429, 503) or header is None:
        # A 503 without it is an Error status (the job's infrastructure failed), not an outage; a
        # 429 (the client's rate of uploads) kept nothing, so it is retried like a 503.
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (email.utils.parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _is_status(body: object) -> TypeGuard[JsonObject]:
    return isinstance(body, dict) and "media_id" in body and "state" in body


def _rewind(body: object) -> None:
    """A retry sends a file again from its start."""
    if isinstance(body, calls.Rewindable):
        body.seek(0)


def _json_object(response: requests.Response) -> JsonObject:
    """A success's body, which the API always sends as a JSON object."""
    body = response.json()
    if not isinstance(body, dict):
        raise ApiError(response.status_code, f"expected a JSON object, got {type(body).__name__}")
    return body


class _Connections(threading.local):
    """Each thread's own requests session (a Session is not safe to share between threads)."""

    session: requests.Session | None = None


class Client:
    """One server, one key; safe to share between threads (each thread has its own connections)."""

    def __init__(self, url: str, api_key: str | None = None, *, attempts: int = ATTEMPTS) -> None:
        self.url = url.rstrip("/")
        self.headers = calls.bearer(api_key)
        self.attempts = attempts
        self._local = _Connections()

    @property
    def _http(self) -> requests.Session:
        if self._local.session is None:
            self._local.session = requests.Session()
        return self._local.session

    def send(self, call: calls.Call, *, stream: bool = False, read_timeout: float = READ_TIMEOUT) -> requests.Response:
        """The server's answer to the call, after retries; an ApiError once there is none to retry.

        A lost connection is retried only when that cannot do anything twice: a GET, or an upload
        with an Idempotency-Key. A 4xx or 5xx comes back as it is, for the caller to judge.
        """
        safe = call.method == "GET" or "Idempotency-Key" in call.headers
        for attempt in range(1, self.attempts + 1):
            _rewind(call.body)
            try:
                response = self._http.request(
                    call.method, self.url + call.target, headers=self.headers | call.headers, data=call.body,
                    stream=stream, timeout=(CONNECT_TIMEOUT, read_timeout),
                )
            except requests.RequestException as exc:
                if not safe or attempt == self.attempts:
                    raise ApiError(None, unreachable(self.url, exc)) from exc
                time.sleep(min(0.5 * 2.0 ** (attempt - 1), MAX_RETRY_AFTER))
                continue
            wait = _retry_after(response)
            if wait is None or attempt == self.attempts:
                return response
            response.close()
            time.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _checked(self, call: calls.Call, *, stream: bool = False,
                 read_timeout: float = READ_TIMEOUT) -> requests.Response:
        """The answer when it is a success; the server's refusal as an ApiError."""
        response = self.send(call, stream=stream, read_timeout=read_timeout)
        if response.status_code >= 400:
            raise ApiError(response.status_code, message_of(response))
        return response

    # -- the API ---------------------------------------------------------------------------------
    def health(self) -> JsonObject:
        """GET /health once, without retries and within seconds: whether the server is there at all
        (an ApiError in a person's words if not), and the thumbnail sizes it makes."""
        call = calls.health()
        try:
            response = self._http.request(call.method, self.url + call.target, headers=self.headers,
                                          timeout=(CHECK_TIMEOUT, CHECK_TIMEOUT))
        except requests.RequestException as exc:
            raise ApiError(None, unreachable(self.url, exc)) from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, message_of(response))
        try:
            return _json_object(response)
        except ValueError as exc:
            raise ApiError(response.status_code, f"{self.url} is not a Thumbnailify server (its /health is not JSON)") \
                from exc

    def upload(self, source: Path | bytes, media_type: str | None = None, *, binary: bool = True,
               progress: Progress | None = None, filename: str | None = None) -> JsonObject:
        """The accepted upload's status body (202); the server's refusal as an ApiError. A file's
        name goes with it (`filename`, else the path's)."""
        key = calls.new_idempotency_key()
        if isinstance(source, bytes):
            return _json_object(self._checked(calls.upload(source, media_type or media.UNKNOWN,
                                                           idempotency_key=key, binary=binary, filename=filename)))
        with source.open("rb") as file:
            body = ProgressReader(file, source.stat().st_size, progress)
            call = calls.upload(body, media_type or media.media_type(source), idempotency_key=key, binary=binary,
                                filename=filename or source.name)
            return _json_object(self._checked(call))

    def copies(self, sha256: str) -> list[JsonObject]:
        """Items on the server whose upload had exactly these bytes, newest first."""
        return list(_json_object(self._checked(calls.listing(100, sha256=sha256)))["items"])

    def status(self, media_id: str) -> JsonObject:
        """The status body; an Error status comes back as a body too (its HTTP code is the error's)."""
        response = self.send(calls.status(media_id))
        try:
            body = response.json()
        except ValueError:
            body = None
        if _is_status(body):
            return body
        raise ApiError(response.status_code, message_of(response))

    def events(self, media_id: str | None = None) -> Iterator[tuple[str, JsonObject]]:
        """(event, body) as the server sends them: "status" with a status body, "deleted"."""
        response = self._checked(calls.events(media_id), stream=True, read_timeout=EVENTS_READ_TIMEOUT)
        with response:
            for event in sseclient.SSEClient(response.iter_content(chunk_size=None)).events():
                yield event.event, json.loads(event.data)

    def wait(self, media_id: str, timeout: float = 600.0) -> JsonObject:
        """The media's terminal status body, as soon as it is known.

        Through its event stream; when that breaks (a server restart) the status is read once, in
        case the change fell in between, and the stream is opened again. A server out of reach for
        longer than one call's retries (a slow restart) is waited for, up to the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                for event, body in self.events(media_id):
                    if event == "deleted":
                        raise ApiError(404, "deleted while waiting for it")
                    if event == "status" and body.get("state") in calls.TERMINAL:
                        return body
            except requests.RequestException:
                pass  # the stream broke; the status below says whether anything was missed
            except ApiError as exc:
                if exc.status == 404:
                    raise
            try:
                body = self.status(media_id)
            except ApiError as exc:  # the server is out of reach (restarting): the wait goes on
                if exc.status is not None or time.monotonic() >= deadline:
                    raise
                time.sleep(POLL_INTERVAL)
                continue
            if body["state"] in calls.TERMINAL:
                return body
            if time.monotonic() >= deadline:
                raise ApiError(None, f"still {body['state']} after {timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def thumbnail(self, media_id: str, size: str | None = None) -> tuple[bytes, str]:
        """The thumbnail's bytes and media type (`size`: one of the server's `thumbnail.sizes`)."""
        response = self._checked(calls.thumbnail(media_id, size))
        return response.content, response.headers.get("Content-Type", "application/octet-stream")

    def delete(self, media_id: str) -> None:
        self._checked(calls.delete(media_id))

    def usage(self) -> JsonObject:
        return _json_object(self._checked(calls.usage()))

    def admin(self, call: calls.Call) -> JsonObject:
        """An admin API call (this client's key being auth.admin_key); {} for an empty answer."""
        response = self._checked(call)
        return _json_object(response) if response.content else {}

    def similar(self, media_id: str, distance: int | None = None, page: int = 100) -> Iterator[JsonObject]:
        """The items that look like `media_id` (within `distance` bits of its perceptual hash, the
        server's default 10), nearest first, each status body with its `distance`."""
        cursor = None
        while True:
            body = _json_object(self._checked(calls.similar(media_id, distance, page, cursor)))
            yield from body["items"]
            cursor = body.get("next")
            if not cursor:
                return

    def items(self, state: str | None = None, page: int = 100, filename: str | None = None) -> Iterator[JsonObject]:
        """Every media, newest first, a page at a time (following the server's cursor); `filename`
        keeps those whose name contains it."""
        cursor = None
        while True:
            body = _json_object(self._checked(calls.listing(page, cursor, state, filename=filename)))
            yield from body["items"]
            cursor = body.get("next")
            if not cursor:
                return
