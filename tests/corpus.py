"""Deterministic test corpus for Thumbnailify.

Every case is generated in memory with Pillow and plain byte surgery (the
standard library), so the only binary fixtures are the real photographs in
``tests/data/photos`` and the corpus is identical on every run.

Expected thumbnail sizes follow one rule (``fit_size``): fit inside 100x100,
keep the aspect ratio, round each side half-up to the nearest pixel (never
below 1), never enlarge.  Output format = input format.

Findings: ImageMagick 6.9.11-60 Q16 (Debian 12, its default policy.xml) read
through Wand 0.7.2, probed on every case of this corpus:

* Wand raises only when the read *fails*.  When it succeeds, warnings are
  dropped: ``Image(blob=...)`` never calls ``warnings.warn`` and
  ``img.get_exception()`` is empty, because IM6 coders put warnings into the
  per-image exception.  The only way found to see them is MagickCore's
  ``GetImageException(GetImageFromMagickWand(wand), exc)`` through ctypes
  (``wand.api.libmagick`` / ``wand.api.library``): severity 325 =
  CorruptImageWarning.
* JPEG cut inside the entropy-coded data (baseline at 50 % and 90 % of the
  scan; progressive inside the first scan): the read succeeds (grey fill); only
  that image exception says CorruptImageWarning "Premature end of JPEG file".
  These are 422 only because the worker treats CorruptImage warnings as errors.
* JPEG with headers only (cut before SOS), SOF marker destroyed, SOF height 0,
  garbage DHT, or garbage after FF D8 FF: ``Image.ping`` returns 0x0 *without*
  raising, and touching ``.sequence`` of that pinged image aborts the whole
  process (assertion in CloneImage, SIGABRT).  ``Image(blob=...)`` raises
  ``CorruptImageError`` "negative or zero image size".
* PNG: cut after IHDR, or the signature only: ``CorruptImageError``
  "insufficient image data".  Cut inside IDAT (50 %, 90 %), bad IHDR CRC, bad
  IDAT CRC, garbled zlib with a good CRC, PNG signature followed by SVG, and
  the 100000x100000 IHDR: the read fails *without* an IM exception, so Wand
  raises ``WandRuntimeError`` ("MagickReadImage returns false, but did not
  raise ImageMagick exception"; ping: "MagickPingImage returns false").  The
  bad-IHDR-CRC, signature-then-SVG and 100000x100000 files fail already at
  ping; the IDAT-damaged ones ping fine (512x512) and fail at read.  Consequently a
  worker cannot tell "too big" from "corrupt" for PNG from the exception: it
  has to read the IHDR itself (see ``declared_size``).
* GIF: cut after the header/colour table: ``CorruptImageError`` "negative or
  zero image size"; cut inside any frame's LZW data: ``CorruptImageError``
  "corrupt image" (DecodeImage); LZW minimum code size 15:
  ``CorruptImageError`` "corrupt image".  A GIF cut exactly *between* frames
  or missing only its trailer is accepted silently with fewer frames, so no
  case cuts there.
* WebP: cut after the RIFF header, at 50 % and at 90 %: ``CorruptImageError``
  "insufficient image data"; VP8 start code destroyed: ``CorruptImageError``
  "corrupt image".  IM6 decodes WebP even to ping, so a WebP header declaring
  16384x16384 (valid 16x16 bitstream) gives ``CorruptImageError`` "corrupt
  image" at ping, never its size: the worker must parse VP8/VP8L/VP8X itself.
* Size limits: the 65000x65000 JPEG pings as 65000x65000 (header) and its
  read raises ``ImageError`` "width or height exceeds limit" (policy 16KP).
  The GIF with a 65535x65535 logical screen pings as a 10x10 frame whose
  ``page`` is 65535x65535, and reads fine: only a worker that checks the
  canvas (page) refuses it.  The 10000x5001 PNG (1-bit, valid) is within IM's
  limits (area 128MP) and decodes in ~2.6 s / ~400 MB RSS: only the worker's
  own 50 MP check refuses it; 10000x5000 (exactly 50 MP) must succeed.
* Not a corpus finding but seen while probing: Wand's ``thumbnail(100, 100)``
  does not keep the aspect ratio (10000x5001 became 100x100).
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import io
import json
import math
import pickle
import random
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import pillow_heif
from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageSequence, ImageStat

from tests.colour import D50, SRGB_D50, delta_e, display_p3_profile, inverse3, srgb_to_lab

pillow_heif.register_heif_opener()  # Pillow reads AVIF itself; HEIC through pillow-heif

PHOTOS_DIR = Path(__file__).resolve().parent / "data" / "photos"
ICC_DIR = Path("/usr/share/color/icc/colord")  # Debian colord-data, installed by scripts/install-system.sh
MAX_BOX = 100
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

RGB = tuple[int, int, int]
RED: RGB = (255, 0, 0)
GREEN: RGB = (0, 255, 0)
BLUE: RGB = (0, 0, 255)
WHITE: RGB = (255, 255, 255)
YELLOW: RGB = (255, 255, 0)
MAGENTA: RGB = (255, 0, 255)


def max_pixels_default() -> int:
    """Pixel-count limit the worker enforces by default (width * height)."""
    return 50_000_000


# A 2x2 PNG: a job that ends in milliseconds even as a fresh worker's first.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def slow_png(seed: int) -> bytes:
    """A 49 MP PNG, just under the pixel limit: half a second to a second of a worker's time on this
    machine's cores, more under load; different for every seed."""
    image = Image.linear_gradient("L").resize((7000, 7000)).convert("RGB")
    image.putpixel((0, 0), (seed, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


# --------------------------------------------------------------------------
# Pixel checks
# --------------------------------------------------------------------------

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


def _rgb_frame(img: Image.Image) -> Image.Image:
    """Current frame as RGB, compositing any alpha onto black (deterministic)."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


def _mean(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(img.crop(box)).mean)


def _frac_box(size: tuple[int, int], box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    w, h = size
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
    return x0, y0, min(x1, w), min(y1, h)


def _far(got: Sequence[float], want: Sequence[int], tol: int) -> bool:
    return any(abs(g - w) > tol for g, w in zip(got, want, strict=True))


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


@dataclass(frozen=True)
class Corner:
    """Mean RGB of a 5x5 patch inset 2 px from a corner of the thumbnail."""

    position: Position
    rgb: RGB
    tolerance: int = 60

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        rgb = _rgb_frame(img)
        w, h = rgb.size
        pw, ph = min(5, w), min(5, h)
        ix, iy = min(2, w - pw), min(2, h - ph)
        x0 = ix if self.position.endswith("left") else w - ix - pw
        y0 = iy if self.position.startswith("top") else h - iy - ph
        got = _mean(rgb, (x0, y0, x0 + pw, y0 + ph))
        if _far(got, self.rgb, self.tolerance):
            return [f"{self.position} corner is {_fmt(got)}, want {self.rgb} ±{self.tolerance}"]
        return []


@dataclass(frozen=True)
class MeanColour:
    """Mean RGB over a box given in fractions (x0, y0, x1, y1) of the thumbnail."""

    box: tuple[float, float, float, float]
    rgb: RGB
    tolerance: int = 40

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        got = _mean(_rgb_frame(img), _frac_box(img.size, self.box))
        if _far(got, self.rgb, self.tolerance):
            return [f"mean colour of {self.box} is {_fmt(got)}, want {self.rgb} ±{self.tolerance}"]
        return []


@dataclass(frozen=True)
class MeanAlpha:
    """Mean alpha over a fractional box (255 = opaque); images without alpha count as 255."""

    box: tuple[float, float, float, float]
    alpha: int
    tolerance: int = 40

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        a = img.convert("RGBA").getchannel("A")
        got = _mean(a, _frac_box(img.size, self.box))[0]
        if abs(got - self.alpha) > self.tolerance:
            return [f"mean alpha of {self.box} is {got:.0f}, want {self.alpha} ±{self.tolerance}"]
        return []


@dataclass(frozen=True)
class HasAlpha:
    """True: the thumbnail keeps an alpha channel and some pixel is not opaque.

    False: no pixel is transparent (an all-opaque alpha channel is allowed).
    """

    expected: bool = True

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        capable = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
        lo = img.convert("RGBA").getchannel("A").getextrema()[0] if capable else 255
        has = capable and lo < 255
        if has != self.expected:
            return [f"has transparency is {has} (mode {img.mode}, min alpha {lo}), want {self.expected}"]
        return []


@dataclass(frozen=True)
class FrameCount:
    """Number of frames (1 for still images)."""

    n: int

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        got = getattr(img, "n_frames", 1)
        return [] if got == self.n else [f"frame count is {got}, want {self.n}"]


@dataclass(frozen=True)
class FrameMeanColours:
    """Per-frame mean RGB of a fractional box, as composited by Pillow."""

    box: tuple[float, float, float, float]
    rgbs: tuple[RGB, ...]
    tolerance: int = 60

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        # ImageSequence yields the same object re-seeked, so measure inside the loop.
        means = [_mean(_rgb_frame(f), _frac_box(f.size, self.box)) for f in ImageSequence.Iterator(img)]
        img.seek(0)
        if len(means) != len(self.rgbs):
            return [f"{len(means)} frames, want {len(self.rgbs)} for colour check"]
        return [
            f"frame {i} mean of {self.box} is {_fmt(got)}, want {want} ±{self.tolerance}"
            for i, (got, want) in enumerate(zip(means, self.rgbs, strict=True))
            if _far(got, want, self.tolerance)
        ]


@dataclass(frozen=True)
class Grayscale:
    """True: R, G and B equal (within tolerance) at every pixel; False: some pixel differs."""

    expected: bool = True
    tolerance: int = 0

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        r, g, b = _rgb_frame(img).split()
        worst = max(ImageChops.difference(r, g).getextrema()[1], ImageChops.difference(g, b).getextrema()[1])
        gray = worst <= self.tolerance
        if gray != self.expected:
            return [f"grayscale is {gray} (max channel difference {worst}), want {self.expected}"]
        return []


@dataclass(frozen=True)
class NoExif:
    """No EXIF block (so no Orientation tag) survives in the thumbnail."""

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        if img.info.get("exif") or len(img.getexif()) > 0:
            return ["thumbnail still carries EXIF data"]
        return []


@dataclass(frozen=True)
class NoMetadata:
    """No EXIF, XMP or comment survives (metadata stripped)."""

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        found = [k for k in ("exif", "xmp", "XML:com.adobe.xmp", "comment") if img.info.get(k)]
        if len(img.getexif()) > 0 and "exif" not in found:
            found.append("exif")
        return [f"thumbnail still carries metadata: {', '.join(found)}"] if found else []


@dataclass(frozen=True)
class DeltaE:
    """CIEDE2000 between the mean colour of a fractional box and the sRGB colour it was authored as."""

    box: tuple[float, float, float, float]
    rgb: RGB
    max_delta: float = 3.0

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        got = _mean(_rgb_frame(img), _frac_box(img.size, self.box))
        found = delta_e(got, self.rgb)
        if found > self.max_delta:
            return [f"mean colour of {self.box} is {_fmt(got)}, want {self.rgb}: ΔE {found:.2f} > {self.max_delta}"]
        return []


@dataclass(frozen=True)
class NoIccProfile:
    """The embedded profile was applied and removed: no ICC profile left in the thumbnail."""

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        return ["thumbnail still carries an ICC profile"] if img.info.get("icc_profile") else []


@dataclass(frozen=True)
class BitDepth:
    """PNG thumbnails use at most ``max_bits`` per sample (IHDR byte 24); 16-bit input must come out 8-bit.

    A smaller depth (e.g. a 4-bit palette chosen by the encoder) is fine.
    """

    max_bits: int = 8

    def check(self, img: Image.Image, raw: bytes) -> list[str]:
        if raw[:8] != PNG_SIG:
            return []
        got = raw[24]
        return [] if got <= self.max_bits else [f"PNG bit depth is {got}, want <= {self.max_bits}"]


Check = (
    Corner
    | MeanColour
    | MeanAlpha
    | HasAlpha
    | FrameCount
    | FrameMeanColours
    | Grayscale
    | NoExif
    | NoMetadata
    | BitDepth
    | DeltaE
    | NoIccProfile
)


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One POST /images scenario and everything the test expects from it."""

    name: str
    content_type: str
    body: bytes | None
    raw_base64: bytes | None
    expect_http: int
    expect_state: str | None
    expect_code: int | None
    expect_size: tuple[int, int] | None
    expect_type: str | None
    checks: tuple[Check, ...] = ()
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if (self.body is None) == (self.raw_base64 is None):
            raise ValueError(f"{self.name}: exactly one of body / raw_base64 must be set")

    def request_body(self) -> bytes:
        """The bytes to POST: base64 of ``body``, or ``raw_base64`` verbatim."""
        if self.raw_base64 is not None:
            return self.raw_base64
        assert self.body is not None
        return base64.b64encode(self.body)

    def expected(self) -> str:
        """The outcome as the tests' tables print it."""
        if self.expect_http != 202:
            return f"HTTP {self.expect_http}"
        return "Completed" if self.expect_state == "Completed" else f"Error {self.expect_code}"

    def __repr__(self) -> str:  # bodies can be 20 MiB: keep reprs short
        size = len(self.body) if self.body is not None else len(self.raw_base64 or b"")
        return f"Case({self.name!r}, {self.content_type!r}, {size} bytes, http={self.expect_http})"


MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "AVIF": "image/avif"}
# Content-Types the server accepts, and the media type each stands for.
ALLOWED_TYPES = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
    "image/heic": "image/heic",
    "image/heif": "image/heif",
    "image/avif": "image/avif",
}


