"""The media types we accept, how to recognise them by their first bytes, and their coders."""

from __future__ import annotations

from dataclasses import dataclass

import puremagic


@dataclass(frozen=True)
class MediaType:
    name: str  # canonical media type, e.g. "image/jpeg"
    extension: str  # file extension of a stored thumbnail of this type
    coder: str  # ImageMagick coder prefix: the file is never read as anything else
    animated: bool  # may hold several frames that must stay several frames
    magic: str  # the signature family its bytes must show (HEIC and HEIF share one)
    keeps_format: bool = True  # its thumbnail has the same type; else JPEG (PNG with transparency)


JPEG = MediaType("image/jpeg", "jpg", "JPEG", animated=False, magic="jpeg")
PNG = MediaType("image/png", "png", "PNG", animated=False, magic="png")
GIF = MediaType("image/gif", "gif", "GIF", animated=True, magic="gif")
WEBP = MediaType("image/webp", "webp", "WEBP", animated=True, magic="webp")
# Most browsers cannot show HEIC, so its thumbnails are JPEG or PNG; ImageMagick's HEIC coder
# (libheif) reads both HEVC- and AV1-coded HEIF, AVIF through its own name.
HEIC = MediaType("image/heic", "heic", "HEIC", animated=False, magic="heif", keeps_format=False)
HEIF = MediaType("image/heif", "heif", "HEIC", animated=False, magic="heif", keeps_format=False)
AVIF = MediaType("image/avif", "avif", "AVIF", animated=False, magic="avif")

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
}
BY_NAME: dict[str, MediaType] = {m.name: m for m in (JPEG, PNG, GIF, WEBP, HEIC, HEIF, AVIF)}
# Every type a thumbnail can have, so a cleanup can find one without knowing the record.
THUMBNAIL_TYPES = tuple(m for m in BY_NAME.values() if m.keeps_format)

# Bytes needed to tell the accepted formats apart: an ISO-BMFF `ftyp` box with its brands
# (RIFF....WEBP is the longest fixed signature).
SNIFF_BYTES = 64

SIGNATURES = ((b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG), (b"GIF87a", GIF), (b"GIF89a", GIF))
# ISO-BMFF brands (ISO/IEC 23008-12, AV1-ISOBMFF) naming a still-image HEIF or AVIF file.
AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"})


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


def sniff(head: bytes) -> MediaType | None:
    """Which accepted format these leading bytes start, by magic signature alone.

    HEIC and HEIF share their signature; `looks_like` is the check for a declared type.
    """
    for signature, media_type in SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    brands = set(ftyp_brands(head) or ())
    if brands & AVIF_BRANDS:  # an AVIF file also names mif1, a HEIF brand: AV1 decides
        return AVIF
    return HEIC if brands & HEIF_BRANDS else None


def looks_like(head: bytes, declared: MediaType) -> bool:
    """Whether the leading bytes carry the signature of the declared type."""
    found = sniff(head)
    return found is not None and found.magic == declared.magic


def describe(head: bytes) -> str:
    """A human name for bytes that are none of ours, for the 415 message."""
    found = sniff(head)
    if found is not None:
        return "image/heic or image/heif" if found.magic == "heif" else found.name
    brands = ftyp_brands(head)
    if brands:
        named = ", ".join(brand.decode("latin-1") for brand in brands)
        return f"an ISO-BMFF file with brands {named!r} (not HEIF or AVIF)"
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
