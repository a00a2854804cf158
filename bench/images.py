#!/usr/bin/env python3
"""Phone photos: animated GIF, 12 MP HEIC, wide-gamut colour, several sizes, against Pillow.

    .venv/bin/python -m bench.images [--rounds 5] [--gif-runs 5]

(1) A 100-frame 300x225 animated GIF of photo content: POST -> Completed through the real
distributed service (1 worker) against Pillow's ImageSequence + thumbnail + save of the same
file in this process, and the bytes of both; in this process, that GIF with a second size as
large as the GIF (never enlarged) against one size. (2) A 12 MP HEIC (and an iPhone-like one
tagged Display P3): our ThumbHandler in this process against pillow-heif decode + Pillow thumbnail +
JPEG save, in interleaved rounds. (3) The worker's peak RSS (VmHWM) after the HEICs, the AVIF
and the GIF went through it. (4) CIEDE2000 of flat patches tagged with Display P3, Adobe RGB and
ProPhoto, through ThumbHandler, against the sRGB colour they were authored as (and, to show what
the profile is worth, the same numbers read as sRGB). (5) Three sizes against one size on the
12 MP JPEGs of bench.worker. Ends with one table: figure, ours, baseline, ratio, target, met.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pillow_heif
import requests
from PIL import Image, ImageSequence, ImageStat

from bench.support import (
    CORPUS_DIR,
    PHOTOS,
    BenchService,
    ForeignLoad,
    interleaved,
    make_corpus,
    met,
    on_sigterm_raise,
    post_to_completed,
    print_table,
    run_script,
    vm_hwm_mb,
    wait_for_quiet,
)
from tests import corpus
from tests.colour import delta_e
from thumbnailify.media import AVIF, GIF, HEIC, JPEG, PNG, WEBP, MediaType
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, load_settings

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from thumbnailify.worker.handlers import image as thumbnails

pillow_heif.register_heif_opener()

THREE_SIZES = "default=100x100,medium=200x200,large=400x400"
GIF_TWO_SIZES = "default=100x100,large=400x400"
GIF_FRAMES, GIF_SIZE = 100, (300, 225)
HEIC_SIZE = (4000, 3000)


# -- inputs, made once and cached beside bench.worker's corpus -----------------------------------
def _cached(name: str, make: Callable[[], bytes]) -> Path:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    path = CORPUS_DIR / name
    if not path.exists():
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(make())
        partial.replace(path)
    return path


def photo_gif() -> Path:
    """A camera pan over a photo: every frame different, 256 colours each, as screen captures are."""

    def make() -> bytes:
        with Image.open(PHOTOS / "astronaut.jpg") as photo:
            source = photo.convert("RGB")
        frames = [source.crop((2 * i, i, 2 * i + GIF_SIZE[0], i + GIF_SIZE[1])).quantize(256) for i in range(100)]
        return corpus._encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)

    return _cached(f"anim-{GIF_FRAMES}x{GIF_SIZE[0]}x{GIF_SIZE[1]}.gif", make)


def heic_photos(jpeg: Path) -> dict[str, Path]:
    """The first 12 MP bench JPEG as HEIC (x265 takes ~20 s once), plain and Display P3-tagged."""

    def encode(tagged: bool) -> Callable[[], bytes]:
        def make() -> bytes:
            with Image.open(jpeg) as photo:
                img = photo.convert("RGB")
            extra = {"icc_profile": corpus.display_p3_profile()} if tagged else {}
            return corpus._encode(img, "HEIF", quality=80, **extra)

        return make

    return {
        "12 MP HEIC": _cached("heic-4000x3000.heic", encode(False)),
        "12 MP HEIC, Display P3": _cached("heic-4000x3000-p3.heic", encode(True)),
        "12 MP AVIF": _cached(
            "avif-4000x3000.avif",
            lambda: corpus._encode(Image.open(jpeg).convert("RGB"), "AVIF", quality=70, speed=8),
        ),
    }


# -- the baselines ---------------------------------------------------------------------------------
def pillow_gif(path: Path) -> bytes:
    with Image.open(path) as im:
        frames = []
        for frame in ImageSequence.Iterator(im):
            small = frame.copy()
            small.thumbnail((100, 100))
            frames.append(small)
        out = io.BytesIO()
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=im.info.get("duration"))
        return out.getvalue()


def pillow_heif_thumbnail(path: Path) -> bytes:
    """pillow-heif decode + Pillow thumbnail + JPEG save (no colour management: it only keeps the profile)."""
    with Image.open(path) as im:
        im.thumbnail((100, 100))
        out = io.BytesIO()
        im.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue()


def handler(sizes: str = "") -> thumbnails.ThumbHandler:
    settings = load_settings()
    thumbnails.apply_limits(settings.limits)
    return thumbnails.ThumbHandler(ThumbnailSettings(sizes=sizes), LimitsSettings())


# -- the service -----------------------------------------------------------------------------------
def numbered_gif(data: bytes, number: int) -> bytes:
    """The same GIF with a comment extension naming the run before its trailer: other bytes, so the
    worker makes its thumbnail instead of copying the one of an identical earlier upload."""
    comment = f"run {number}".encode()
    return data[:-1] + b"\x21\xfe" + bytes([len(comment)]) + comment + b"\x00" + data[-1:]


def through_service(gif: Path, heavy: list[tuple[Path, MediaType]], runs: int) -> tuple[float, bytes, float]:
    """Median GIF POST -> Completed, our GIF thumbnail, and the worker's VmHWM after everything."""
    with BenchService("distributed", workers=1) as service:
        session = requests.Session()
        bodies = [base64.b64encode(numbered_gif(gif.read_bytes(), run)) for run in range(runs + 1)]
        post_to_completed(service, session, bodies[0], "image/gif")  # warm-up
        times = [post_to_completed(service, session, body, "image/gif") for body in bodies[1:]]
        latest = session.get(f"{service.url}/images", params={"limit": 1}, timeout=10).json()["items"][0]
        ours = session.get(f"{service.url}{latest['thumbnail']}", params={"encoding": "binary"}, timeout=10).content
        for path, media_type in heavy:
            post_to_completed(service, session, base64.b64encode(path.read_bytes()), media_type.name)
        peak = max(vm_hwm_mb(pid) for pid in service.worker_pids())
    return statistics.median(times), ours, peak


