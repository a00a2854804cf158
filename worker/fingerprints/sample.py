"""The pixels every fingerprint is made from, and the arithmetic they share: separable cosine sums
over rows of floats, one dot product of two short rows at a time."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul

# Every fingerprint keeps at most 8 frequencies a side, which 32 samples a side carry (ThumbHash's
# own limit is 100): a larger sample costs more Python arithmetic and shows nothing more.
SAMPLE_SIDE = 32

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


def dot(first: Row, second: Row) -> float:
    total: float = sum(map(mul, first, second))
    return total


def rows(values: Row, width: int) -> list[Row]:
    return [values[start:start + width] for start in range(0, len(values), width)]


@functools.cache  # one per term count and side: the samples' sides repeat
def cosines(terms: int, size: int) -> Matrix:
    """terms x size: the DCT-II rows, cosines at the pixels' centres, in ThumbHash's order of operations."""
    return tuple(tuple(math.cos(math.pi / size * term * (position + 0.5)) for position in range(size))
                 for term in range(terms))


def transform(values: Row, width: int, across: Matrix, down: Matrix) -> list[list[float]]:
    """down @ picture @ across.T for a picture of `width` columns given row by row: [term down][term across]."""
    # dot() written out: a function call per product would add a third to the whole
    sums = [[sum(map(mul, row, basis)) for row in rows(values, width)] for basis in across]  # [across][row]
    return [[sum(map(mul, column, basis)) for column in sums] for basis in down]
