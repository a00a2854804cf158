"""What the worker says about a picture from a few of its pixels: the placeholders a page paints
while the thumbnail loads (ThumbHash, BlurHash) and a perceptual hash for near-duplicates.

All three come from one small RGBA sample (at most SAMPLE_SIDE on a side, sRGB, upright) that the
handler takes from the smallest thumbnail it has made anyway, so none of them decodes anything.
Each is a few dozen dot products of short rows (plain Python: numpy would add 13 MB to every
worker for well under a millisecond of work; docs/performance.md has the cost per item).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from thumbnailify.worker.fingerprints import blurhash, phash, thumbhash
from thumbnailify.worker.fingerprints.sample import SAMPLE_SIDE, Sample

__all__ = ["SAMPLE_SIDE", "Fingerprints", "Sample", "fingerprints"]


@dataclass(frozen=True)
class Fingerprints:
    thumbhash: str  # standard base64, as ThumbHash's own pages show it
    blurhash: str  # 4x3 components
    phash: str  # 64 bits as 16 hexadecimal digits


def fingerprints(sample: Sample) -> Fingerprints:
    return Fingerprints(
        thumbhash=base64.b64encode(thumbhash.encode(sample)).decode(),
        blurhash=blurhash.encode(sample),
        phash=f"{phash.phash(sample):016x}",
    )
