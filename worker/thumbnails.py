"""Thumbnails with Wand (ImageMagick): fit the box, keep the aspect, never enlarge, same format.

`ThumbHandler.make` dispatches on the media's main type (`image/...` today), so a new kind of
media is one new `_make_<kind>` method. Every refusal is an `ImageRejected` with the HTTP-style
code the state record keeps: 413 too many pixels, 415 not a format we read, 422 cannot decode.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from pathlib import Path

import imagesize
from wand.api import libmagick, library
from wand.exceptions import MissingDelegateError, PolicyError, ResourceLimitError, WandException
from wand.image import COLORSPACE_TYPES, BaseImage, Image
from wand.resource import limits

from common import state
from common.config import LimitsSettings, ThumbnailSettings, byte_size
from common.media import GIF, JPEG, SNIFF_BYTES, MediaType, sniff

KEEP_COLORSPACES = frozenset({"srgb", "gray", "undefined"})
CORRUPT_IMAGE_WARNING = 325  # MagickCore's ExceptionType value


class _ExceptionInfo(ctypes.Structure):
    """The leading fields of MagickCore's ExceptionInfo."""

    _fields_ = (
        ("severity", ctypes.c_int),
        ("error_number", ctypes.c_int),
        ("reason", ctypes.c_char_p),
        ("description", ctypes.c_char_p),
    )


library.GetImageFromMagickWand.argtypes = [ctypes.c_void_p]
library.GetImageFromMagickWand.restype = ctypes.c_void_p
libmagick.AcquireExceptionInfo.restype = ctypes.POINTER(_ExceptionInfo)
libmagick.GetImageException.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ExceptionInfo)]
libmagick.DestroyExceptionInfo.argtypes = [ctypes.POINTER(_ExceptionInfo)]
libmagick.DestroyExceptionInfo.restype = ctypes.c_void_p


class ImageRejected(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    media_type: MediaType
    width: int
    height: int
    frames: int


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size inside the box with the same aspect, never larger than the source."""
    scale = min(box_width / width, box_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def apply_limits(conf: LimitsSettings) -> None:
    """Per-process ImageMagick caps, below the policy file's (a program may only lower them)."""
    for name in ("memory", "map", "disk"):
        limits[name] = byte_size(getattr(conf, f"magick_{name}"))
    limits["width"] = conf.magick_width
    limits["height"] = conf.magick_height
    limits["area"] = conf.max_pixels


def header_size(source: Path, media_type: MediaType) -> tuple[int, int] | None:
    """Width and height as the file's header declares them, upright, without decoding pixels.

    imagesize turns a JPEG's size by its EXIF orientation; it reads a GIF's size as signed
    16-bit numbers (65535 becomes -1), so a GIF's logical screen is read here.
    """
    try:
        with source.open("rb") as file:
            head = file.read(SNIFF_BYTES)
        if sniff(head) is not media_type:
            return None  # not what it claims: the decoder will refuse it
        if media_type is GIF:
            return struct.unpack("<HH", head[6:10])
        width, height = imagesize.get(source)
    except (OSError, ValueError, struct.error):
        return None
    return (width, height) if width > 0 and height > 0 else None


def corrupt_image_warning(img: Image) -> str | None:
    """The CorruptImageWarning a successful read left on the image (a JPEG cut mid-scan decodes
    "fine" with grey rows). ImageMagick 6 files it on the image, where Wand never looks."""
    info = libmagick.AcquireExceptionInfo()
    try:
        libmagick.GetImageException(library.GetImageFromMagickWand(img.wand), info)
        found = info.contents
        if found.severity != CORRUPT_IMAGE_WARNING:
            return None
        return " ".join(part.decode(errors="replace") for part in (found.reason, found.description) if part)
    finally:
        libmagick.DestroyExceptionInfo(info)


def _colorspace(img: Image) -> str:
    # Wand's img.colorspace raises IndexError on enum values it does not list (linear gray PNGs).
    value = library.MagickGetImageColorspace(img.wand)
    return COLORSPACE_TYPES[value] if 0 <= value < len(COLORSPACE_TYPES) else "other"


def _shrink(img: BaseImage, width: int, height: int) -> None:
    """Resize to exactly width x height (already aspect-correct), as fast as looks right.

    Over 5x, ImageMagick's thumbnail() samples down first, far faster than filtering every source
    pixel; at 5x or less (a JPEG after shrink-on-load) a triangle filter takes 2/3 of the time of
    thumbnail()'s Lanczos for the same area-weighted result at this size.
    """
    if img.width <= 5 * width and img.height <= 5 * height:
        img.resize(width, height, filter="triangle")
    else:
        img.thumbnail(width, height)


class ThumbHandler:
    def __init__(self, thumbnail: ThumbnailSettings, limits_conf: LimitsSettings) -> None:
        self.box = (thumbnail.width, thumbnail.height)
        self.max_frames = thumbnail.max_frames
        self.jpeg_quality = thumbnail.jpeg_quality
        self.max_pixels = limits_conf.max_pixels

    def make(self, source: Path, media_type: MediaType) -> Thumbnail:
        kind = media_type.name.partition("/")[0]
        method = getattr(self, f"_make_{kind}", None)
        if method is None:
            raise ImageRejected(state.UNSUPPORTED, f"no thumbnails for {media_type.name} yet")
        try:
            return method(source, media_type)
        except ResourceLimitError as exc:
            raise ImageRejected(state.TOO_MANY_PIXELS, f"image exceeds a size limit: {exc}") from exc
        except (PolicyError, MissingDelegateError) as exc:
            raise ImageRejected(state.UNSUPPORTED, f"format not supported: {exc}") from exc
        except WandException as exc:
            raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {exc}") from exc

    def _make_image(self, source: Path, media_type: MediaType) -> Thumbnail:
        size = header_size(source, media_type)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise ImageRejected(
                state.TOO_MANY_PIXELS,
                f"{size[0]}x{size[1]} image ({size[0] * size[1]} pixels) is over the {self.max_pixels} pixel limit",
            )
        spec = f"{media_type.coder}:{source}"
        if media_type.animated:
            spec += f"[0-{self.max_frames - 1}]"
        with Image() as img:
            if media_type is JPEG:
                # Shrink-on-load: libjpeg decodes at 1/2..1/8 scale, still at least twice the box.
                side = 2 * max(self.box)
                img.options["jpeg:size"] = f"{side}x{side}"
            img.read(filename=spec)
            warning = corrupt_image_warning(img)
            if warning:
                raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {warning}")
            img.auto_orient()
            if _colorspace(img) not in KEEP_COLORSPACES:
                img.transform_colorspace("srgb")
            upright = size or (img.page_width or img.width, img.page_height or img.height)
            return self._encode(img, media_type, fit(*upright, *self.box))

    def _encode(self, img: Image, media_type: MediaType, target: tuple[int, int]) -> Thumbnail:
        width, height = target
        if len(img.sequence) > 1:
            img.coalesce()
            for index in range(len(img.sequence)):
                with img.sequence[index] as frame:
                    _shrink(frame, width, height)
                    frame.page = (width, height, 0, 0)  # else the frame keeps its old canvas
        else:
            _shrink(img, width, height)
            img.page = (width, height, 0, 0)
        img.strip()
        img.depth = 8
        img.format = media_type.coder
        if media_type is JPEG:
            img.compression_quality = self.jpeg_quality
        return Thumbnail(img.make_blob(), media_type, width, height, len(img.sequence))