def run_checks(thumbnail_bytes: bytes, case: Case) -> list[str]:
    """Decode a thumbnail with Pillow and return every way it misses ``case``'s expectations."""
    try:
        img = Image.open(io.BytesIO(thumbnail_bytes))
        img.load()
    except Exception as exc:
        return [f"thumbnail does not decode: {type(exc).__name__}: {exc}"]
    failures: list[str] = []
    got_type = MEDIA_TYPES.get(img.format or "", f"unknown ({img.format})")
    if case.expect_type is not None and got_type != case.expect_type:
        failures.append(f"thumbnail type is {got_type}, want {case.expect_type}")
    if case.expect_size is not None and img.size != case.expect_size:
        failures.append(f"thumbnail size is {img.size}, want {case.expect_size}")
    for chk in case.checks:
        try:
            img.seek(0)
            failures.extend(f"{type(chk).__name__}: {m}" for m in chk.check(img, thumbnail_bytes))
        except Exception as exc:
            failures.append(f"{type(chk).__name__} crashed: {type(exc).__name__}: {exc}")
    return failures


def fit_size(width: int, height: int, box: int = MAX_BOX) -> tuple[int, int]:
    """Size that fits ``box``x``box``: aspect kept, half-up rounding, at least 1, never enlarged."""
    scale = min(1.0, box / width, box / height)
    if scale >= 1.0:
        return width, height
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def _good(
    name: str,
    ctype: str,
    body: bytes,
    size: tuple[int, int],
    *checks: Check,
    out_type: str | None = None,
    note: str = "",
) -> Case:
    return Case(
        name,
        ctype,
        body,
        None,
        202,
        "Completed",
        None,
        fit_size(*size),
        out_type or ("image/jpeg" if ctype == "image/jpg" else ctype),
        tuple(checks),
        note,
    )


def _worker_error(name: str, ctype: str, body: bytes, code: int, note: str = "") -> Case:
    return Case(name, ctype, body, None, 202, "Error", code, None, None, (), note)


def _refused(
    name: str, ctype: str, http: int, *, body: bytes | None = None, raw_base64: bytes | None = None, note: str = ""
) -> Case:
    return Case(name, ctype, body, raw_base64, http, None, None, None, None, (), note)


# --------------------------------------------------------------------------
# Byte-level helpers (container parsing and hand-made files)
# --------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"
MAGIC = {
    "image/png": (PNG_SIG,),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # plus b"WEBP" at offset 8
}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"}
AVIF_BRANDS = {b"avif", b"avis"}


def ftyp_brands(data: bytes) -> set[bytes]:
    """Major and compatible brands of a leading ISO-BMFF ftyp box (empty if there is none)."""
    if data[4:8] != b"ftyp":
        return set()
    end = min(struct.unpack(">I", data[:4])[0], len(data))
    return {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}


def has_magic(data: bytes, media_type: str) -> bool:
    """Whether ``data`` starts like a file of ``media_type`` (image/jpg = image/jpeg)."""
    media_type = "image/jpeg" if media_type == "image/jpg" else media_type
    if media_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if media_type == "image/avif":
        return bool(ftyp_brands(data) & AVIF_BRANDS)
    if media_type in ("image/heic", "image/heif"):  # AV1 inside makes it AVIF, whatever else it names
        return bool(ftyp_brands(data) & HEIF_BRANDS) and not ftyp_brands(data) & AVIF_BRANDS
    return any(data.startswith(m) for m in MAGIC.get(media_type, ()))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset of length field, offset just past CRC) for each chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], pos, pos + 12 + length))
        pos += 12 + length
    return out


def make_png(
    width: int,
    height: int,
    bit_depth: int,
    colour_type: int,
    raw: bytes,
    *,
    interlace: int = 0,
    extra: Iterable[bytes] = (),
) -> bytes:
    """Assemble a PNG from already filtered scanline data (``raw`` is deflated here)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return (
        PNG_SIG
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + png_chunk(b"IDAT", zlib.compress(raw, 9))
        + png_chunk(b"IEND", b"")
    )


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def adam7_png(img: Image.Image) -> bytes:
    """8-bit RGB PNG with Adam7 interlacing (Pillow cannot write interlaced PNG)."""
    img = img.convert("RGB")
    w, h = img.size
    px = img.tobytes()
    raw = bytearray()
    for x0, y0, dx, dy in _ADAM7:
        cols = range(x0, w, dx)
        if not cols:
            continue
        for y in range(y0, h, dy):
            raw.append(0)
            row = px[y * w * 3 : (y + 1) * w * 3]
            for x in cols:
                raw += row[x * 3 : x * 3 + 3]
    return make_png(w, h, 8, 2, bytes(raw), interlace=1)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of 0xFF, offset past the segment) up to and including the first SOS header."""
    out, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"not a marker at {pos}")
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((marker, pos, pos + 2 + length))
        pos += 2 + length
        if marker == 0xDA:
            break
    return out


def jpeg_first_scan(data: bytes) -> tuple[int, int]:
    """(start, end) of the entropy-coded data of the first scan."""
    start = jpeg_segments(data)[-1][2]
    pos = start
    while True:
        pos = data.index(b"\xff", pos)
        nxt = data[pos + 1]
        if nxt != 0x00 and not 0xD0 <= nxt <= 0xD7:
            return start, pos
        pos += 2


