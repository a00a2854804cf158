"""A 64-bit perceptual hash (pHash): the picture's luma averaged down to 32x32, its 2-D DCT, and
one bit per each of the 8x8 lowest frequencies: whether it is above their median. Re-encoding,
resizing, a light crop or a caption change few of those bits; another picture changes about half.

A DCT hash rather than a difference hash (dHash): dHash compares neighbouring pixels of a 9x8
picture, so a caption or a 5% crop moves many of its bits; the low DCT frequencies describe the
whole picture's layout and move little (tests/unit/test_fingerprints.py holds the distances).

The averaging and the DCT are both linear, so each side's two steps are one precomputed 8 x side
matrix: the hash is two passes of short dot products over the sample.
"""

from __future__ import annotations

import functools
import statistics
from operator import add

from thumbnailify.worker.fingerprints.sample import Matrix, Sample, cosines, dot, transform

SIDE = 32  # the picture the DCT runs on
KEPT = 8  # the lowest KEPT x KEPT frequencies make the hash
_LUMA = tuple(tuple(weight * value for value in range(256)) for weight in (0.299, 0.587, 0.114))


def _area_matrix(size: int, target: int) -> Matrix:
    """target x size: each output sample the average of the input samples it covers (fractions
    at its edges), so any size reduces as a box filter would, and a smaller one is spread out."""
    step = size / target
    weights = []
    for index in range(target):
        start, end = index * step, (index + 1) * step
        cover = [max(0.0, min(end, cell + 1) - max(start, cell)) for cell in range(size)]
        total = sum(cover)
        weights.append(tuple(part / total for part in cover))
    return tuple(weights)


@functools.cache  # one per sample side (at most SAMPLE_SIDE of each)
def _reduction(size: int) -> Matrix:
    """KEPT x size: the area average down to SIDE samples, then the lowest KEPT DCT-II rows."""
    columns = list(zip(*_area_matrix(size, SIDE), strict=True))  # size x SIDE
    return tuple(tuple(dot(frequency, column) for column in columns) for frequency in cosines(KEPT, SIDE))


def phash(sample: Sample) -> int:
    red, green, blue = (map(part.__getitem__, sample.channel(index)) for index, part in enumerate(_LUMA))
    luma = list(map(add, map(add, red, green), blue))
    low = [term for row in transform(luma, sample.width, _reduction(sample.width), _reduction(sample.height))
           for term in row]
    median = statistics.median(low)
    return int("".join("1" if term > median else "0" for term in low), 2)


def distance(first: int, second: int) -> int:
    return (first ^ second).bit_count()