# -- colour ----------------------------------------------------------------------------------------
def colour_rows() -> list[list[str]]:
    """Worst CIEDE2000 over the four patches, per profile and format, through our handler."""
    ours = handler()
    cases = {case.name: case for case in corpus.build_cases()}
    formats = {"jpeg": JPEG, "png": PNG, "webp": WEBP, "heic": HEIC, "avif": AVIF}
    rows = []
    for label in corpus.wide_gamut_profiles():
        for ext, media_type in formats.items():
            case = cases.get(f"{ext}-{label}")
            if case is None or case.body is None:
                continue
            path = CORPUS_DIR / f"colour-{case.name}.{ext}"
            path.write_bytes(case.body)
            made = ours.make(path, media_type).sizes[0].data
            with Image.open(io.BytesIO(case.body)) as untagged:  # the numbers read as if sRGB
                ignored = untagged.convert("RGB")
            worst, worst_ignored = 0.0, 0.0
            with Image.open(io.BytesIO(made)) as thumb:
                rgb = thumb.convert("RGB")
                for box, want in corpus.PATCHES.items():
                    worst = max(worst, delta_e(_mean(rgb, box), want))
                    worst_ignored = max(worst_ignored, delta_e(_mean(ignored, box), want))
            rows.append([f"ΔE {label}, {ext.upper()}", f"{worst:.2f}", f"{worst_ignored:.2f} if ignored", "",
                         "<= 3", met(worst <= 3)])
    return rows