def jpeg_sof(data: bytes) -> tuple[int, int]:
    """(offset of the SOFn marker's 0xFF, marker byte)."""
    for marker, off, _ in jpeg_segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            return off, marker
    raise ValueError("no SOF")


def gif_blocks(data: bytes) -> list[tuple[str, int, int]]:
    """('header'|'ext'|'image'|'trailer', start, end) for each GIF block."""
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    out = [("header", 0, pos)]

    def sub_blocks(p: int) -> int:
        while data[p]:
            p += data[p] + 1
        return p + 1

    while pos < len(data):
        tag = data[pos]
        if tag == 0x3B:
            out.append(("trailer", pos, pos + 1))
            break
        if tag == 0x21:
            end = sub_blocks(pos + 2)
            out.append(("ext", pos, end))
        elif tag == 0x2C:
            lflags = data[pos + 9]
            p = pos + 10 + (3 * 2 ** ((lflags & 7) + 1) if lflags & 0x80 else 0)
            end = sub_blocks(p + 1)
            out.append(("image", pos, end))
        else:
            raise ValueError(f"bad GIF block 0x{tag:02x} at {pos}")
        pos = end
    return out


def webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, offset, end incl. padding) for each chunk inside the RIFF container."""
    out, pos = [], 12
    while pos + 8 <= len(data):
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        out.append((data[pos : pos + 4], pos, pos + 8 + size + (size & 1)))
        pos += 8 + size + (size & 1)
    return out


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind, off, _ = webp_chunks(data)[0]
    p = data[off + 8 :]
    if kind == b"VP8L":
        (bits,) = struct.unpack("<I", p[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", p[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8X":
        return int.from_bytes(p[4:7], "little") + 1, int.from_bytes(p[7:10], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    off, _ = jpeg_sof(data)
    h, w = struct.unpack(">HH", data[off + 5 : off + 9])
    return w, h


def ispe_offsets(data: bytes) -> list[int]:
    """Offsets of the width field of every HEIF `ispe` property (image spatial extents)."""
    out, pos = [], data.find(b"ispe")
    while pos >= 0:
        out.append(pos + 8)  # past the type and the FullBox version/flags
        pos = data.find(b"ispe", pos + 4)
    return out


def _heif_size(data: bytes) -> tuple[int, int] | None:
    """The first ispe; for a grid or an overlay (their data in `idat`, as libheif and heic_derived
    write it) the grid's output size or the overlay's canvas, whatever the ispe says."""
    idat = data.find(b"idat")
    if idat >= 0 and data[idat + 4] == 0 and (b"grid" in data or b"iovl" in data):
        at = idat + (8 if b"grid" in data else 14)  # past the version, flags and (grid) rows and columns
        wide = data[idat + 5] & 1
        return struct.unpack(">II" if wide else ">HH", data[at : at + (8 if wide else 4)])
    found = ispe_offsets(data)
    return struct.unpack(">II", data[found[0] : found[0] + 8]) if found else None


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def heic_tile(size: tuple[int, int]) -> tuple[bytes, bytes]:
    """The hvcC property box and the HEVC data of one real tile: a marked picture, by pillow-heif."""
    heic = _encode(marked(size), "HEIF", quality=50)
    at = heic.index(b"hvcC") - 4
    hvcc = heic[at : at + struct.unpack_from(">I", heic, at)[0]]
    at = heic.index(b"mdat") - 4
    return hvcc, heic[at + 8 : at + struct.unpack_from(">I", heic, at)[0]]


def heic_grid(
    rows: int, columns: int, output: tuple[int, int], *, ispe: tuple[int, int] | None = None,
    tile: tuple[int, int] = (64, 64), grid_in_idat: bool = True,
) -> bytes:
    """A HEIC whose primary item is a `grid` of rows x columns references to one real tile, built box
    by box: the ImageGrid in `idat` (else in `mdat` after the tile), the tile in `mdat`; the grid's
    ispe is `ispe` (default: output)."""
    grid = bytes([0, 0, rows - 1, columns - 1]) + struct.pack(">HH", *output)
    return heic_derived(b"grid", rows * columns, grid, ispe or output, tile=tile, data_in_idat=grid_in_idat)


def heic_derived(
    kind: bytes, inputs: int, structure: bytes, ispe: tuple[int, int], *, tile: tuple[int, int] = (64, 64),
    data_in_idat: bool = True,
) -> bytes:
    """A HEIC whose primary item (1) is a derived image of this kind (`grid`, `iovl`, `iden`) with
    this structure as its data, `inputs` references to one real tile (item 2), and this ispe."""
    hvcc, tile_data = heic_tile(tile)
    mdat = tile_data if data_in_idat else tile_data + structure
    properties = hvcc + _full_box(b"ispe", struct.pack(">II", *tile))
    properties += _full_box(b"ispe", struct.pack(">II", *ispe))
    # ipma: the derived image has property 3 (its ispe); the tile 1 (hvcC, essential) and 2 (its ispe)
    ipma = struct.pack(">IHBBHBBB", 2, 1, 1, 3, 2, 2, 0x81, 2)
    infe = _full_box(b"infe", struct.pack(">HH", 1, 0) + kind + b"\0", 2) + _full_box(
        b"infe", struct.pack(">HH", 2, 0) + b"hvc1\0", 2, flags=1  # a hidden item: only an input
    )

    def meta(data_at: int) -> bytes:
        iloc = struct.pack(">BBH", 0x44, 0, 2 if structure else 1)  # 4-byte offsets and lengths; items
        if structure and data_in_idat:  # construction method 1: an offset in idat
            iloc += struct.pack(">HHHHII", 1, 1, 0, 1, 0, len(structure))
        elif structure:  # method 0: an offset in the file
            iloc += struct.pack(">HHHHII", 1, 0, 0, 1, data_at + len(tile_data), len(structure))
        iloc += struct.pack(">HHHHII", 2, 0, 0, 1, data_at, len(tile_data))
        return _full_box(
            b"meta",
            _full_box(b"hdlr", bytes(4) + b"pict" + bytes(12) + b"\0")
            + _full_box(b"pitm", struct.pack(">H", 1))
            + _full_box(b"iloc", iloc, version=1)
            + _full_box(b"iinf", struct.pack(">H", 2) + infe)
            + _full_box(b"iref", _box(b"dimg", struct.pack(">HH", 1, inputs) + struct.pack(">H", 2) * inputs))
            + _box(b"iprp", _box(b"ipco", properties) + _full_box(b"ipma", ipma))
            + (_box(b"idat", structure) if structure and data_in_idat else b""),
        )

    ftyp = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic")
    data_at = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(data_at) + _box(b"mdat", mdat)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height a file's header declares (GIF: logical screen), without decoding; None if unknown."""
    readers: list[tuple[Callable[[bytes], bool], Callable[[bytes], tuple[int, int] | None]]] = [
        (lambda d: d.startswith(PNG_SIG) and d[12:16] == b"IHDR", lambda d: struct.unpack(">II", d[16:24])),
        (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), lambda d: struct.unpack("<HH", d[6:10])),
        (lambda d: d.startswith(b"\xff\xd8"), _jpeg_size),
        (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp_size),
        (lambda d: bool(ftyp_brands(d)), _heif_size),
    ]
    for matches, read in readers:
        if matches(data):
            try:
                return read(data)
            except (ValueError, IndexError, struct.error):
                return None
    return None


# --------------------------------------------------------------------------
# A tiny CMYK ICC profile (ICC v2 output profile, CMYK -> Lab lut8)
# --------------------------------------------------------------------------

def _lab_to_cmyk(lab: tuple[float, float, float]) -> tuple[float, float, float, float]:
    L, a, b = lab
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t: float) -> float:
        return t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)

    xyz = [finv(t) * w for t, w in zip((fx, fy, fz), D50, strict=True)]
    inv = inverse3(SRGB_D50)
    lin = [min(1.0, max(0.0, sum(m * c for m, c in zip(row, xyz, strict=True)))) for row in inv]
    rgb = [12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055 for c in lin]
    k = 1 - max(rgb)
    if k >= 1:
        return 0.0, 0.0, 0.0, 1.0
    c, m, y = ((1 - v - k) / (1 - k) for v in rgb)
    return c, m, y, k


