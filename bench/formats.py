#!/usr/bin/env python3
"""What a size's format costs a photo job: the same sizes in each format, in this process.

    .venv/bin/python -m bench.formats [--rounds 5]

ThumbHandler (the photo worker's handler) makes `default=100x100,large=400x400` of a 12 MP q90
JPEG of bench.worker's corpus and of bench.images' 100-frame 300x225 animated GIF, with `large`
in the source's own format and then named `:png`, `:webp`, `:avif` (and `:gif` for the GIF), in
interleaved rounds (median). Ends with one table: source, large's format, ms per job, x the
source's own format, large's bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.images import photo_gif
from bench.support import interleaved, make_corpus, on_sigterm_raise, print_table, run_script, wait_for_quiet
from thumbnailify.media import GIF, JPEG, MediaType
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, load_settings

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from thumbnailify.worker.handlers import image as thumbnails

FORMATS = {JPEG: ("", ":png", ":webp", ":avif"), GIF: ("", ":png", ":webp", ":avif", ":gif")}


def handler(large_format: str) -> thumbnails.ThumbHandler:
    return thumbnails.ThumbHandler(ThumbnailSettings(sizes=f"default=100x100,large=400x400{large_format}"),
                                   LimitsSettings())


def rows_for(source: Path, media_type: MediaType, rounds: int) -> list[list[str]]:
    handlers = {fmt: handler(fmt) for fmt in FORMATS[media_type]}
    made = {fmt: made_by.make(source, media_type) for fmt, made_by in handlers.items()}
    seconds = interleaved({fmt: lambda h=made_by: h.make(source, media_type) for fmt, made_by in handlers.items()},
                          rounds)
    own = seconds[""]
    rows = []
    for fmt in handlers:
        large = made[fmt].sizes[1]
        rows.append([source.name, fmt.lstrip(":") or f"own ({large.media_type.extension})",
                     f"{seconds[fmt] * 1000:.0f}", f"{seconds[fmt] / own:.2f}", f"{len(large.data):,}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    on_sigterm_raise()
    thumbnails.apply_limits(load_settings().limits)
    jpeg = make_corpus(jpegs=1, pngs=0)[0].path
    gif = photo_gif()
    load = wait_for_quiet()
    rows = rows_for(jpeg, JPEG, args.rounds) + rows_for(gif, GIF, args.rounds)
    print_table(["source", "large (400x400) as", "ms per job", "x own format", "large's bytes"], rows,
                f"default=100x100,large=400x400[:format], {args.rounds} rounds, CPU busy at start {load:.0f}%")
    return 0


if __name__ == "__main__":
    run_script(main)