def _mean(img: Image.Image, box: tuple[float, float, float, float]) -> tuple[float, ...]:
    w, h = img.size
    crop = img.crop((int(box[0] * w), int(box[1] * h), round(box[2] * w), round(box[3] * h)))
    return tuple(ImageStat.Stat(crop).mean)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved in-process rounds")
    parser.add_argument("--gif-runs", type=int, default=5, help="GIF POST -> Completed runs")
    args = parser.parse_args()
    on_sigterm_raise()
    begun = time.perf_counter()
    jpegs = [item.path for item in make_corpus(4, 0)]
    gif = photo_gif()
    heics = heic_photos(jpegs[0])
    busy = wait_for_quiet()
    load = ForeignLoad()
    print(f"inputs ready after {time.perf_counter() - begun:.0f}s; machine CPU busy before start: {busy:.0f}%")
    rows: list[list[str]] = []

    ours = handler()
    gif_in_process = interleaved({"pillow": lambda: pillow_gif(gif), "ours": lambda: ours.make(gif, GIF)}, 3)
    pillow_bytes = len(pillow_gif(gif))
    gif_e2e, gif_ours, peak = through_service(
        gif, [(heics["12 MP HEIC"], HEIC), (heics["12 MP HEIC, Display P3"], HEIC), (heics["12 MP AVIF"], AVIF)],
        args.gif_runs,
    )
    ratio = gif_e2e / gif_in_process["pillow"]
    rows.append(["GIF 100x300x225, POST -> Completed", f"{gif_e2e:.3f} s", f"{gif_in_process['pillow']:.3f} s Pillow",
                 f"{ratio:.2f}", "<= 1.5", met(ratio <= 1.5)])
    in_process = gif_in_process["ours"] / gif_in_process["pillow"]
    rows.append(["GIF, in-process (info)", f"{gif_in_process['ours']:.3f} s",
                 f"{gif_in_process['pillow']:.3f} s Pillow", f"{in_process:.2f}", "", ""])
    size_ratio = len(gif_ours) / pillow_bytes
    rows.append(["GIF thumbnail bytes", f"{len(gif_ours)}", f"{pillow_bytes} Pillow", f"{size_ratio:.2f}", "<= 1.2",
                 met(size_ratio <= 1.2)])
    two = handler(GIF_TWO_SIZES)
    spent = interleaved({"one": lambda: ours.make(gif, GIF), "two": lambda: two.make(gif, GIF)}, args.rounds)
    ratio = spent["two"] / spent["one"]
    rows.append([f"GIF, 2 sizes ({GIF_TWO_SIZES})", f"{spent['two']:.3f} s", f"{spent['one']:.3f} s one size",
                 f"{ratio:.2f}", "<= 1.5", met(ratio <= 1.5)])
    print(f"GIF done after {time.perf_counter() - begun:.0f}s")

    for label, path in heics.items():
        media_type = AVIF if path.suffix == ".avif" else HEIC
        spent = interleaved(
            {"pillow": lambda p=path: pillow_heif_thumbnail(p), "ours": lambda p=path, t=media_type: ours.make(p, t)},
            args.rounds,
        )
        ratio = spent["ours"] / spent["pillow"]
        target = label == "12 MP HEIC"
        rows.append([f"{label}, worker time", f"{spent['ours']:.3f} s", f"{spent['pillow']:.3f} s pillow-heif",
                     f"{ratio:.2f}", "<= 1.5" if target else "(info)", met(ratio <= 1.5) if target else ""])
    rows.append(["worker peak RSS after GIF, HEICs, AVIF", f"{peak:.1f} MB", "", "", "<= 256 MB", met(peak <= 256)])
    print(f"HEIC done after {time.perf_counter() - begun:.0f}s")

    three = handler(THREE_SIZES)
    spent = interleaved(
        {"one": lambda: [ours.make(p, JPEG) for p in jpegs], "three": lambda: [three.make(p, JPEG) for p in jpegs]},
        args.rounds,
    )
    ratio = spent["three"] / spent["one"]
    rows.append([f"12 MP JPEG, 3 sizes ({THREE_SIZES})", f"{spent['three'] / len(jpegs) * 1000:.1f} ms",
                 f"{spent['one'] / len(jpegs) * 1000:.1f} ms one size", f"{ratio:.2f}", "<= 1.3", met(ratio <= 1.3)])
    rows += colour_rows()
    print_table(["figure", "ours", "baseline", "ratio", "target", "met"], rows,
                title=f"bench.images ({time.perf_counter() - begun:.0f}s)")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