def _lut8(inputs: int, outputs: int, grid: int, fn: Callable[[tuple[float, ...]], Sequence[float]]) -> bytes:
    ident = bytes(range(256))
    matrix = struct.pack(">9i", 65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
    clut = bytearray()
    for idx in range(grid**inputs):
        coords, rest = [], idx
        for _ in range(inputs):
            coords.append(rest % grid / (grid - 1))
            rest //= grid
        clut += bytes(min(255, max(0, round(v * 255))) for v in fn(tuple(reversed(coords))))
    return (
        b"mft1" + bytes(4) + bytes((inputs, outputs, grid, 0)) + matrix + ident * inputs + bytes(clut) + ident * outputs
    )


def _lab_bytes(lab: tuple[float, float, float]) -> tuple[float, float, float]:
    L, a, b = lab  # ICC v2 lut8 Lab encoding, returned as 0..1 for _lut8
    return L / 100, (a + 128) / 255, (b + 128) / 255


def cmyk_icc_profile() -> bytes:
    """A valid, small ICC v2 CMYK output profile modelling naive CMYK (C = 1 - R ...)."""

    def a2b(cmyk: tuple[float, ...]) -> Sequence[float]:
        c, m, y, k = cmyk
        return _lab_bytes(srgb_to_lab((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)))

    def b2a(lab01: tuple[float, ...]) -> Sequence[float]:
        return _lab_to_cmyk((lab01[0] * 100, lab01[1] * 255 - 128, lab01[2] * 255 - 128))

    text = b"Thumbnailify test CMYK (naive)"
    desc = (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(text) + 1)
        + text
        + b"\0"
        + bytes(8)
        + bytes(2)
        + bytes(1)
        + bytes(67)
    )
    cprt = b"text" + bytes(4) + b"No copyright, test data\0"
    wtpt = b"XYZ " + bytes(4) + struct.pack(">3i", *(round(v * 65536) for v in D50))
    tags = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", wtpt),
        (b"A2B0", _lut8(4, 3, 5, a2b)),
        (b"B2A0", _lut8(3, 4, 9, b2a)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blob = b"", b""
    for sig, data in tags:
        padded = data + bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(blob), len(padded))
        blob += padded
    size = offset + len(blob)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"prtr"
        + b"CMYK"
        + b"Lab "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)
        + struct.pack(">I", 0)
        + struct.pack(">3i", *(round(v * 65536) for v in D50))
        + bytes(4 + 16 + 28)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blob


# --------------------------------------------------------------------------
# Synthetic pictures
# --------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def marked(size: tuple[int, int], bg: RGB = BLUE) -> Image.Image:
    """``bg`` picture with a red block at the top-left and a green one at the top-right (40 % each way)."""
    w, h = size
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    bw, bh = max(1, w * 2 // 5), max(1, h * 2 // 5)
    d.rectangle((0, 0, bw - 1, bh - 1), fill=RED)
    d.rectangle((w - bw, 0, w - 1, bh - 1), fill=GREEN)
    return img


def marked_checks() -> tuple[Check, ...]:
    return (
        Corner("top-left", RED),
        Corner("top-right", GREEN),
        Corner("bottom-left", BLUE),
        Corner("bottom-right", BLUE),
    )


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


# Where the stored top-left (red) and top-right (green) blocks are displayed.
ORIENTATION_CORNERS: dict[int, tuple[Position, Position]] = {
    1: ("top-left", "top-right"),
    2: ("top-right", "top-left"),
    3: ("bottom-right", "bottom-left"),
    4: ("bottom-left", "bottom-right"),
    5: ("top-left", "bottom-left"),
    6: ("top-right", "bottom-right"),
    7: ("bottom-right", "top-right"),
    8: ("bottom-left", "top-left"),
}
_ALL_CORNERS: tuple[Position, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


def _exif(orientation: int | None = None, *, rich: bool = False) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if rich:
        exif[0x010F] = "ThumbnailifyCam"  # Make
        exif[0x0110] = "Model T"  # Model
        exif[0x0131] = "corpus.py"  # Software
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 30.0)}  # GPS IFD
    return exif.tobytes()


# --------------------------------------------------------------------------
# Case groups
# --------------------------------------------------------------------------


def _photo_cases(photos_dir: Path) -> list[Case]:
    """Each real photo as JPEG and PNG (and one as WebP): sizes and mean colour from the source."""
    cases: list[Case] = []
    files = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise FileNotFoundError(f"no photos in {photos_dir}")
    for path in files:
        data = path.read_bytes()
        src = Image.open(io.BytesIO(data))
        src.load()
        gray = src.mode == "L"
        r, g, b = (round(v) for v in ImageStat.Stat(src.convert("RGB")).mean)
        checks: list[Check] = [MeanColour((0, 0, 1, 1), (r, g, b), 15), NoExif()]
        if gray:
            checks.append(Grayscale(True))
        stem = path.stem.replace("_", "-")
        jpeg = data if src.format == "JPEG" else _encode(src, "JPEG", quality=90)
        png = data if src.format == "PNG" else _encode(src, "PNG", optimize=True)
        cases.append(_good(f"photo-{stem}-jpeg", "image/jpeg", jpeg, src.size, *checks))
        cases.append(_good(f"photo-{stem}-png", "image/png", png, src.size, BitDepth(8), *checks))
        if stem == "coffee":
            webp = _encode(src.convert("RGB"), "WEBP", quality=80, method=4)
            cases.append(_good(f"photo-{stem}-webp", "image/webp", webp, src.size, *checks))
    return cases


def _orientation_cases() -> list[Case]:
    """EXIF orientations 1-8 on a 160x120 JPEG with red/green blocks in the stored top corners."""
    cases = []
    base = marked((160, 120))
    for n, (red_at, green_at) in ORIENTATION_CORNERS.items():
        body = _encode(base, "JPEG", quality=95, subsampling=0, exif=_exif(n))
        size = (160, 120) if n <= 4 else (120, 160)
        checks: list[Check] = [Corner(red_at, RED), Corner(green_at, GREEN)]
        checks += [Corner(p, BLUE) for p in _ALL_CORNERS if p not in (red_at, green_at)]
        checks.append(NoExif())
        cases.append(_good(f"jpeg-exif-orientation-{n}", "image/jpeg", body, size, *checks))
    return cases


