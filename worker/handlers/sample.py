"""The few pixels the worker's fingerprints are made from (thumbnailify.worker.fingerprints): the
first frame of a thumbnail already made, in sRGB and upright, fitted into SAMPLE_SIDE, as RGBA.
Taken from ImageMagick's pixels without a second decode."""

from __future__ import annotations

import ctypes

from wand.api import library
from wand.image import STORAGE_TYPES, Image

from thumbnailify.worker.fingerprints import SAMPLE_SIDE, Sample

CHAR_PIXELS = STORAGE_TYPES.index("char")


def export_sample(picture: Image) -> Sample:
    """`picture`'s first frame as RGBA (opaque where it has no alpha), at most SAMPLE_SIDE a side."""
    with Image(image=picture.sequence[0]) as first:
        scale = min(SAMPLE_SIDE / first.width, SAMPLE_SIDE / first.height, 1.0)
        width, height = max(1, round(first.width * scale)), max(1, round(first.height * scale))
        opaque = not first.alpha_channel
        if (width, height) != (first.width, first.height) and not library.MagickScaleImage(first.wand, width, height):
            first.raise_exception()
        if opaque:  # a picture made opaque by switching its alpha off still holds the values, which scaling reads
            first.alpha_channel = "opaque"
        pixels = ctypes.create_string_buffer(width * height * 4)
        if not library.MagickExportImagePixels(first.wand, 0, 0, width, height, b"RGBA", CHAR_PIXELS, pixels):
            first.raise_exception()
    return Sample(width, height, pixels.raw)
