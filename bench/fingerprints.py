#!/usr/bin/env python3
"""What the placeholders and the perceptual hash cost a worker per item.

    .venv/bin/python -m bench.fingerprints [--runs 300]

For each test photograph, its default 100x100 thumbnail is made once (ThumbHandler); then, timed
per call over --runs calls: taking the two samples from that thumbnail's pixels (sRGB, first
frame, as the handler does), the ThumbHash and the BlurHash (4x3) of the one fitted into
SAMPLE_SIDE (16), and the pHash of the one squeezed into SQUARE_SIDE x SQUARE_SIDE (32). CPU time of the
calling thread, so that other processes on a shared machine do not count. Prints the median and
the 95th percentile per item of each, and the total; the target is a median under 2 ms each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from wand.image import Image

from bench.support import PHOTOS, percentile, print_table, run_script
from thumbnailify.settings import LimitsSettings, ThumbnailSettings
from thumbnailify.worker.fingerprints import blurhash, phash, thumbhash
from thumbnailify.worker.handlers.image import ThumbHandler, apply_limits

TARGET_MS = 2.0


def timed(call: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.thread_time()
        call()
        times.append((time.thread_time() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    apply_limits(LimitsSettings())
    handler = ThumbHandler(ThumbnailSettings(), LimitsSettings())
    costs: dict[str, list[float]] = {"samples": [], "thumbhash": [], "blurhash": [], "phash": []}
    for photo in sorted(PHOTOS.glob("*.jpg")) + sorted(PHOTOS.glob("*.png")):
        with Image(blob=photo.read_bytes()) as img:
            img.transform(resize="100x100>")
            costs["samples"] += timed(lambda img=img: handler.samples(img), args.runs)
            samples = handler.samples(img)
        costs["thumbhash"] += timed(lambda s=samples.picture: thumbhash.encode(s), args.runs)
        costs["blurhash"] += timed(lambda s=samples.picture: blurhash.encode(s), args.runs)
        costs["phash"] += timed(lambda s=samples.square: phash.phash(s), args.runs)
    rows = []
    for name, times in costs.items():
        median, p95 = percentile(times, 0.5), percentile(times, 0.95)
        rows.append([name, f"{median:.3f}", f"{p95:.3f}", f"< {TARGET_MS}", "yes" if median < TARGET_MS else "NO"])
    total = sum(percentile(times, 0.5) for times in costs.values())
    rows.append(["all four", f"{total:.3f}", "", "", ""])
    print_table(["per item", "median ms", "p95 ms", "target", "met"], rows,
                title=f"Fingerprints of a 100x100 thumbnail ({args.runs} runs per photo)")
    return 0 if all(percentile(times, 0.5) < TARGET_MS for times in costs.values()) else 1


if __name__ == "__main__":
    run_script(main)
