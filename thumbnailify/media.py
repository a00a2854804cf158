"""The media types we accept, how to recognise them by their first bytes, and their readers."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaType:
    name: str  # canonical media type, e.g. "image/jpeg"
    extension: str  # file extension of a stored thumbnail of this type
    coder: str  # the one reader it is opened with (ImageMagick coder prefix, FFmpeg demuxer):
    #             the file is never read as anything else
    animated: bool  # may hold several frames that must stay several frames
    magic: str  # the signature family its bytes must show (HEIC and HEIF share one)
    keeps_format: bool = True  # its thumbnail has the same type; else JPEG (PNG with transparency)


JPEG = MediaType("image/jpeg", "jpg", "JPEG", animated=False, magic="jpeg")
PNG = MediaType("image/png", "png", "PNG", animated=False, magic="png")
GIF = MediaType("image/gif", "gif", "GIF", animated=True, magic="gif")
WEBP = MediaType("image/webp", "webp", "WEBP", animated=True, magic="webp")
# Most browsers cannot show HEIC, so its thumbnails are JPEG or PNG. The worker decodes HEIC and
# HEIF with pillow-heif (its coder name is ImageMagick's, whose policy no longer lets it read
# them); AVIF is read by ImageMagick's AVIF coder (Debian's libheif with its AV1 decoder).
HEIC = MediaType("image/heic", "heic", "HEIC", animated=False, magic="heif", keeps_format=False)
HEIF = MediaType("image/heif", "heif", "HEIC", animated=False, magic="heif", keeps_format=False)
AVIF = MediaType("image/avif", "avif", "AVIF", animated=False, magic="avif")
# Videos, read with FFmpeg's demuxer of that family only (never a probe that might pick a playlist
# reader); their thumbnail is a JPEG. MP4 and QuickTime are one family, as FFmpeg reads them.
MOV_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
MP4 = MediaType("video/mp4", "mp4", MOV_DEMUXER, animated=False, magic="isobmff-video", keeps_format=False)
QUICKTIME = MediaType("video/quicktime", "mov", MOV_DEMUXER, animated=False, magic="isobmff-video", keeps_format=False)
WEBM = MediaType("video/webm", "webm", "matroska,webm", animated=False, magic="webm", keeps_format=False)

# Content-Type values a client may send, mapped to what they mean ("image/jpg" is common).
ACCEPTED: dict[str, MediaType] = {
    "image/jpeg": JPEG,
    "image/jpg": JPEG,
    "image/png": PNG,
    "image/gif": GIF,
    "image/webp": WEBP,
    "image/heic": HEIC,
    "image/heif": HEIF,
    "image/avif": AVIF,
    "video/mp4": MP4,
    "video/quicktime": QUICKTIME,
    "video/webm": WEBM,
}
BY_NAME: dict[str, MediaType] = {m.name: m for m in (JPEG, PNG, GIF, WEBP, HEIC, HEIF, AVIF, MP4, QUICKTIME, WEBM)}
# Every type a thumbnail can have, so a cleanup can find one without knowing the record.
THUMBNAIL_TYPES = tuple(m for m in BY_NAME.values() if m.keeps_format)
# The formats a size of `thumbnail.sizes` may name (`card=400x400:webp`), and their types.
BY_FORMAT: dict[str, MediaType] = {"jpeg": JPEG, "png": PNG, "webp": WEBP, "avif": AVIF, "gif": GIF}

# Bytes needed to tell the accepted formats apart: an ISO-BMFF `ftyp` box with its brands, a
# WebM's EBML header up to its DocType (RIFF....WEBP is the longest fixed signature).
SNIFF_BYTES = 64

SIGNATURES = ((b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG), (b"GIF87a", GIF), (b"GIF89a", GIF))
# ISO-BMFF brands (ISO/IEC 23008-12, AV1-ISOBMFF) naming a still-image HEIF or AVIF file.
AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"})
# Brands of MP4, QuickTime and 3GPP movies: ISO base media, MP4 v1/v2, AVC, Apple (M4V, qt),
# 3GPP/3GPP2, DASH segments, Sony XAVC, Canon, Flash MP4.
VIDEO_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9", b"mp41", b"mp42",
     b"mp71", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3gp8",
     b"3gp9", b"3gg6", b"3g2a", b"3g2b", b"3g2c", b"dash", b"msdh", b"XAVC", b"CAEP", b"f4v ", b"MSNV",
     b"mmp4", b"NDAS"}
)
# A QuickTime movie from before `ftyp` existed starts straight with one of these atoms.
QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# Text that FFmpeg would follow to other files or URLs if it were ever let to probe.
SCRIPTS = (
    (b"#EXTM3U", "an HLS playlist (application/vnd.apple.mpegurl)"),
    (b"ffconcat", "an FFmpeg concat script"),
)
EBML_DOCTYPE = 0x4282


def parse_content_type(header: str | None) -> MediaType | None:
    """The accepted media type a Content-Type header names, ignoring parameters and case."""
    if not header:
        return None
    return ACCEPTED.get(header.split(";", 1)[0].strip().lower())


def ftyp_brands(head: bytes) -> list[bytes] | None:
    """Major and compatible brands of a leading ISO-BMFF `ftyp` box, as far as `head` holds them."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    if size < 16:
        return None
    box = head[: min(size, len(head))]
    # major brand, minor version (skipped), then compatible brands to the end of the box
    return [box[8:12]] + [box[i : i + 4] for i in range(16, len(box) - 3, 4)]


