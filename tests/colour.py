"""Colour science for the corpus: sRGB to CIELAB, CIEDE2000, and a hand-made Display P3 profile.

Display P3 is what phones tag their photos with, but no Debian package ships its ICC profile
(colord-data has Adobe RGB and ProPhoto, which the corpus takes from there), so a matrix/TRC
profile is built here from the published primaries: P3 red, green and blue with a D65 white and
the sRGB transfer curve, adapted to the ICC's D50 connection space with the Bradford transform.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
# sRGB's primaries adapted to D50 (the ICC connection space), rows X, Y, Z.
SRGB_D50 = ((0.4360747, 0.3850649, 0.1430804), (0.2225045, 0.7168786, 0.0606169), (0.0139322, 0.0971045, 0.7141733))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))

Matrix = tuple[tuple[float, ...], ...]


def inverse3(m: Matrix) -> list[list[float]]:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [
        [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
        [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
        [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
    ]


def _mul(m: Sequence[Sequence[float]], v: Sequence[float]) -> list[float]:
    return [sum(a * b for a, b in zip(row, v, strict=True)) for row in m]


def _matmul(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def srgb_decode(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def srgb_to_lab(r: float, g: float, b: float) -> tuple[float, float, float]:
    """CIELAB (D50) of an sRGB colour given as 0..1 values."""
    xyz = _mul(SRGB_D50, [srgb_decode(c) for c in (r, g, b)])

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, D50, strict=True))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1: Sequence[float], lab2: Sequence[float]) -> float:
    """CIEDE2000 colour difference (Sharma, Wu, Dalal 2005), kL = kC = kH = 1."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_mean = h1p + h2p
    if c1p * c2p:
        h_mean = (h1p + h2p) / 2 if abs(h1p - h2p) <= 180 else (h1p + h2p + (360 if h1p + h2p < 360 else -360)) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(h_mean - 30))
        + 0.24 * math.cos(math.radians(2 * h_mean))
        + 0.32 * math.cos(math.radians(3 * h_mean + 6))
        - 0.20 * math.cos(math.radians(4 * h_mean - 63))
    )
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    sc = 1 + 0.045 * cp_mean
    sh = 1 + 0.015 * cp_mean * t
    rt = -2 * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7)) * math.sin(
        math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2)))
    )
    return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def delta_e(rgb1: Sequence[float], rgb2: Sequence[float]) -> float:
    """CIEDE2000 between two 8-bit sRGB colours."""
    return ciede2000(srgb_to_lab(*(c / 255 for c in rgb1)), srgb_to_lab(*(c / 255 for c in rgb2)))


def _xyz(x: float, y: float) -> list[float]:
    return [x / y, 1.0, (1 - x - y) / y]


def p3_colorants_d50() -> list[list[float]]:
    """Display P3's RGB -> XYZ matrix, adapted from its D65 white to D50 (Bradford)."""
    white = _xyz(*D65_XY)
    columns = [_xyz(*xy) for xy in P3_PRIMARIES]
    primaries = [[columns[j][i] for j in range(3)] for i in range(3)]
    scale = _mul(inverse3(tuple(tuple(r) for r in primaries)), white)
    rgb_to_xyz = [[primaries[i][j] * scale[j] for j in range(3)] for i in range(3)]
    cone_src, cone_dst = _mul(BRADFORD, white), _mul(BRADFORD, D50)
    gain = [[cone_dst[i] / cone_src[i] if i == j else 0.0 for j in range(3)] for i in range(3)]
    adapt = _matmul(inverse3(BRADFORD), _matmul(gain, [list(r) for r in BRADFORD]))
    return _matmul(adapt, rgb_to_xyz)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _tag_table(tags: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    offset = 128 + 4 + 12 * len(tags)
    table, blob = b"", b""
    for sig, data in tags:
        padded = data + bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(blob), len(data))
        blob += padded
    return struct.pack(">I", len(tags)) + table, blob


def _desc(text: bytes) -> bytes:
    return b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(8) + bytes(3) + bytes(67)


def display_p3_profile() -> bytes:
    """An ICC v2 RGB display profile: Display P3 primaries, D65 white, the sRGB curve."""
    curve = [round(srgb_decode(i / 1023) * 65535) for i in range(1024)]
    trc = b"curv" + bytes(4) + struct.pack(">I", len(curve)) + struct.pack(f">{len(curve)}H", *curve)
    colorants = p3_colorants_d50()
    tags = [
        (b"desc", _desc(b"Display P3 (Thumbnailify test)")),
        (b"cprt", b"text" + bytes(4) + b"No copyright, test data\0"),
        (b"wtpt", b"XYZ " + bytes(4) + b"".join(_s15(v) for v in D50)),
        *((sig, b"XYZ " + bytes(4) + b"".join(_s15(colorants[row][col]) for row in range(3)))
          for col, sig in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    table, blob = _tag_table(tags)
    size = 128 + len(table) + len(blob)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(24) + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50) + bytes(48)
    )
    assert len(header) == 128
    return header + table + blob
