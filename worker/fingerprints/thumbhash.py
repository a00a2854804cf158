"""ThumbHash (Evan Wallace's image placeholder) of an RGBA sample, as its reference encoder
(github.com/evanw/thumbhash, JavaScript) writes it, byte for byte: each channel's DCT is two small
matrix products instead of a loop over every pixel for every coefficient."""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
MAX_SIDE = 100
# Sums of cosines that are 0 come out as about 1e-17; normalised by their own largest, such noise
# would fill a flat picture's factors with arbitrary digits (harmless, as its scale is 0, but not
# the same from one machine's float arithmetic to another's).
NOISE = 1e-9


def _round(value: float) -> int:
    """JavaScript's Math.round (halves up), which the reference uses."""
    return math.floor(value + 0.5)


@functools.cache  # one per sample side and term count: the samples' sides repeat
def _basis(terms: int, size: int) -> Floats:
    """terms x size cosines at the pixels' centres (read-only: shared between calls)."""
    basis: Floats = np.cos(np.pi / size * np.outer(np.arange(terms), np.arange(size) + 0.5))
    basis.flags.writeable = False
    return basis


def _channel(channel: Floats, nx: int, ny: int) -> tuple[float, list[float], float]:
    """DC, the AC terms normalised into 0..1, and their scale, in the reference's order: row by
    row (cy), each row's terms while cx * ny < nx * (ny - cy)."""
    h, w = channel.shape
    fx, fy = _basis(nx, w), _basis(ny, h)
    terms = fy @ channel @ fx.T / (w * h)  # [cy, cx]
    terms[np.abs(terms) < NOISE] = 0.0  # a flat channel's AC terms, which rounding left as noise
    ac = [float(terms[cy, cx]) for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy) and (cx or cy)]
    scale = max((abs(f) for f in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return float(terms[0, 0]), ac, scale


def encode(rgba: NDArray[np.uint8]) -> bytes:
    h, w = rgba.shape[:2]
    if w > MAX_SIDE or h > MAX_SIDE:
        raise ValueError(f"{w}x{h} does not fit in {MAX_SIDE}x{MAX_SIDE}")
    pixels = rgba.astype(np.float64)
    alpha = pixels[..., 3] / 255
    colour = pixels[..., :3] * (alpha / 255)[..., None]
    alpha_sum = float(alpha.sum())
    average = colour.reshape(-1, 3).sum(axis=0) / alpha_sum if alpha_sum else np.zeros(3)
    has_alpha = alpha_sum < w * h
    l_limit = 5 if has_alpha else 7  # fewer luminance bits when alpha takes some
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    # Composited atop the average colour, then luminance, yellow-blue, red-green.
    r, g, b = (average[i] * (1 - alpha) + colour[..., i] for i in range(3))
    l_dc, l_ac, l_scale = _channel((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _channel((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _channel(r - g, 3, 3)
    landscape = w > h
    header24 = (_round(63 * l_dc) | (_round(31.5 + 31.5 * p_dc) << 6) | (_round(31.5 + 31.5 * q_dc) << 12)
                | (_round(31 * l_scale) << 18) | (int(has_alpha) << 23))
    header16 = ((ly if landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9)
                | (int(landscape) << 15))
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _channel(alpha, 5, 5)
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        terms.append(a_ac)
    nibbles = [_round(15 * f) for ac in terms for f in ac]
    nibbles += [0] * (len(nibbles) % 2)
    out += [low | (high << 4) for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)]
    return bytes(out)
