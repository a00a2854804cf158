"""The pixels every fingerprint is made from, and the arithmetic they share: separable cosine sums
over rows of floats, one dot product of two short rows at a time."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul

# The placeholders keep at most 7 frequencies a side, 3 cycles (ThumbHash's own limit is 100
# samples): 16 samples on the long side carry them, and each more costs Python arithmetic.
SAMPLE_SIDE = 16
# The perceptual hash's picture: the whole frame squeezed into SQUARE_SIDE x SQUARE_SIDE, whatever
# its shape, so a panorama's short side is not a few samples.
SQUARE_SIDE = 32

Row = Sequence[float]
Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Sample:
    """An RGBA picture, row by row, 8 bits a channel, sRGB."""

    width: int
    height: int
    rgba: bytes

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1 or len(self.rgba) != self.width * self.height * 4:
            raise ValueError(f"{len(self.rgba)} bytes are not a {self.width}x{self.height} RGBA picture")

    def channel(self, index: int) -> bytes:
        """One channel's bytes (0 red, 1 green, 2 blue, 3 alpha), row by row."""
        return self.rgba[index::4]


@dataclass(frozen=True)
class Samples:
    """The two pictures a frame's fingerprints are made from."""

    picture: Sample  # its shape kept, at most SAMPLE_SIDE a side: the placeholders
    square: Sample  # SQUARE_SIDE x SQUARE_SIDE, squeezed: the perceptual hash


def rows(values: Row, width: int) -> list[Row]:
    return [values[start:start + width] for start in range(0, len(values), width)]


@functools.cache  # one per term count and side: the samples' sides repeat
def cosines(terms: int, size: int) -> Matrix:
    """terms x size: the DCT-II rows, cosines at the pixels' centres, in ThumbHash's order of operations."""
    return tuple(tuple(math.cos(math.pi / size * term * (position + 0.5)) for position in range(size))
                 for term in range(terms))


def transform(values: Row, width: int, across: Matrix, down: Matrix) -> list[list[float]]:
    """down @ picture @ across.T for a picture of `width` columns given row by row: [term down][term across]."""
    # One sum(map(mul)) per row and basis: a function call around each would add a third to the whole.
    sums = [[sum(map(mul, row, basis)) for row in rows(values, width)] for basis in across]  # [across][row]
    return [[sum(map(mul, column, basis)) for column in sums] for basis in down]
