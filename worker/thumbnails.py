"""Thumbnails with Wand (ImageMagick): fit the box, keep the aspect, never enlarge, same format.

`ThumbHandler.make` dispatches on the media's main type (`image/...` today), so a new kind of
media is one new `_make_<kind>` method. Every refusal is an `ImageRejected` with the HTTP-style
code the state record keeps: 413 too many pixels, 415 not a format we read, 422 cannot decode.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from wand.api import library
from wand.exceptions import (
    CorruptImageWarning,
    MissingDelegateError,
    PolicyError,
    ResourceLimitError,
    WandException,
)
from wand.image import COLORSPACE_TYPES, Image
from wand.resource import limits

from common import state
from common.config import LimitsSettings, ThumbnailSettings
from common.media import JPEG, MediaType

KEEP_COLORSPACES = frozenset({"srgb", "gray", "undefined"})
# EXIF orientations 5-8 turn the stored image a quarter: width and height trade places.
SWAPPED_ORIENTATIONS = frozenset({"left_top", "right_top", "right_bottom", "left_bottom"})


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
        limits[name] = _bytes(getattr(conf, f"magick_{name}"))
    limits["width"] = conf.magick_width
    limits["height"] = conf.magick_height
    limits["area"] = conf.max_pixels


def _bytes(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _colorspace(img: Image) -> str:
    # Wand's img.colorspace raises IndexError on enum values it does not list (linear gray PNGs).
    value = library.MagickGetImageColorspace(img.wand)
    return COLORSPACE_TYPES[value] if 0 <= value < len(COLORSPACE_TYPES) else "other"


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
            with warnings.catch_warnings():
                # A truncated file decodes "with a warning" into grey rows; we refuse it instead.
                warnings.simplefilter("error", CorruptImageWarning)
                return method(source, media_type)
        except ResourceLimitError as exc:
            raise ImageRejected(state.TOO_MANY_PIXELS, f"image exceeds a size limit: {exc}") from exc
        except (PolicyError, MissingDelegateError) as exc:
            raise ImageRejected(state.UNSUPPORTED, f"format not supported: {exc}") from exc
        except (WandException, CorruptImageWarning) as exc:
            raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {exc}") from exc

    def _make_image(self, source: Path, media_type: MediaType) -> Thumbnail:
        frames, width, height = self._inspect(source, media_type)
        spec = f"{media_type.coder}:{source}"
        if media_type.animated:
            spec += f"[0-{frames - 1}]"
        with Image() as img:
            if media_type is JPEG:
                # Shrink-on-load: libjpeg decodes at 1/2..1/8 scale, still at least twice the box.
                side = 2 * max(self.box)
                img.options["jpeg:size"] = f"{side}x{side}"
            img.read(filename=spec)
            img.auto_orient()
            if _colorspace(img) not in KEEP_COLORSPACES:
                img.transform_colorspace("srgb")
            return self._encode(img, media_type, fit(width, height, *self.box))

    def _inspect(self, source: Path, media_type: MediaType) -> tuple[int, int, int]:
        """Frames to read and the upright canvas size, from the header alone: pixel bombs stop here."""
        with Image.ping(filename=f"{media_type.coder}:{source}") as probe:
            frames = len(probe.sequence) if media_type.animated else 1
            width, height = probe.width, probe.height
            page_width, page_height = probe.page[:2]
            frame_sizes = [(f.width, f.height) for f in probe.sequence[:frames]]
            turned = probe.orientation in SWAPPED_ORIENTATIONS
        frames = min(frames, self.max_frames)
        width, height = max(width, page_width), max(height, page_height)
        pixels = max(width * height, sum(w * h for w, h in frame_sizes[:frames]))
        if pixels > self.max_pixels:
            raise ImageRejected(
                state.TOO_MANY_PIXELS,
                f"{width}x{height} image ({pixels} pixels to decode) is over the "
                f"{self.max_pixels} pixel limit",
            )
        return (frames, height, width) if turned else (frames, width, height)

    def _encode(self, img: Image, media_type: MediaType, target: tuple[int, int]) -> Thumbnail:
        width, height = target
        if len(img.sequence) > 1:
            img.coalesce()
            for index in range(len(img.sequence)):
                with img.sequence[index] as frame:
                    frame.thumbnail(width, height)
                    frame.page = (width, height, 0, 0)  # else the frame keeps its old canvas
        else:
            img.thumbnail(width, height)
            img.page = (width, height, 0, 0)
        img.strip()
        img.depth = 8
        img.format = media_type.coder
        if media_type is JPEG:
            img.compression_quality = self.jpeg_quality
        return Thumbnail(img.make_blob(), media_type, width, height, len(img.sequence))
