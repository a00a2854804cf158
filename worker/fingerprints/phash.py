"""A 64-bit perceptual hash (pHash): the picture's luma averaged down to 32x32, its 2-D DCT, and
one bit per each of the 8x8 lowest frequencies: whether it is above their median. Re-encoding,
resizing, a light crop or a caption change few of those bits; another picture changes about half.

A DCT hash rather than a difference hash (dHash): dHash compares neighbouring pixels of a 9x8
picture, so a caption or a 5% crop moves many of its bits; the low DCT frequencies describe the
whole picture's layout and move little (tests/unit/test_fingerprints.py holds the distances).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

SIDE = 32  # the picture the DCT runs on
KEPT = 8  # the lowest KEPT x KEPT frequencies make the hash
_DCT = np.cos(np.pi / SIDE * np.outer(np.arange(SIDE), np.arange(SIDE) + 0.5))  # DCT-II rows


@functools.cache  # one per sample side (at most SAMPLE_SIDE of each): building it took a third of the hash
def _area_matrix(size: int, target: int) -> NDArray[np.float64]:
    """target x size: each output sample the average of the input samples it covers (fractions
    at its edges), so any size reduces as a box filter would, and a smaller one is spread out.
    Shared between calls, so read-only."""
    edges = np.arange(target + 1) * (size / target)
    start, end = edges[:-1, None], edges[1:, None]
    cells = np.arange(size)[None, :]
    cover = np.clip(np.minimum(end, cells + 1) - np.maximum(start, cells), 0, None)
    weights: NDArray[np.float64] = cover / cover.sum(axis=1, keepdims=True)
    weights.flags.writeable = False
    return weights


def phash(rgba: NDArray[np.uint8]) -> int:
    h, w = rgba.shape[:2]
    rgb = rgba[..., :3].astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    small = _area_matrix(h, SIDE) @ luma @ _area_matrix(w, SIDE).T
    low = (_DCT @ small @ _DCT.T)[:KEPT, :KEPT].ravel()
    bits = low > np.median(low)
    return int("".join("1" if bit else "0" for bit in bits), 2)


def distance(first: int, second: int) -> int:
    return (first ^ second).bit_count()
