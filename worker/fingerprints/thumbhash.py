"""ThumbHash (Evan Wallace's image placeholder) of an RGBA sample, as its reference encoder
(github.com/evanw/thumbhash, JavaScript) writes it, byte for byte: each channel's DCT is taken
row by row and then column by column instead of a loop over every pixel for every coefficient."""

from __future__ import annotations

import math
from operator import add, sub

from thumbnailify.worker.fingerprints.sample import Row, Sample, cosines, transform

MAX_SIDE = 100
# Sums of cosines that are 0 come out as about 1e-17; normalised by their own largest, such noise
# would fill a flat picture's factors with arbitrary digits (harmless, as its scale is 0, but not
# the same from one machine's float arithmetic to another's).
NOISE = 1e-9
_ALPHA = [value / 255 for value in range(256)]


def _round(value: float) -> int:
    """JavaScript's Math.round (halves up), which the reference uses."""
    return math.floor(value + 0.5)


def _channel(values: Row, w: int, h: int, nx: int, ny: int, *, unit: float = 1.0) -> tuple[float, list[float], float]:
    """DC, the AC terms normalised into 0..1, and their scale, in the reference's order: row by
    row (cy), each row's terms while cx * ny < nx * (ny - cy). The channel is values / unit."""
    terms = transform(values, w, cosines(nx, w), cosines(ny, h))  # [cy][cx]
    count = w * h * unit
    ac = [term / count if abs(term / count) >= NOISE else 0.0  # a flat channel's rounding noise
          for cy in range(ny) for cx, term in enumerate(terms[cy][:nx]) if cx * ny < nx * (ny - cy) and (cx or cy)]
    scale = max((abs(f) for f in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return terms[0][0] / count, ac, scale


def encode(sample: Sample) -> bytes:
    w, h = sample.width, sample.height
    if w > MAX_SIDE or h > MAX_SIDE:
        raise ValueError(f"{w}x{h} does not fit in {MAX_SIDE}x{MAX_SIDE}")
    red, green, blue, opacity = (sample.channel(index) for index in range(4))
    has_alpha = opacity.count(255) < w * h
    l_limit = 5 if has_alpha else 7  # fewer luminance bits when alpha takes some
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    l_terms, p_terms = (max(3, lx), max(3, ly)), (3, 3)
    if has_alpha:
        alpha = [_ALPHA[a] for a in opacity]
        alpha_sum = sum(alpha)
        colour = [[a / 255 * c for a, c in zip(alpha, channel, strict=True)] for channel in (red, green, blue)]
        average = [sum(values) / alpha_sum if alpha_sum else 0.0 for values in colour]
        # Composited atop the average colour; then luminance, yellow-blue, red-green.
        r, g, b = ([mean * (1 - a) + c for a, c in zip(alpha, values, strict=True)]
                   for mean, values in zip(average, colour, strict=True))
        l_dc, l_ac, l_scale = _channel([(x + y + z) / 3 for x, y, z in zip(r, g, b, strict=True)], w, h, *l_terms)
        p_dc, p_ac, p_scale = _channel([(x + y) / 2 - z for x, y, z in zip(r, g, b, strict=True)], w, h, *p_terms)
        q_dc, q_ac, q_scale = _channel([x - y for x, y in zip(r, g, strict=True)], w, h, *p_terms)
    else:
        # The same channels kept as whole numbers (sums of the bytes) and scaled once per term,
        # since the DCT is linear: no arithmetic per pixel in Python.
        l_dc, l_ac, l_scale = _channel(list(map(add, map(add, red, green), blue)), w, h, *l_terms, unit=3 * 255)
        p_dc, p_ac, p_scale = _channel(list(map(sub, map(add, red, green), map(add, blue, blue))), w, h, *p_terms,
                                       unit=2 * 255)
        q_dc, q_ac, q_scale = _channel(list(map(sub, red, green)), w, h, *p_terms, unit=255)
    landscape = w > h
    header24 = (_round(63 * l_dc) | (_round(31.5 + 31.5 * p_dc) << 6) | (_round(31.5 + 31.5 * q_dc) << 12)
                | (_round(31 * l_scale) << 18) | (int(has_alpha) << 23))
    header16 = ((ly if landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9)
                | (int(landscape) << 15))
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _channel(alpha, w, h, 5, 5)
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        terms.append(a_ac)
    nibbles = [_round(15 * f) for ac in terms for f in ac]
    nibbles += [0] * (len(nibbles) % 2)
    out += [low | (high << 4) for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)]
    return bytes(out)