def _colour_model_cases() -> list[Case]:
    """CMYK, grayscale, 16-bit and alpha variants."""
    cases = []
    quad = {"top-left": RED, "top-right": GREEN, "bottom-left": BLUE, "bottom-right": WHITE}
    cmyk_of = {RED: (0, 255, 255, 0), GREEN: (255, 0, 255, 0), BLUE: (255, 255, 0, 0), WHITE: (0, 0, 0, 0)}
    cmyk = Image.new("CMYK", (160, 120))
    d = ImageDraw.Draw(cmyk)
    boxes = {
        "top-left": (0, 0, 79, 59),
        "top-right": (80, 0, 159, 59),
        "bottom-left": (0, 60, 79, 119),
        "bottom-right": (80, 60, 159, 119),
    }
    fracs = {
        "top-left": (0.1, 0.1, 0.4, 0.4),
        "top-right": (0.6, 0.1, 0.9, 0.4),
        "bottom-left": (0.1, 0.6, 0.4, 0.9),
        "bottom-right": (0.6, 0.6, 0.9, 0.9),
    }
    for pos, rgb in quad.items():
        d.rectangle(boxes[pos], fill=cmyk_of[rgb])
    quad_checks = tuple(MeanColour(fracs[p], rgb, 70) for p, rgb in quad.items())
    cases.append(
        _good("jpeg-cmyk-no-icc", "image/jpeg", _encode(cmyk, "JPEG", quality=95), (160, 120), *quad_checks, NoExif())
    )
    cases.append(
        _good(
            "jpeg-cmyk-with-icc",
            "image/jpeg",
            _encode(cmyk, "JPEG", quality=95, icc_profile=cmyk_icc_profile()),
            (160, 120),
            *quad_checks,
            NoExif(),
            note="hand-made ICC v2 CMYK profile modelling naive CMYK",
        )
    )

    gray = Image.new("L", (160, 120), 128)
    gd = ImageDraw.Draw(gray)
    gd.rectangle((0, 0, 63, 47), fill=0)
    gd.rectangle((96, 0, 159, 47), fill=255)
    gray_checks = (
        Grayscale(True),
        Corner("top-left", (0, 0, 0), 30),
        Corner("top-right", WHITE, 30),
        Corner("bottom-left", (128, 128, 128), 30),
    )
    cases.append(_good("jpeg-grayscale", "image/jpeg", _encode(gray, "JPEG", quality=95), (160, 120), *gray_checks))
    cases.append(_good("png-grayscale", "image/png", _encode(gray, "PNG"), (160, 120), *gray_checks, BitDepth(8)))

    # 16-bit RGB, hand-made (Pillow cannot write it): red block + gradients not representable in 8 bits.
    w, h = 160, 120
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            px = (65535, 0, 0) if x < 64 and y < 48 else (x * 409 % 65536, y * 546 % 65536, 40001)
            raw += struct.pack(">3H", *px)
    cases.append(
        _good(
            "png-16bit-rgb",
            "image/png",
            make_png(w, h, 16, 2, bytes(raw)),
            (w, h),
            Corner("top-left", RED),
            BitDepth(8),
        )
    )
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            opaque = 40 <= x < 120 and 30 <= y < 90
            raw += struct.pack(">4H", 65535, 0, 0, 65535) if opaque else struct.pack(">4H", 0, 0, 65535, 0)
    cases.append(
        _good(
            "png-16bit-rgba",
            "image/png",
            make_png(w, h, 16, 6, bytes(raw)),
            (w, h),
            HasAlpha(True),
            MeanColour((0.35, 0.35, 0.65, 0.65), RED),
            MeanAlpha((0.35, 0.35, 0.65, 0.65), 255),
            MeanAlpha((0, 0, 0.15, 0.15), 0),
            BitDepth(8),
        )
    )
    g16 = Image.new("I;16", (w, h))
    g16.putdata([65535 if x < 64 and y < 48 else (x * 397 + y * 11) % 65536 for y in range(h) for x in range(w)])
    cases.append(
        _good(
            "png-16bit-gray",
            "image/png",
            _encode(g16, "PNG"),
            (w, h),
            Grayscale(True),
            Corner("top-left", WHITE, 30),
            BitDepth(8),
        )
    )

    rgba = Image.new("RGBA", (200, 150), (0, 0, 0, 0))
    ad = ImageDraw.Draw(rgba)
    ad.rectangle((50, 37, 149, 112), fill=(255, 0, 0, 255))
    ad.rectangle((0, 0, 39, 29), fill=(0, 0, 255, 128))
    alpha_checks = (
        HasAlpha(True),
        MeanColour((0.35, 0.35, 0.65, 0.65), RED),
        MeanAlpha((0.35, 0.35, 0.65, 0.65), 255),
        MeanAlpha((0.85, 0.85, 1, 1), 0),
        MeanAlpha((0.02, 0.02, 0.15, 0.15), 128, 50),
    )
    cases.append(_good("png-rgba", "image/png", _encode(rgba, "PNG"), (200, 150), *alpha_checks, BitDepth(8)))
    cases.append(
        _good("webp-lossless-rgba", "image/webp", _encode(rgba, "WEBP", lossless=True), (200, 150), *alpha_checks)
    )

    la = Image.new("LA", (200, 150), (200, 0))
    ImageDraw.Draw(la).rectangle((50, 37, 149, 112), fill=(60, 255))
    cases.append(
        _good(
            "png-gray-alpha",
            "image/png",
            _encode(la, "PNG"),
            (200, 150),
            HasAlpha(True),
            Grayscale(True),
            MeanAlpha((0.35, 0.35, 0.65, 0.65), 255),
            MeanAlpha((0, 0, 0.15, 0.15), 0),
            MeanColour((0.35, 0.35, 0.65, 0.65), (60, 60, 60), 30),
            BitDepth(8),
        )
    )

    pal = Image.new("P", (200, 150), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    pd = ImageDraw.Draw(pal)
    pd.rectangle((50, 37, 149, 112), fill=1)
    pd.rectangle((160, 0, 199, 29), fill=2)
    pal_checks = (
        HasAlpha(True),
        MeanColour((0.35, 0.35, 0.65, 0.65), RED),
        MeanAlpha((0.35, 0.35, 0.65, 0.65), 255),
        MeanAlpha((0, 0.85, 0.15, 1), 0),
    )
    cases.append(
        _good(
            "png-palette-trns",
            "image/png",
            _encode(pal, "PNG", transparency=0),
            (200, 150),
            *pal_checks,
            Corner("top-right", GREEN),
        )
    )
    cases.append(
        _good(
            "gif-transparent", "image/gif", _encode(pal, "GIF", transparency=0), (200, 150), *pal_checks, FrameCount(1)
        )
    )
    return cases


def _encoding_cases() -> list[Case]:
    """Interlacing, progressive and chroma-subsampling variants, WebP, content-type alias, metadata."""
    img = marked((200, 150))
    mc = marked_checks()
    cases = [
        _good("png-interlaced-adam7", "image/png", adam7_png(img), img.size, *mc, BitDepth(8)),
        _good("jpeg-progressive", "image/jpeg", _encode(img, "JPEG", quality=90, progressive=True), img.size, *mc),
        _good("jpeg-baseline", "image/jpeg", _encode(img, "JPEG", quality=90), img.size, *mc),
    ]
    for sub, label in ((0, "444"), (1, "422"), (2, "420")):
        cases.append(
            _good(
                f"jpeg-subsampling-{label}",
                "image/jpeg",
                _encode(img, "JPEG", quality=90, subsampling=sub),
                img.size,
                *mc,
            )
        )
    cases.append(_good("webp-lossy", "image/webp", _encode(img, "WEBP", quality=90), img.size, *mc, HasAlpha(False)))
    cases.append(_good("png-rgb", "image/png", _encode(img, "PNG"), img.size, *mc, HasAlpha(False)))
    cases.append(_good("jpeg-as-image-jpg", "image/jpg", _encode(img, "JPEG", quality=90), img.size, *mc))
    rich = _encode(
        img,
        "JPEG",
        quality=90,
        exif=_exif(1, rich=True),
        comment=b"secret comment",
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>',
    )
    cases.append(_good("jpeg-exif-gps-comment-xmp", "image/jpeg", rich, img.size, *mc, NoMetadata()))
    return cases


def _size_cases() -> list[Case]:
    """Small, exact-fit, off-by-one and extreme aspect ratios; expected sizes from ``fit_size``."""
    cases = []
    for w, h in ((40, 30), (100, 100), (101, 100), (99, 101), (150, 100)):
        img = marked((w, h))
        cases.append(_good(f"png-{w}x{h}", "image/png", _encode(img, "PNG"), (w, h), *marked_checks()))
    for w, h in ((2000, 20), (20, 2000), (3000, 10)):
        img = Image.new("RGB", (w, h), RED)
        cases.append(
            _good(f"png-extreme-{w}x{h}", "image/png", _encode(img, "PNG"), (w, h), MeanColour((0, 0, 1, 1), RED, 30))
        )
    one = Image.new("RGB", (1, 1), RED)
    cases.append(_good("png-1x1", "image/png", _encode(one, "PNG"), (1, 1), MeanColour((0, 0, 1, 1), RED, 10)))
    cases.append(
        _good("jpeg-1x1", "image/jpeg", _encode(one, "JPEG", quality=95), (1, 1), MeanColour((0, 0, 1, 1), RED, 40))
    )
    cases.append(_good("gif-1x1", "image/gif", _encode(one, "GIF"), (1, 1), MeanColour((0, 0, 1, 1), RED, 10)))
    cases.append(
        _good(
            "jpeg-small-40x30", "image/jpeg", _encode(marked((40, 30)), "JPEG", quality=95), (40, 30), *marked_checks()
        )
    )
    return cases


ANIM_COLOURS: tuple[RGB, ...] = (RED, GREEN, BLUE, YELLOW, MAGENTA)


def animated_gif() -> bytes:
    """5 full-canvas frames of distinct colours, 200x150, looping."""
    frames = [Image.new("RGB", (200, 150), c) for c in ANIM_COLOURS]
    for i, f in enumerate(frames):
        ImageDraw.Draw(f).rectangle((0, 0, 19, 14), fill=WHITE if i % 2 else (0, 0, 0))
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def partial_frame_gif() -> bytes:
    """Red 200x150 canvas; frames 2-5 only repaint an 80x60 centre patch (Pillow crops them)."""
    frames = []
    for c in ANIM_COLOURS:
        f = Image.new("RGB", (200, 150), RED)
        if c != RED:
            ImageDraw.Draw(f).rectangle((60, 45, 139, 104), fill=c)
        frames.append(f)
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0, disposal=1)


