"""The upload forms POST /images takes, each a reader of its own feeding the same upload chain.

- base64 (the default): `Content-Type: image/...`, body = the media as base64.
- binary (`?encoding=binary`): the same, the body the raw media.
- multipart (`Content-Type: multipart/form-data`): one or more `file` parts, each with its own
  Content-Type and filename, and an optional `callback_url` text part.

A form first judges the headers alone (so the answer can come instead of "100 Continue"), then
yields the files one by one as the body streams in.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BodyPartReader, MultipartReader

from thumbnailify import media
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.uploads.bodies import ReadLimits, base64_chunks, base64_wire_bytes, raw_chunks
from thumbnailify.settings import LimitsSettings
from thumbnailify.units import size_text

T = TypeVar("T")

PART_CHUNK = 64 * 1024
PART_OVERHEAD = 16 * 1024  # boundary and part headers, per part
MAX_TEXT_PART = 4096  # callback_url and the like


@dataclass
class IncomingFile:
    declared: media.MediaType
    filename: str | None
    chunks: AsyncGenerator[bytes, None]


def declared_type(header: str | None, filename: str | None = None) -> media.MediaType:
    where = f"{filename}: " if filename else ""
    if not header:
        raise ApiError(400, f"{where}missing Content-Type; send one of " + ", ".join(media.ACCEPTED))
    declared = media.parse_content_type(header)
    if declared is None:
        raise ApiError(415, where + not_accepted(header.split(";", 1)[0].strip()))
    return declared


def not_accepted(given: str) -> str:
    """Why a declared type is refused, the same for every way of uploading."""
    return f"{given!r} isn't a photo or video this service takes; send one of " + ", ".join(media.ACCEPTED)


def _check_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the upload is too large: its body is over {size_text(limit)}")


MAX_FILENAME = 255  # a file system's limit on a name, for a POST's parts and a tus upload's metadata alike


def checked_filename(name: str | None) -> str | None:
    """A file's name as the client gave it, kept to show people; control characters are refused."""
    if name is None:
        return None
    if not 1 <= len(name) <= MAX_FILENAME or not name.isprintable():
        raise ApiError(400, f"filename must be 1 to {MAX_FILENAME} printable characters")
    return name


class UploadForm:
    """One file in the body, base64 or raw; callback_url and filename, if any, in the query."""

    many = False

    def __init__(self, request: web.Request, conf: LimitsSettings, encoding: str) -> None:
        self.request = request
        self.conf = conf
        self.encoding = encoding
        self.callback_url: str | None = request.query.get("callback_url")
        self.filename = checked_filename(request.query.get("filename"))
        self.wire_limit = base64_wire_bytes(conf.max_upload_bytes) if encoding == "base64" else conf.max_upload_bytes

    def check_headers(self) -> None:
        self.declared = declared_type(self.request.headers.get(hdrs.CONTENT_TYPE))
        _check_length(self.request, self.wire_limit)

    async def files(self, limits: ReadLimits) -> AsyncIterator[IncomingFile]:
        reader = base64_chunks if self.encoding == "base64" else raw_chunks
        yield IncomingFile(self.declared, self.filename, reader(self.request.content, limits))


class MultipartForm(UploadForm):
    """`file` parts (browser forms, `curl -F`) and an optional `callback_url` part."""

    many = True

    def __init__(self, request: web.Request, conf: LimitsSettings) -> None:
        super().__init__(request, conf, "multipart")
        self.wire_limit = conf.max_files * (conf.max_upload_bytes + PART_OVERHEAD)

    def check_headers(self) -> None:
        if self.request.content_length is None:
            raise ApiError(411, "a multipart upload needs a Content-Length")
        _check_length(self.request, self.wire_limit)
        try:
            self.reader = MultipartReader(self.request.headers, self.request.content)
        except (ValueError, AssertionError) as exc:
            raise ApiError(400, f"bad multipart Content-Type: {exc}") from exc

    async def files(self, limits: ReadLimits) -> AsyncIterator[IncomingFile]:
        count = 0
        while (part := await limits.wait(self._next_part())) is not None:
            if part.name == "callback_url" and part.filename is None:
                self.callback_url = await self._text(part, limits)
            elif part.name == "file":
                count += 1
                if count > self.conf.max_files:
                    raise ApiError(413, f"more than {self.conf.max_files} files in one upload")
                name = part.filename or f"file {count}"
                if part.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
                    raise ApiError(415, f"{name}: a Content-Encoding is not accepted; send the file as it is")
                if part.headers.get("Content-Transfer-Encoding", "binary").lower() not in ("binary", "8bit", "7bit"):
                    raise ApiError(415, f"{name}: only binary parts are accepted")
                declared = declared_type(part.headers.get(hdrs.CONTENT_TYPE), name)
                yield IncomingFile(declared, name, _part_chunks(part, limits))
            else:
                raise ApiError(400, f"unexpected part {part.name!r}: send 'file' parts and an optional 'callback_url'")
        if count == 0:
            raise ApiError(400, "no 'file' part in the multipart body")

    async def _next_part(self) -> BodyPartReader | None:
        part = await _parsed(self.reader.next())
        if part is not None and not isinstance(part, BodyPartReader):
            raise ApiError(400, "nested multipart parts are not accepted")
        return part

    @staticmethod
    async def _text(part: BodyPartReader, limits: ReadLimits) -> str:
        data = b""
        while chunk := await limits.wait(_parsed(part.read_chunk(MAX_TEXT_PART))):
            data += chunk
            if len(data) > MAX_TEXT_PART:
                raise ApiError(400, f"the {part.name!r} part is longer than {MAX_TEXT_PART} bytes")
        try:
            return data.decode().strip()
        except UnicodeDecodeError as exc:
            raise ApiError(400, f"the {part.name!r} part is not UTF-8 text") from exc


async def _part_chunks(part: BodyPartReader, limits: ReadLimits) -> AsyncGenerator[bytes, None]:
    while chunk := await limits.wait(_parsed(part.read_chunk(PART_CHUNK))):
        yield chunk


async def _parsed(read: Awaitable[T]) -> T:
    """aiohttp's multipart parser's complaints (a line too long, no boundary) as a 400."""
    try:
        return await read
    except (ValueError, HttpProcessingError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        raise ApiError(400, f"malformed multipart body: {reason.strip()[:200]}") from exc


def upload_form(request: web.Request, conf: LimitsSettings) -> UploadForm:
    """The form the request is sent in, its headers already judged (4xx before any body is read)."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding != "identity":
        raise ApiError(415, f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed")
    body_encoding = request.query.get("encoding", "base64")
    if body_encoding not in ("base64", "binary"):  # a multipart form's parts are raw, but a bad value is still one
        raise ApiError(400, "encoding must be 'base64' or 'binary'")
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        form: UploadForm = MultipartForm(request, conf)
    else:
        form = UploadForm(request, conf, body_encoding)
    form.check_headers()
    expect = request.headers.get(hdrs.EXPECT)
    if expect is not None and expect.lower() != "100-continue":
        raise ApiError(417, f"unsupported Expect: {expect!r}")
    return form
