"""A finished thumbnail (sRGB, stripped, 8 bits) written in its format.

JPEG, PNG, GIF and WebP are written by ImageMagick. AVIF is written by libavif through Pillow's
AVIF plugin (its wheel bundles libavif 1.4 with libaom 3.14): ImageMagick 6.9.11 writes AVIF
through Debian's libheif 1.15, which has no speed setting (~3x slower at the same size) and writes
one frame of an animation. An animation keeps its frames where the format holds several (GIF,
WebP, AVIF); JPEG and PNG take its first frame. JPEG has no transparency: a transparent picture
is laid on white, as a browser shows it on a page.
"""

from __future__ import annotations

import ctypes
import functools
import io
from collections.abc import Iterator
from types import ModuleType

from wand.api import library
from wand.color import Color
from wand.image import STORAGE_TYPES, Image

from thumbnailify.media import AVIF, GIF, JPEG, WEBP, MediaType
from thumbnailify.settings import QualitySettings

ANIMATED_OUTPUTS = frozenset({GIF, WEBP, AVIF})  # formats whose thumbnails keep an animation's frames
# libaom's speed through libavif, 0 (slowest, smallest) to 10: 8 takes ~45 ms for a 400x400
# thumbnail on one core against ~160 ms at libavif's default 6, for a file ~3% larger.
AVIF_SPEED = 8
CHAR_PIXELS = STORAGE_TYPES.index("char")


def each_frame(img: Image) -> Iterator[int]:
    """Make each frame in turn the one Wand's single-image calls act on."""
    for index in range(library.MagickGetNumberImages(img.wand)):
        library.MagickSetIteratorIndex(img.wand, index)
        yield index


def frame_count(img: Image) -> int:
    return int(library.MagickGetNumberImages(img.wand))


def keep_first_frame(img: Image) -> None:
    """An animation's first frame as a whole picture: a GIF's first frame may cover only part of
    its canvas, which is laid out on a transparent one."""
    del img.sequence[1:]
    library.MagickSetIteratorIndex(img.wand, 0)
    page_width, page_height, left, top = img.page
    if (left, top) != (0, 0) or (page_width or img.width, page_height or img.height) != img.size:
        img.background_color = Color("transparent")
        img.merge_layers("flatten")


def encode(img: Image, output: MediaType, quality: QualitySettings) -> bytes:
    """The picture in `output`'s format, at that format's configured quality; an animation must
    already be down to one frame if the format holds one."""
    if output is AVIF:
        return _avif(img, quality.avif)
    if output is JPEG and img.alpha_channel:
        img.background_color = Color("white")
        img.alpha_channel = "remove"
    img.format = output.coder
    if output is JPEG:
        img.compression_quality = quality.jpeg
    elif output is WEBP:
        img.compression_quality = quality.webp
    return bytes(img.make_blob())


@functools.cache
def _pillow() -> ModuleType:
    """Pillow's Image, imported at the first AVIF thumbnail (a worker that never makes one does not
    load libavif)."""
    from PIL import Image as PILImage  # noqa: PLC0415 - see above

    return PILImage


def _avif(img: Image, quality: int) -> bytes:
    """Each frame's pixels handed to libavif (an animation as an AVIF image sequence, each frame
    shown as long as it was), on one thread as ImageMagick: a worker scales with processes."""
    pillow = _pillow()
    if frame_count(img) > 1:
        img.coalesce()  # whole frames: a GIF's may each cover only what changed
    mode = "RGBA" if img.alpha_channel else "RGB"
    ticks = img.ticks_per_second or 100
    frames, durations = [], []
    for _ in each_frame(img):
        width, height = library.MagickGetImageWidth(img.wand), library.MagickGetImageHeight(img.wand)
        pixels = ctypes.create_string_buffer(width * height * len(mode))
        if not library.MagickExportImagePixels(img.wand, 0, 0, width, height, mode.encode(), CHAR_PIXELS, pixels):
            img.raise_exception()
        frames.append(pillow.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1))
        durations.append(round(library.MagickGetImageDelay(img.wand) * 1000 / ticks))
    out = io.BytesIO()
    frames[0].save(out, "AVIF", save_all=len(frames) > 1, append_images=frames[1:], duration=durations,
                   quality=quality, speed=AVIF_SPEED, max_threads=1)
    return out.getvalue()