def _ebml_number(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length number at `at` (an element ID keeps its length marker, a size does
    not), and where it ends; None past the end of `data` or for an invalid first byte."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, at + length


def ebml_doctype(head: bytes) -> str | None:
    """The DocType ("webm", "matroska") of a leading EBML header, as far as `head` holds it."""
    if not head.startswith(EBML_MAGIC):
        return None
    size = _ebml_number(head, 4, keep_marker=False)
    if size is None:
        return None
    at, end = size[1], min(len(head), size[1] + size[0])
    while at < end:
        element = _ebml_number(head, at, keep_marker=True)
        length = element and _ebml_number(head, element[1], keep_marker=False)
        if not element or not length:
            return None
        start, at = length[1], length[1] + length[0]
        if element[0] == EBML_DOCTYPE:
            return head[start:at].rstrip(b"\0").decode("ascii", "replace") if at <= len(head) else None
    return None


def is_quicktime_legacy(head: bytes) -> bool:
    """A movie without `ftyp` whose first atom is one a QuickTime file starts with."""
    size = int.from_bytes(head[:4], "big")  # 0: to the end of the file, 1: a 64-bit size follows
    return len(head) >= 8 and head[4:8] in QUICKTIME_ATOMS and (size in (0, 1) or size >= 8)


def sniff(head: bytes) -> MediaType | None:
    """Which accepted format these leading bytes start, by magic signature alone.

    HEIC and HEIF share their signature, as do MP4 and QuickTime; `looks_like` is the check for a
    declared type.
    """
    for signature, media_type in SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    brands = ftyp_brands(head)
    if brands is not None:
        return _by_brands(set(brands))
    if ebml_doctype(head) == "webm":
        return WEBM
    return QUICKTIME if is_quicktime_legacy(head) else None


def _by_brands(brands: set[bytes]) -> MediaType | None:
    if brands & AVIF_BRANDS:  # an AVIF file also names mif1, a HEIF brand: AV1 decides
        return AVIF
    if brands & HEIF_BRANDS:  # a still image first, whatever movie brands it also names
        return HEIC
    return MP4 if brands & VIDEO_BRANDS else None


def looks_like(head: bytes, declared: MediaType) -> bool:
    """Whether the leading bytes carry the signature of the declared type."""
    found = sniff(head)
    return found is not None and found.magic == declared.magic


def _describe_container(head: bytes) -> str | None:
    """A name for a movie container or script we do not take, by what it says of itself."""
    brands = ftyp_brands(head)
    if brands:
        named = ", ".join(brand.decode("latin-1") for brand in brands)
        return f"an ISO-BMFF file with brands {named!r} (not HEIF, AVIF, MP4 or QuickTime)"
    doctype = ebml_doctype(head)
    if doctype is not None:
        return f"an EBML file with DocType {doctype!r} (not WebM)"
    return next((name for start, name in SCRIPTS if head.startswith(start)), None)


def describe(head: bytes) -> str:
    """A human name for bytes that are none of ours, for the 415 message."""
    found = sniff(head)
    if found is not None:
        return {"heif": "image/heic or image/heif", "isobmff-video": "video/mp4 or video/quicktime"}.get(
            found.magic, found.name
        )
    named = _describe_container(head)
    if named:
        return named
    import puremagic  # noqa: PLC0415  # only for this message: workers never load its ~1 MB of signatures

    try:
        match = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        match = []
    if match:
        best = match[0]
        return best.mime_type or best.name or "unrecognised data"
    if head.lstrip().startswith(b"<"):
        return "markup (XML/SVG/HTML)"
    if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return "text"
    return "unrecognised data"


# The canonical text of a version 4 (RFC 4122 variant) UUID, as str(uuid.uuid4()) writes it.
_MEDIA_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def is_media_id(text: str) -> bool:
    """Only canonical UUID4 strings name media; anything else never reaches the filesystem."""
    return _MEDIA_ID.fullmatch(text) is not None


class _RandomBytes:
    """The kernel's random bytes, read a batch at a time: os.urandom lets go of the GIL for its
    system call, and on a busy server taking it back cost more than the call (4 % of the event
    loop's time at 460 uploads/s). Locked, so two threads never take the same bytes; emptied in a
    forked child, so parent and child never share them."""

    BATCH = 4096  # 256 media ids per read

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = b""
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._left = b""

    def take(self, count: int) -> bytes:
        with self._lock:
            if len(self._left) < count:
                self._left = os.urandom(self.BATCH)
            taken, self._left = self._left[:count], self._left[count:]
            return taken


_RANDOM = _RandomBytes()


def new_media_id() -> str:
    """A random UUID4 in canonical text, written straight from the random bytes (uuid.uuid4()
    builds an object and formats it again: a quarter of the cost)."""
    raw = bytearray(_RANDOM.take(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    digits = raw.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