def noisy_gif(seed: int = 7) -> bytes:
    """3-frame 160x120 GIF of noise, so the LZW data is large enough to cut in meaningful places."""
    frames = [_noise((160, 120), seed + i).quantize(64) for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _animation_cases() -> list[Case]:
    centre = (0.4, 0.4, 0.6, 0.6)
    return [
        _good(
            "gif-animated-5-frames",
            "image/gif",
            animated_gif(),
            (200, 150),
            FrameCount(5),
            FrameMeanColours(centre, ANIM_COLOURS),
        ),
        _good(
            "gif-animated-partial-frames",
            "image/gif",
            partial_frame_gif(),
            (200, 150),
            FrameCount(5),
            FrameMeanColours(centre, ANIM_COLOURS),
            FrameMeanColours((0, 0, 0.1, 0.1), (RED,) * 5),
            FrameMeanColours((0.9, 0.9, 1, 1), (RED,) * 5),
        ),
        _good(
            "gif-static", "image/gif", _encode(marked((200, 150)), "GIF"), (200, 150), FrameCount(1), *marked_checks()
        ),
    ]


def _base64_cases(png: bytes) -> list[Case]:
    """Malformed base64 is rejected at POST with 400 (strict RFC 4648 standard alphabet, padded)."""
    if len(png) % 3 == 0:  # add a tEXt chunk (20 + n bytes) so the base64 needs padding
        n = next(n for n in (1, 2, 3) if (len(png) + 20 + n) % 3)
        png = png[:-12] + png_chunk(b"tEXt", b"Comment\0" + b"x" * n) + png[-12:]
    good = base64.b64encode(png)
    assert len(png) % 3 != 0 and good.endswith(b"="), "need a body whose base64 has padding"
    assert b"+" in good or b"/" in good, "need a body whose base64 differs in the URL-safe alphabet"
    mid = len(good) // 2
    return [
        _refused("base64-empty-body", "image/png", 400, raw_base64=b""),
        _refused("base64-whitespace-only", "image/png", 400, raw_base64=b"  \r\n\t  \n"),
        _refused("base64-invalid-chars", "image/png", 400, raw_base64=good[:mid] + b"!*$%" + good[mid:]),
        _refused("base64-missing-padding", "image/png", 400, raw_base64=good.rstrip(b"=")),
        _refused("base64-urlsafe-alphabet", "image/png", 400, raw_base64=base64.urlsafe_b64encode(png)),
        _refused(
            "base64-data-url-prefix",
            "image/png",
            400,
            raw_base64=b"data:image/png;base64," + good,
            note="a data: URL is not a base64 body; ':' ';' ',' are outside the alphabet",
        ),
    ]


SVG_REMOTE = (
    b'<?xml version="1.0" standalone="no"?>\n'
    b'<svg width="640px" height="480px" version="1.1" xmlns="http://www.w3.org/2000/svg" '
    b'xmlns:xlink="http://www.w3.org/1999/xlink">\n'
    b'<image xlink:href="https://example.com/x.png" x="0" y="0" height="640px" width="480px"/>\n'
    b'<rect width="10" height="10" style="fill:url(https://example.com/p.svg#f)"/>\n'
    b"</svg>\n"
)
MVG_REMOTE = (
    b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://example.com/image.jpg)'\npop graphic-context\n"
)
POSTSCRIPT = (
    b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 100 100\n"
    b"newpath 0 0 moveto 100 100 lineto stroke\n(/etc/passwd) (r) file pop\nshowpage\n%%EOF\n"
)


def _type_cases(png: bytes, jpeg: bytes, gif: bytes, webp: bytes) -> list[Case]:
    """Content-Type outside the allow-list, or body magic not matching it: 415 at POST."""
    tiff = _encode(marked((40, 30)), "TIFF")
    bmp = _encode(marked((40, 30)), "BMP")
    rnd = random.Random(1234).randbytes(4096)
    return [
        _refused("random-bytes-as-png", "image/png", 415, body=rnd),
        _refused("png-as-jpeg", "image/jpeg", 415, body=png),
        _refused("jpeg-as-gif", "image/gif", 415, body=jpeg),
        _refused("gif-as-png", "image/png", 415, body=gif),
        _refused("webp-as-jpeg", "image/jpeg", 415, body=webp),
        _refused("jpeg-as-webp", "image/webp", 415, body=jpeg),
        _refused("riff-not-webp-as-webp", "image/webp", 415, body=b"RIFF" + struct.pack("<I", 4) + b"WAVE"),
        _refused("tiff-as-image-tiff", "image/tiff", 415, body=tiff),
        _refused("bmp-as-image-bmp", "image/bmp", 415, body=bmp),
        _refused("svg-as-image-svg", "image/svg+xml", 415, body=SVG_REMOTE),
        _refused("text-plain", "text/plain", 415, body=b"hello, this is not an image\n"),
        _refused("png-as-octet-stream", "application/octet-stream", 415, body=png),
        _refused("svg-remote-href-as-png", "image/png", 415, body=SVG_REMOTE),
        _refused("mvg-remote-url-as-png", "image/png", 415, body=MVG_REMOTE),
        _refused("postscript-as-jpeg", "image/jpeg", 415, body=POSTSCRIPT),
        _refused("mvg-as-gif", "image/gif", 415, body=MVG_REMOTE),
    ]


def _truncated_cases(jpeg: bytes, png: bytes, gif: bytes, webp: bytes) -> list[Case]:
    """Files cut where decoding cannot succeed: accepted (magic fine), then Error 422."""
    cases = []
    progressive = _encode(Image.open(io.BytesIO(jpeg)), "JPEG", quality=90, progressive=True)
    sos = jpeg_segments(jpeg)[-1]
    scan_start, scan_end = sos[2], len(jpeg) - 2  # baseline: one scan up to EOI
    cases.append(_worker_error("jpeg-truncated-headers-only", "image/jpeg", jpeg[: sos[1]], 422))
    for pct in (50, 90):
        cut = scan_start + (scan_end - scan_start) * pct // 100
        cases.append(
            _worker_error(
                f"jpeg-truncated-scan-{pct}pct",
                "image/jpeg",
                jpeg[:cut],
                422,
                note="ImageMagick only warns (CorruptImageWarning)",
            )
        )
    p0, p1 = jpeg_first_scan(progressive)
    cases.append(
        _worker_error(
            "jpeg-progressive-truncated-first-scan",
            "image/jpeg",
            progressive[: (p0 + p1) // 2],
            422,
            note="ImageMagick only warns (CorruptImageWarning)",
        )
    )

    chunks = png_chunks(png)
    ihdr_end = chunks[0][2]
    idats = [c for c in chunks if c[0] == b"IDAT"]
    idat_start, idat_end = idats[0][1] + 8, idats[-1][2] - 4
    cases.append(_worker_error("png-truncated-after-ihdr", "image/png", png[:ihdr_end], 422))
    cases.append(_worker_error("png-signature-only", "image/png", PNG_SIG, 422))
    for pct in (50, 90):
        cut = idat_start + (idat_end - idat_start) * pct // 100
        cases.append(_worker_error(f"png-truncated-idat-{pct}pct", "image/png", png[:cut], 422))

    blocks = gif_blocks(gif)
    images = [b for b in blocks if b[0] == "image"]
    cases.append(_worker_error("gif-truncated-after-header", "image/gif", gif[: blocks[0][2]], 422))
    for label, (_, start, end) in (("first-frame", images[0]), ("second-frame", images[1])):
        cases.append(_worker_error(f"gif-truncated-{label}-50pct", "image/gif", gif[: (start + end) // 2], 422))
    last = images[-1]
    cases.append(
        _worker_error(
            "gif-truncated-last-frame-90pct", "image/gif", gif[: last[1] + (last[2] - last[1]) * 9 // 10], 422
        )
    )

    chunk = webp_chunks(webp)[0]
    cases.append(_worker_error("webp-truncated-after-riff-header", "image/webp", webp[:12], 422))
    for pct in (50, 90):
        cut = chunk[1] + 8 + (chunk[2] - chunk[1] - 8) * pct // 100
        cases.append(_worker_error(f"webp-truncated-{pct}pct", "image/webp", webp[:cut], 422))
    return cases


def _corrupt_cases(jpeg: bytes, png: bytes, gif: bytes, webp: bytes) -> list[Case]:
    """Single-point corruptions whose failure is certain: accepted, then Error 422."""
    cases = []
    b = bytearray(png)
    b[29] ^= 0xFF  # first byte of the IHDR CRC (8 sig + 8 len/type + 13 data)
    cases.append(_worker_error("png-ihdr-bad-crc", "image/png", bytes(b), 422))
    idat = next(c for c in png_chunks(png) if c[0] == b"IDAT")
    b = bytearray(png)
    b[idat[2] - 1] ^= 0xFF
    cases.append(_worker_error("png-idat-bad-crc", "image/png", bytes(b), 422))
    # zlib stream garbled in the middle, CRC recomputed so only inflate can notice.
    data = bytearray(png[idat[1] + 8 : idat[2] - 4])
    rnd = random.Random(99)
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] = rnd.randrange(256)
    cases.append(
        _worker_error(
            "png-idat-zlib-garbage", "image/png", png[: idat[1]] + png_chunk(b"IDAT", bytes(data)) + png[idat[2] :], 422
        )
    )
    cases.append(_worker_error("png-magic-then-svg", "image/png", PNG_SIG + SVG_REMOTE, 422))

    sof, _ = jpeg_sof(jpeg)
    b = bytearray(jpeg)
    b[sof : sof + 2] = b"\x00\x00"
    cases.append(_worker_error("jpeg-sof-marker-destroyed", "image/jpeg", bytes(b), 422))
    b = bytearray(jpeg)
    b[sof + 5 : sof + 7] = b"\x00\x00"  # SOF height = 0 (DNL) which libjpeg rejects
    cases.append(_worker_error("jpeg-sof-height-zero", "image/jpeg", bytes(b), 422))
    dht = next(s for s in jpeg_segments(jpeg) if s[0] == 0xC4)
    b = bytearray(jpeg)
    b[dht[1] + 5 : dht[1] + 21] = b"\xff" * 16  # code-length counts sum far beyond 256
    cases.append(_worker_error("jpeg-dht-bogus", "image/jpeg", bytes(b), 422))
    cases.append(
        _worker_error("jpeg-magic-then-garbage", "image/jpeg", b"\xff\xd8\xff" + random.Random(5).randbytes(2048), 422)
    )

    img = next(b for b in gif_blocks(gif) if b[0] == "image")
    lzw_at = img[1] + 10 + (3 * 2 ** ((gif[img[1] + 9] & 7) + 1) if gif[img[1] + 9] & 0x80 else 0)
    b = bytearray(gif)
    b[lzw_at] = 0x0F  # LZW minimum code size 15 (> 12 is impossible)
    cases.append(_worker_error("gif-bad-lzw-code-size", "image/gif", bytes(b), 422))

    chunk = webp_chunks(webp)[0]
    b = bytearray(webp)
    payload = chunk[1] + 8
    b[payload + 3 : payload + 6] = b"\x00\x00\x00"  # VP8 key-frame start code 9d 01 2a destroyed
    cases.append(_worker_error("webp-vp8-bad-start-code", "image/webp", bytes(b), 422))
    return cases


def _huge_cases() -> list[Case]:
    """Headers declaring more pixels than allowed: Error 413 (refused from the header); and a >20 MiB body."""
    cases = []
    tiny_idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    cases.append(
        _worker_error(
            "png-ihdr-100000x100000",
            "image/png",
            PNG_SIG + png_chunk(b"IHDR", ihdr) + tiny_idat + png_chunk(b"IEND", b""),
            413,
        )
    )
    w, h = 10_000, 5_001  # 50,010,000 px: just over the limit, and a fully valid 1-bit PNG (~10 KB)
    row = b"\x00" + b"\x00" * ((w + 7) // 8)
    cases.append(_worker_error("png-10000x5001-just-over-limit", "image/png", make_png(w, h, 1, 0, row * h), 413))
    cases.append(
        _good(
            "png-10000x5000-at-limit",
            "image/png",
            make_png(w, 5_000, 1, 0, row * 5_000),
            (w, 5_000),
            MeanColour((0, 0, 1, 1), (0, 0, 0), 10),
            note="exactly max_pixels_default(): allowed; ImageMagick needs ~3 s and ~400 MB",
        )
    )

    small = _encode(marked((16, 16)), "JPEG", quality=90)
    sof, _ = jpeg_sof(small)
    b = bytearray(small)
    b[sof + 5 : sof + 9] = struct.pack(">HH", 65_000, 65_000)
    cases.append(_worker_error("jpeg-sof-65000x65000", "image/jpeg", bytes(b), 413))

    g = bytearray(_encode(marked((10, 10)), "GIF"))
    g[6:10] = struct.pack("<HH", 65_535, 65_535)
    cases.append(
        _worker_error(
            "gif-screen-65535x65535",
            "image/gif",
            bytes(g),
            413,
            note="frame is 10x10; the logical screen (canvas) is 4.3 GP",
        )
    )

    # A valid 16x16 lossless WebP whose VP8L header is patched to 16384x16384 (the format's maximum).
    webp = bytearray(_encode(marked((16, 16)), "WEBP", lossless=True))
    vp8l = webp_chunks(bytes(webp))[0]
    assert vp8l[0] == b"VP8L"
    at = vp8l[1] + 9  # past fourcc, size and the 0x2f signature byte
    (bits,) = struct.unpack("<I", webp[at : at + 4])
    bits = (bits & ~0x0FFFFFFF) | (16384 - 1) | ((16384 - 1) << 14)
    webp[at : at + 4] = struct.pack("<I", bits)
    cases.append(
        _worker_error(
            "webp-vp8l-16384x16384",
            "image/webp",
            bytes(webp),
            413,
            note="ImageMagick cannot ping WebP without decoding; parse the VP8L header",
        )
    )

    cases.append(
        _refused(
            "body-over-20mib",
            "image/png",
            413,
            body=PNG_SIG + bytes(MAX_UPLOAD_BYTES + 1 - len(PNG_SIG)),
            note="decoded size is 20 MiB + 1 byte",
        )
    )
    return cases


# --------------------------------------------------------------------------
# Phone photos: HEIC/HEIF/AVIF, wide-gamut profiles, long animations (issue 10)
# --------------------------------------------------------------------------

# Flat patches, each authored in sRGB; converted into a wide-gamut profile's numbers they differ
# from sRGB by a CIEDE2000 of 3.5 or more even for Display P3, so a thumbnail that ignores the
# profile fails its ΔE check.
PATCHES: dict[tuple[float, float, float, float], RGB] = {
    (0.1, 0.1, 0.4, 0.4): (230, 30, 30),
    (0.6, 0.1, 0.9, 0.4): (40, 190, 60),
    (0.1, 0.6, 0.4, 0.9): (20, 180, 180),
    (0.6, 0.6, 0.9, 0.9): (240, 140, 30),
}


def wide_gamut_profiles() -> dict[str, bytes]:
    """Display P3 (hand-made, see tests/colour.py), Adobe RGB and ProPhoto (colord-data)."""
    return {
        "display-p3": display_p3_profile(),
        "adobe-rgb": (ICC_DIR / "AdobeRGB1998.icc").read_bytes(),
        "prophoto": (ICC_DIR / "ProPhotoRGB.icc").read_bytes(),
    }


def patches(size: tuple[int, int] = (240, 180)) -> Image.Image:
    """Four flat quadrants of the PATCHES colours, in sRGB."""
    w, h = size
    img = Image.new("RGB", size)
    d = ImageDraw.Draw(img)
    for (x0, y0, _, _), rgb in PATCHES.items():
        left, top = w // 2 if x0 > 0.5 else 0, h // 2 if y0 > 0.5 else 0
        d.rectangle((left, top, left + w // 2 - 1, top + h // 2 - 1), fill=rgb)
    return img


def in_profile(img: Image.Image, icc: bytes) -> Image.Image:
    """The same colours as numbers of another RGB profile (relative colorimetric, LittleCMS)."""
    target = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), target, "RGB", "RGB", renderingIntent=1)
    return ImageCms.applyTransform(img, transform)


def patch_checks() -> tuple[Check, ...]:
    return (*(DeltaE(box, rgb) for box, rgb in PATCHES.items()), NoIccProfile())


def _colour_profile_cases() -> list[Case]:
    """Flat patches tagged with wide-gamut profiles: converted to sRGB within ΔE 3, profile gone."""
    cases = []
    img = patches()
    for label, icc in wide_gamut_profiles().items():
        tagged = in_profile(img, icc)
        bodies = {
            "jpeg": _encode(tagged, "JPEG", quality=95, subsampling=0, icc_profile=icc),
            "png": _encode(tagged, "PNG", icc_profile=icc),
            "webp": _encode(tagged, "WEBP", quality=95, icc_profile=icc),
        }
        for ext, body in bodies.items():
            ctype = f"image/{ext}"
            cases.append(_good(f"{ext}-{label}", ctype, body, img.size, *patch_checks()))
    p3 = display_p3_profile()
    tagged = in_profile(img, p3)
    cases.append(
        _good(
            "heic-display-p3",
            "image/heic",
            _encode(tagged, "HEIF", quality=95, icc_profile=p3),
            img.size,
            *patch_checks(),
            out_type="image/jpeg",
            note="as an iPhone writes them: HEVC, Display P3 profile",
        )
    )
    cases.append(
        _good(
            "avif-display-p3",
            "image/avif",
            _encode(tagged, "AVIF", quality=95, icc_profile=p3),
            img.size,
            *patch_checks(),
        )
    )
    cases.append(
        _good(
            "jpeg-icc-garbage",
            "image/jpeg",
            _encode(img, "JPEG", quality=95, subsampling=0, icc_profile=b"\0\0\1\0not a profile" * 8),
            img.size,
            *patch_checks(),
            note="a profile LittleCMS cannot open: colours taken as sRGB",
        )
    )
    return cases


def _exif_orientation_6_without_irot(heic: bytes) -> bytes:
    """A HEIC whose EXIF says "rotate 90" while the file has no irot: HEIF readers must ignore it."""
    entry = b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x01"  # Orientation, SHORT, 1, value 1 (big-endian)
    assert heic.count(entry) == 1 and b"irot" not in heic
    return heic.replace(entry, entry[:-2] + b"\x00\x06")


def _heif_cases(photos_dir: Path) -> list[Case]:
    """HEIC, HEIF and AVIF: photos, orientation by irot/imir, transparency."""
    cases = []
    photo = Image.open(photos_dir / "coffee.jpg").convert("RGB")
    mean = tuple(round(v) for v in ImageStat.Stat(photo).mean)
    photo_checks = (MeanColour((0, 0, 1, 1), mean, 15), NoExif())  # type: ignore[arg-type]
    heic = _encode(photo, "HEIF", quality=80)
    cases.append(_good("heic-photo", "image/heic", heic, photo.size, *photo_checks, out_type="image/jpeg"))
    cases.append(_good("heif-photo", "image/heif", heic, photo.size, *photo_checks, out_type="image/jpeg"))
    cases.append(_good("avif-photo", "image/avif", _encode(photo, "AVIF", quality=80), photo.size, *photo_checks))

    base = marked((160, 120))
    for n in (2, 3, 5, 6, 8):
        red_at, green_at = ORIENTATION_CORNERS[n]
        checks: list[Check] = [Corner(red_at, RED), Corner(green_at, GREEN)]
        checks += [Corner(p, BLUE) for p in _ALL_CORNERS if p not in (red_at, green_at)]
        size = (160, 120) if n <= 4 else (120, 160)
        body = _encode(base, "HEIF", quality=90, exif=_exif(n))  # pillow-heif writes irot/imir for it
        cases.append(_good(f"heic-orientation-{n}", "image/heic", body, size, *checks, NoExif(), out_type="image/jpeg"))
        if n in (5, 6):
            body = _encode(base, "AVIF", quality=90, exif=_exif(n))
            cases.append(_good(f"avif-orientation-{n}", "image/avif", body, size, *checks))
    cases.append(
        _good(
            "heic-exif-orientation-without-irot",
            "image/heic",
            _exif_orientation_6_without_irot(_encode(base, "HEIF", quality=90, exif=_exif(1, rich=True))),
            (160, 120),
            *marked_checks(),
            NoExif(),
            out_type="image/jpeg",
            note="HEIF orientation is irot/imir only; an EXIF Orientation tag is ignored",
        )
    )
    rgba = Image.new("RGBA", (200, 150), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((50, 37, 149, 112), fill=(255, 0, 0, 255))
    cases.append(
        _good(
            "heic-with-alpha",
            "image/heic",
            _encode(rgba, "HEIF", quality=90),
            rgba.size,
            HasAlpha(True),
            MeanColour((0.35, 0.35, 0.65, 0.65), RED),
            MeanAlpha((0.35, 0.35, 0.65, 0.65), 255),
            MeanAlpha((0, 0, 0.2, 0.2), 0, 10),
            MeanAlpha((0.85, 0.85, 1, 1), 0, 10),
            out_type="image/png",
            note="decoded by pillow-heif's libheif, alpha plane kept: a PNG thumbnail",
        )
    )
    cases.append(
        _good(
            "avif-with-alpha",
            "image/avif",
            _encode(rgba, "AVIF", quality=90),
            rgba.size,
            MeanColour((0.35, 0.35, 0.65, 0.65), RED),
            note="ImageMagick 6.9.11's AVIF reader decodes the colour planes only: opaque",
        )
    )
    cases.append(
        _good(
            "heic-grid-tiles",
            "image/heic",
            _encode(marked((256, 192)), "HEIF", quality=90, tile_size=64),
            (256, 192),
            *marked_checks(),
            out_type="image/jpeg",
            note="a 4x3 grid of 64x64 tiles, as an iPhone writes 512x512 ones",
        )
    )
    cases.append(
        _good(
            "heic-grid-one-tile-repeated",
            "image/heic",
            heic_grid(2, 2, (128, 128)),
            (128, 128),
            MeanColour((0.3, 0.3, 0.45, 0.45), BLUE),
            out_type="image/jpeg",
            note="hand-made: 2x2 references to one 64x64 tile, ispe right",
        )
    )
    return cases


def _patch_ispe(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    for at in ispe_offsets(data):
        struct.pack_into(">II", out, at, width, height)
    return bytes(out)


def _heif_hostile_cases() -> list[Case]:
    """Broken or lying HEIF/AVIF containers: a clear 415 at POST, or Error 413/422."""
    heic = _encode(marked((160, 120)), "HEIF", quality=90)
    avif = _encode(marked((160, 120)), "AVIF", quality=90)
    jpeg = _encode(marked((160, 120)), "JPEG", quality=90)
    cases = []
    for ext, body in (("heic", heic), ("avif", avif)):
        mdat = body.index(b"mdat") - 4
        meta = body.index(b"meta") - 4
        cases.append(_worker_error(f"{ext}-truncated-in-mdat", f"image/{ext}", body[: (mdat + len(body)) // 2], 422))
        cases.append(_worker_error(f"{ext}-truncated-in-meta", f"image/{ext}", body[: meta + 40], 422))
        cases.append(
            _worker_error(
                f"{ext}-ispe-40000x40000",
                f"image/{ext}",
                _patch_ispe(body, 40_000, 40_000),
                413,
                note="1.6 GP declared by the primary item's ispe: refused before any decode",
            )
        )
    for side in (16, 32):
        cases.append(
            _worker_error(
                f"heic-grid-{side}x{side}-tiles-ispe-100x100",
                "image/heic",
                heic_grid(side, side, (512 * side, 512 * side), ispe=(100, 100), tile=(512, 512)),
                413,
                note=f"~1 KB: {side * side} references to one 512x512 tile, {512 * side}x{512 * side} "
                "whatever its ispe says: refused from the grid's structure before any decode",
            )
        )
    cases.append(
        _worker_error(
            "heic-bitstream-1024x1024-ispe-100x100",
            "image/heic",
            _patch_ispe(_encode(Image.new("RGB", (1024, 1024), (9, 9, 9)), "HEIF", quality=50), 100, 100),
            422,
            note="a coded image larger than its ispe: libheif 1.23 refuses it before decoding (security limit)",
        )
    )
    cases.append(
        _worker_error(
            "heic-overlay-8192x8192-ispe-100x100",
            "image/heic",
            heic_derived(b"iovl", 1, bytes(10) + struct.pack(">HHhh", 8192, 8192, 0, 0), (100, 100)),
            413,
            note="an overlay's canvas (iovl) is its size too, whatever its ispe says",
        )
    )
    cases.append(
        _worker_error(
            "heic-grid-ispe-disagrees",
            "image/heic",
            heic_grid(2, 2, (120, 100), ispe=(100, 100)),
            422,
            note="a grid that fits the limit but is not the size its ispe says (libheif refuses it)",
        )
    )
    ftyp_end = struct.unpack(">I", heic[:4])[0]
    cases.append(
        _worker_error(
            "heic-ftyp-then-garbage", "image/heic", heic[:ftyp_end] + random.Random(10).randbytes(4096), 422
        )
    )
    mp4 = struct.pack(">I", 24) + b"ftypmp42" + bytes(4) + b"isommp42" + bytes(64)
    cases += [
        _refused("heic-as-jpeg", "image/jpeg", 415, body=heic),
        _refused("jpeg-as-heic", "image/heic", 415, body=jpeg),
        _refused("avif-as-heic", "image/heic", 415, body=avif),
        _refused("heic-as-avif", "image/avif", 415, body=heic),
        _refused("mp4-ftyp-as-heif", "image/heif", 415, body=mp4, note="ISO-BMFF, but no HEIF brand"),
    ]
    return cases


def long_gif(frames: int = 20, size: tuple[int, int] = (1000, 1000)) -> bytes:
    """Full-canvas frames of distinct colours: frames x canvas is 2.5x limits.max_animation_pixels."""
    colours = [ANIM_COLOURS[i % len(ANIM_COLOURS)] for i in range(frames)]
    images = [Image.new("RGB", size, c) for c in colours]
    for i, img in enumerate(images):  # a corner block per frame, so no frame is dropped as a duplicate
        ImageDraw.Draw(img).rectangle((0, 0, 9 + i, 9), fill=WHITE)
    return _encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def _long_animation_cases() -> list[Case]:
    return [
        _good(
            "gif-animated-over-frame-budget",
            "image/gif",
            long_gif(),
            (1000, 1000),
            FrameCount(8),
            FrameMeanColours((0.3, 0.3, 0.7, 0.7), tuple(ANIM_COLOURS[i % 5] for i in range(8))),
            note="20 frames of 1000x1000: the first 8 fit in limits.max_animation_pixels (8 M)",
        )
    ]


def build_cases(photos_dir: Path = PHOTOS_DIR) -> list[Case]:
    """Every case, in a fixed order, generated deterministically."""
    photos = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    jpeg_src = next(p for p in photos if p.suffix.lower() == ".jpg").read_bytes()
    png_photo = Image.open(next(p for p in photos if p.suffix.lower() == ".png"))
    png_src = _encode(png_photo.convert("RGB"), "PNG")
    webp_src = _encode(Image.open(io.BytesIO(jpeg_src)).convert("RGB"), "WEBP", quality=80)
    gif_src = noisy_gif()
    small_png = _encode(marked((40, 30)), "PNG")
    small_jpeg = _encode(marked((40, 30)), "JPEG", quality=90)
    small_gif = _encode(marked((40, 30)), "GIF")
    small_webp = _encode(marked((40, 30)), "WEBP")
    cases = (
        _photo_cases(photos_dir)
        + _orientation_cases()
        + _colour_model_cases()
        + _encoding_cases()
        + _size_cases()
        + _animation_cases()
        + _base64_cases(small_png)
        + _type_cases(small_png, small_jpeg, small_gif, small_webp)
        + _truncated_cases(jpeg_src, png_src, gif_src, webp_src)
        + _corrupt_cases(jpeg_src, png_src, gif_src, webp_src)
        + _huge_cases()
        + _colour_profile_cases()
        + _heif_cases(photos_dir)
        + _heif_hostile_cases()
        + _long_animation_cases()
    )
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate case names: {sorted(dupes)}")
    return cases


_EXT = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
    "image/tiff": "tiff",
    "image/bmp": "bmp",
    "image/svg+xml": "svg",
    "text/plain": "txt",
}


CACHE_DIR = PHOTOS_DIR.parents[2] / "var" / "test-cache"  # var/ is the checkout's scratch, `make clean` empties it


def corpus_key(photos_dir: Path) -> str:
    """What the generated bytes depend on: this generator, the colour code, the photos, the encoders."""
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(__file__).with_name("colour.py"), *sorted(photos_dir.iterdir())):
        digest.update(source.name.encode() + source.read_bytes())
    for dist in ("pillow", "pillow-heif"):
        digest.update(metadata.version(dist).encode())
    return digest.hexdigest()[:16]


@functools.cache
def cached_cases(photos_dir: Path = PHOTOS_DIR) -> tuple[Case, ...]:
    """`build_cases` once per run: the corpus takes seconds of encoding, and every test process (the
    unit tests, the system tests' parametrisation, `write_corpus`) reads the same one. The first
    process builds it under a lock and keeps it in var/test-cache; the others wait and load it.
    (`test_generation_is_deterministic` builds it afresh and compares.)"""
    path = CACHE_DIR / f"corpus-{corpus_key(photos_dir)}.pickle"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return pickle.loads(path.read_bytes())
        cases = tuple(build_cases(photos_dir))
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(cases))
        partial.replace(path)
        return cases


def write_corpus(out_dir: Path, photos_dir: Path = PHOTOS_DIR) -> Path:
    """Write every case's bytes and a ``manifest.json`` into ``out_dir``; returns the manifest path.

    ``body`` cases are written raw as ``<name>.<ext>``; ``raw_base64`` cases as
    ``<name>.b64`` (exactly the bytes to POST).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in cached_cases(photos_dir):
        if case.body is not None:
            fname = f"{case.name}.{_EXT.get(case.content_type, 'bin')}"
            (out_dir / fname).write_bytes(case.body)
        else:
            fname = f"{case.name}.b64"
            (out_dir / fname).write_bytes(case.raw_base64 or b"")
        entry = {k: v for k, v in asdict(case).items() if k not in ("body", "raw_base64", "checks")}
        entry["file"] = fname
        entry["is_raw_base64"] = case.raw_base64 is not None
        entry["checks"] = [{"type": type(c).__name__, **asdict(c)} for c in case.checks]
        manifest.append(entry)
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def write_noisy_jpeg(path: Path, size: tuple[int, int] = (4000, 3000), sigma: float = 24, quality: int = 90) -> Path:
    """A JPEG of a phone photo's size and weight, for uploads that must span several pieces:
    noise keeps it at several MB, as a real one is, where a flat picture would shrink to kilobytes."""
    buffer = io.BytesIO()
    Image.effect_noise(size, sigma).convert("RGB").save(buffer, "JPEG", quality=quality)
    path.write_bytes(buffer.getvalue())
    return path
