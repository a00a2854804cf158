"""A 64-bit perceptual hash (pHash): the picture's luma squeezed into 32x32 (the handler's square
sample), its 2-D DCT, and one bit per each of the 8x8 lowest frequencies: whether it is above their
median. Re-encoding, resizing, a light crop or a caption change few of those bits; another picture
changes about half.

A DCT hash rather than a difference hash (dHash): dHash compares neighbouring pixels of a 9x8
picture, so a caption or a 5% crop moves many of its bits; the low DCT frequencies describe the
whole picture's layout and move little (tests/unit/test_phash.py holds the distances).
"""

from __future__ import annotations

import statistics
from operator import add

from thumbnailify.worker.fingerprints.sample import SQUARE_SIDE, Sample, cosines, transform

KEPT = 8  # the lowest KEPT x KEPT frequencies make the hash
# A term this small beside the largest is zero but for rounding (a flat or mirrored picture's):
# counted as zero, so the side of the median it falls on is the same on every machine.
NOISE = 1e-9
_LUMA = tuple(tuple(weight * value for value in range(256)) for weight in (0.299, 0.587, 0.114))


def phash(square: Sample) -> int:
    if (square.width, square.height) != (SQUARE_SIDE, SQUARE_SIDE):
        raise ValueError(f"the hash is of a {SQUARE_SIDE}x{SQUARE_SIDE} picture, not {square.width}x{square.height}")
    red, green, blue = (map(part.__getitem__, square.channel(index)) for index, part in enumerate(_LUMA))
    luma = list(map(add, map(add, red, green), blue))
    basis = cosines(KEPT, SQUARE_SIDE)
    low = [term for row in transform(luma, SQUARE_SIDE, basis, basis) for term in row]
    floor = NOISE * max(map(abs, low))
    low = [term if abs(term) > floor else 0.0 for term in low]
    median = statistics.median(low)
    return int("".join("1" if term > median else "0" for term in low), 2)


def distance(first: int, second: int) -> int:
    return (first ^ second).bit_count()
