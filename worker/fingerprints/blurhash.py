"""BlurHash (Wolt's image placeholder) of an RGBA sample, as the reference TypeScript encoder
(github.com/woltapp/blurhash, npm `blurhash`) writes it, character for character; alpha is
ignored there too. Each channel's basis sums are taken row by row, then column by column."""

from __future__ import annotations

import functools
import math

from thumbnailify.worker.fingerprints.sample import Matrix, Sample, transform

X_COMPONENTS, Y_COMPONENTS = 4, 3
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
_LINEAR = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in (i / 255 for i in range(256))]


def _base83(value: int, length: int) -> str:
    return "".join(DIGITS[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))


def _to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    return int((v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _quantised(value: float, maximum: float) -> int:
    scaled = math.copysign(abs(value / maximum) ** 0.5, value)
    return int(max(0, min(18, math.floor(scaled * 9 + 9.5))))


@functools.cache  # one per component count and side: the samples' sides repeat
def _basis(components: int, size: int) -> Matrix:
    """components x size cosines, computed in the reference's order."""
    return tuple(tuple(math.cos(math.pi * component * position / size) for position in range(size))
                 for component in range(components))


def encode(sample: Sample) -> str:
    w, h = sample.width, sample.height
    across, down = _basis(X_COMPONENTS, w), _basis(Y_COMPONENTS, h)
    # [channel][cy][cx]; every term but the DC counts twice (the reference's normalisation)
    sums = [transform(list(map(_LINEAR.__getitem__, sample.channel(c))), w, across, down) for c in range(3)]
    factors = [[(1 if cx == cy == 0 else 2) * sums[c][cy][cx] / (w * h) for c in range(3)]
               for cy in range(Y_COMPONENTS) for cx in range(X_COMPONENTS)]
    dc, ac = factors[0], factors[1:]
    quantised_max = int(max(0, min(82, math.floor(max(max(f) for f in ac) * 166 - 0.5))))
    maximum = (quantised_max + 1) / 166
    text = _base83(X_COMPONENTS - 1 + (Y_COMPONENTS - 1) * 9, 1) + _base83(quantised_max, 1)
    text += _base83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    for r, g, b in ac:
        text += _base83(_quantised(r, maximum) * 361 + _quantised(g, maximum) * 19 + _quantised(b, maximum), 2)
    return text
