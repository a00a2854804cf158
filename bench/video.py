#!/usr/bin/env python3
"""Video thumbnails: our video worker against the ffmpeg command line, and its memory on 4K.

    .venv/bin/python -m bench.video [--rounds 9]

(1) A 1080p H.264 MP4 (3 s of a moving photo, CRF 20 capped at 12 Mbit/s, as a phone records): VideoHandler.make
in this process (the worker's time for a job: open, decode, scale, JPEG) against
`ffmpeg -ss 0 -i FILE -frames:v 1 -vf scale=100:-1 OUT.jpg` (Debian's ffmpeg, a fresh process each
time, as the baseline is stated), interleaved rounds, medians. The same for a 1080p video with a
2 s black intro (info: the keyframe scan, the seek and 60 frames decoded). (2) The same 1080p file
and a 4K (3840x2160, 40 Mbit/s) one POSTed to the real distributed service: POST -> Completed,
then the video worker's peak RSS (VmHWM). Ends with one table: figure, ours, baseline, ratio, target, met.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import psutil
import requests
from PIL import Image, ImageOps

from bench.support import (
    CORPUS_DIR,
    PHOTOS,
    BenchService,
    ForeignLoad,
    interleaved,
    met,
    on_sigterm_raise,
    post_to_completed,
    print_table,
    run_script,
    vm_hwm_mb,
    wait_for_quiet,
)
from thumbnailify.media import MP4
from thumbnailify.settings import load_settings
from thumbnailify.worker.handlers.image import apply_limits
from thumbnailify.worker.handlers.video import VideoHandler

FPS = 30


def _movie(path: Path, size: tuple[int, int], seconds: float, bit_rate: int, black_seconds: float = 0.0) -> None:
    """A slow pan over a test photo with sensor-like noise in every frame, at a phone's bit rate
    (capped quality-based rate control, as a phone's encoder keeps a black intro cheap)."""
    with Image.open(PHOTOS / "astronaut.jpg") as photo:
        wide = ImageOps.fit(photo.convert("RGB"), (size[0] + 200, size[1] + 100), Image.Resampling.LANCZOS)
    black = Image.new("RGB", size)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w", options={"movflags": "+faststart"}) as out:
        cap = {"crf": "20", "maxrate": str(bit_rate), "bufsize": str(2 * bit_rate)}
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast"} | cap)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(round(seconds * FPS)):
            if index < black_seconds * FPS:
                picture = black
            else:
                x, y = index * 2, index
                noise = Image.effect_noise(size, 40).convert("RGB")
                picture = Image.blend(wide.crop((x, y, x + size[0], y + size[1])), noise, 0.1)
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    partial.replace(path)


def _cached(name: str, make: Callable[[Path], None]) -> Path:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    path = CORPUS_DIR / name
    if not path.exists():
        make(path)
    return path


def inputs() -> dict[str, Path]:
    return {
        "1080p": _cached("video-1080p-h264-v2.mp4", lambda p: _movie(p, (1920, 1080), 3, 12_000_000)),
        "1080p black intro": _cached("video-1080p-h264-black-intro-v2.mp4",
                                     lambda p: _movie(p, (1920, 1080), 3, 12_000_000, black_seconds=2)),
        "4K": _cached("video-2160p-h264-v2.mp4", lambda p: _movie(p, (3840, 2160), 2, 40_000_000)),
    }


def ffmpeg_command(ffmpeg: str, source: Path, out: Path) -> Callable[[], None]:
    argv = [ffmpeg, "-v", "error", "-y", "-ss", "0", "-i", str(source), "-frames:v", "1", "-vf", "scale=100:-1",
            str(out)]
    return lambda: subprocess.run(argv, check=True)


def video_worker_pids(service: BenchService) -> list[int]:
    return [proc.pid for proc in service.family() if proc.cmdline()[-2:] == ["--kind", "video"]]


def through_service(files: list[Path]) -> tuple[list[float], float]:
    """POST -> Completed of each file (after one warm-up), and the video worker's VmHWM after all."""
    with BenchService("distributed", workers=1) as service:
        session = requests.Session()
        post_to_completed(service, session, base64.b64encode(files[0].read_bytes()), MP4.name)
        times = [post_to_completed(service, session, base64.b64encode(path.read_bytes()), MP4.name)
                 for path in files]
        peak = max(vm_hwm_mb(pid) for pid in video_worker_pids(service))
    return times, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved in-process rounds")
    args = parser.parse_args()
    on_sigterm_raise()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("no ffmpeg on PATH: `bash scripts/install-system.sh bench` (or `make bench`) installs Debian's")
        return 2
    begun = time.perf_counter()
    files = inputs()
    busy = wait_for_quiet()
    load = ForeignLoad()
    print(f"inputs ready after {time.perf_counter() - begun:.0f}s; machine CPU busy before start: {busy:.0f}%")
    settings = load_settings()
    apply_limits(settings.limits)
    ours = VideoHandler.from_settings(settings)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("1080p", "1080p black intro"):
            path = files[label]
            spent = interleaved({"ffmpeg": ffmpeg_command(ffmpeg, path, Path(tmp) / "out.jpg"),
                                 "ours": lambda p=path: ours.make(p, MP4)}, args.rounds)
            ratio = spent["ours"] / spent["ffmpeg"]
            target = label == "1080p"
            rows.append([f"{label} H.264, worker time", f"{spent['ours'] * 1000:.0f} ms",
                         f"{spent['ffmpeg'] * 1000:.0f} ms ffmpeg CLI", f"{ratio:.2f}",
                         "<= 150 ms, <= 1.5" if target else "(info)",
                         met(spent["ours"] <= 0.150 and ratio <= 1.5) if target else ""])
    print(f"in-process done after {time.perf_counter() - begun:.0f}s")
    (hd, uhd), peak = through_service([files["1080p"], files["4K"]])
    rows.append(["1080p H.264, POST -> Completed (info)", f"{hd * 1000:.0f} ms", "", "", "", ""])
    rows.append(["4K H.264, POST -> Completed (info)", f"{uhd * 1000:.0f} ms", "", "", "", ""])
    rows.append(["video worker peak RSS after 1080p and 4K", f"{peak:.1f} MB", "", "", "<= 256 MB", met(peak <= 256)])
    sizes = ", ".join(f"{label} {path.stat().st_size / 1e6:.1f} MB" for label, path in files.items())
    print_table(["figure", "ours", "baseline", "ratio", "target", "met"], rows,
                title=f"bench.video ({sizes}; {psutil.cpu_count()} CPUs; FFmpeg {av.ffmpeg_version_info} in PyAV "
                      f"{av.__version__})")
    print(load.summary())
    return 0 if all(row[5] != "NO" for row in rows) else 1


if __name__ == "__main__":
    run_script(main)
