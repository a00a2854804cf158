"""BlurHash (Wolt's image placeholder) of an RGBA sample, as the reference TypeScript encoder
(github.com/woltapp/blurhash, npm `blurhash`) writes it, character for character; alpha is
ignored there too. Each channel's basis sums are two small matrix products."""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

X_COMPONENTS, Y_COMPONENTS = 4, 3
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
_LINEAR = np.array([v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
                    for v in (i / 255 for i in range(256))])


def _base83(value: int, length: int) -> str:
    return "".join(DIGITS[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))


def _to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    return int((v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _quantised(value: float, maximum: float) -> int:
    scaled = math.copysign(abs(value / maximum) ** 0.5, value)
    return int(max(0, min(18, math.floor(scaled * 9 + 9.5))))


@functools.cache  # one per sample side and component count: the samples' sides repeat
def _basis(components: int, size: int) -> NDArray[np.float64]:
    """components x size cosines (read-only: shared between calls)."""
    basis: NDArray[np.float64] = np.cos(np.pi / size * np.outer(np.arange(components), np.arange(size)))
    basis.flags.writeable = False
    return basis


def encode(rgba: NDArray[np.uint8]) -> str:
    h, w = rgba.shape[:2]
    linear = _LINEAR[rgba[..., :3]]  # h x w x 3
    fx, fy = _basis(X_COMPONENTS, w), _basis(Y_COMPONENTS, h)
    # factors[cy, cx, channel]; every term but the DC counts twice (the reference's normalisation)
    factors = np.stack([fy @ linear[..., c] @ fx.T for c in range(3)], axis=-1) / (w * h)
    factors[1:, :, :] *= 2
    factors[0, 1:, :] *= 2
    flat = factors.reshape(-1, 3)
    dc, ac = flat[0], flat[1:]
    quantised_max = int(max(0, min(82, math.floor(float(ac.max()) * 166 - 0.5))))
    maximum = (quantised_max + 1) / 166
    text = _base83(X_COMPONENTS - 1 + (Y_COMPONENTS - 1) * 9, 1) + _base83(quantised_max, 1)
    text += _base83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    for r, g, b in ac:
        text += _base83(_quantised(r, maximum) * 361 + _quantised(g, maximum) * 19 + _quantised(b, maximum), 2)
    return text
