"""The few pixels the worker's fingerprints are made from (thumbnailify.worker.fingerprints): the
first frame of a thumbnail already made, in sRGB and upright, as RGBA, twice: fitted into
SAMPLE_SIDE for the placeholders, and squeezed into SQUARE_SIDE x SQUARE_SIDE for the perceptual
hash. Taken from ImageMagick's pixels without a second decode."""

from __future__ import annotations

import ctypes

from wand.api import library
from wand.image import STORAGE_TYPES, Image

from thumbnailify.worker.fingerprints import SAMPLE_SIDE, SQUARE_SIDE, Sample, Samples

CHAR_PIXELS = STORAGE_TYPES.index("char")


def export_samples(picture: Image) -> Samples:
    """`picture`'s first frame (opaque where it has no alpha) as the fingerprints' two samples."""
    with Image(image=picture.sequence[0]) as first:
        width, height, x, y = first.page
        if (width, height) != first.size and width >= x + first.width and height >= y + first.height:
            # An animation's frame may cover part of its canvas (the thumbnail shows the canvas):
            # laid on it as ImageMagick coalesces frames, in the background colour.
            first.extent(width, height, -x, -y)
        scale = min(SAMPLE_SIDE / first.width, SAMPLE_SIDE / first.height, 1.0)
        fitted = max(1, int(first.width * scale + 0.5)), max(1, int(first.height * scale + 0.5))
        with Image(image=first) as copy:
            square = _export(copy, SQUARE_SIDE, SQUARE_SIDE)
        return Samples(_export(first, *fitted), square)


def _export(picture: Image, width: int, height: int) -> Sample:
    """`picture` scaled (box average) to width x height, its pixels as RGBA; changes `picture`."""
    opaque = not picture.alpha_channel
    if (width, height) != picture.size and not library.MagickScaleImage(picture.wand, width, height):
        picture.raise_exception()
    if opaque:  # ImageMagick 6's scale leaves the alpha of a picture without one undefined, and RGBA reads it
        picture.alpha_channel = "opaque"
    pixels = ctypes.create_string_buffer(width * height * 4)
    if not library.MagickExportImagePixels(picture.wand, 0, 0, width, height, b"RGBA", CHAR_PIXELS, pixels):
        picture.raise_exception()
    return Sample(width, height, pixels.raw)
