"""What the worker says about a picture from a few of its pixels: the placeholders a page paints
while the thumbnail loads (ThumbHash, BlurHash) and a perceptual hash for near-duplicates.

All three come from two small RGBA samples (sRGB, upright) that the handler takes from the
smallest thumbnail it has made anyway, so none of them decodes anything. Each is a few hundred dot
products of short rows (plain Python: numpy would add 13 MB to every worker for about a
millisecond of work; docs/performance.md has the cost per item).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from thumbnailify.worker.fingerprints import blurhash, phash, thumbhash
from thumbnailify.worker.fingerprints.sample import SAMPLE_SIDE, SQUARE_SIDE, Sample, Samples

__all__ = ["SAMPLE_SIDE", "SQUARE_SIDE", "Fingerprints", "Sample", "Samples", "fingerprints"]


@dataclass(frozen=True)
class Fingerprints:
    thumbhash: str  # standard base64, as ThumbHash's own pages show it
    blurhash: str  # 4x3 components
    phash: str  # 64 bits as 16 hexadecimal digits


def fingerprints(samples: Samples) -> Fingerprints:
    return Fingerprints(
        thumbhash=base64.b64encode(thumbhash.encode(samples.picture)).decode(),
        blurhash=blurhash.encode(samples.picture),
        phash=f"{phash.phash(samples.square):016x}",
    )
