#!/usr/bin/env python3
"""Where a photo worker's time goes, per job: every millisecond outside the JPEG decode.

    .venv/bin/python -m bench.budget [--jobs 100]

The server alone (distributed: Redis + RabbitMQ, files on the volume) takes the uploads of one
12 MP JPEG (each with a JPEG comment of its own, so nothing is reused); then this process runs
the photo worker's own loop (`thumbnailify.worker.__main__.build` and `handle`, as
`python -m thumbnailify.worker` does) over the queue, with a timer around each call the job
makes: receive (the next delivery), record reads (get, content lookup), record writes (attempt,
Processing, Completed: the record's history entry and its event are written by the same Lua call),
file moves (the upload opened, thumbnails written and renamed, upload removed), ack, the
fingerprints (ThumbHash, BlurHash, pHash of the sample), and the handler split into ImageMagick's
read (the decode) and the rest (orient, resize, colour, encode).
Whatever the timers do not cover (logging, metrics, retry wrapper, heartbeat, scratch folder) is
'the loop itself'. Pillow's draft + thumbnail + save of the same photo runs in the same process
before and after, as the yardstick. Wall and CPU milliseconds per job, means over the jobs; the
ratio is of CPU times (this process's), which the other work of a shared machine moves least.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from wand.image import Image

from bench.compare import pillow_ms, unique_base64
from bench.support import (
    BenchService,
    completed_items,
    make_corpus,
    pillow_thumbnail,
    post_all,
    print_table,
    run_script,
    wait_for_quiet,
)
from thumbnailify.settings import load_settings
from thumbnailify.worker import jobs
from thumbnailify.worker.__main__ import build, handle
from thumbnailify.worker.handlers.image import apply_limits
from thumbnailify.worker.liveness import Heartbeat
from thumbnailify.worker.scratch import ScratchDir

# Row label -> the calls it covers, as (object attribute path, method name).
PARTS = {
    "receive (next delivery)": [("consumer", "next")],
    "record reads (get, content lookup)": [("store", "get"), ("store", "find_content")],
    "record writes (attempt, Processing, Completed + history + event)": [
        ("store", "add_attempt"), ("store", "transition"), ("store", "remember_content")],
    "file moves (open upload, write + rename thumbnail, remove upload)": [
        ("files", "write_thumbnails"), ("files", "remove_upload")],
    "ack": [("consumer", "ack")],
}
DECODE = "decode (ImageMagick's read, jpeg:size)"
HANDLER_REST = "orient, resize, sRGB, encode"
FINGERPRINTS = "fingerprints (ThumbHash, BlurHash, pHash of the sample)"
SOURCE = "file moves (open upload, write + rename thumbnail, remove upload)"
LOOP = "the loop itself (log, metrics, retry wrapper, heartbeat, scratch)"


class Timers:
    """Wall and CPU seconds per job under each label (the CPU time is this process's: what a
    loaded machine moves least)."""

    def __init__(self) -> None:
        self.spent: dict[str, list[tuple[float, float]]] = defaultdict(list)  # label -> (wall, CPU) per job
        self.current: dict[str, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))

    def add(self, label: str, wall: float, cpu: float) -> None:
        before = self.current[label]
        self.current[label] = (before[0] + wall, before[1] + cpu)

    def wrap(self, label: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return call(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started, time.process_time() - cpu_started)
        return timed

    def end_job(self) -> dict[str, tuple[float, float]]:
        finished, self.current = dict(self.current), defaultdict(lambda: (0.0, 0.0))
        for label, spent in finished.items():
            self.spent[label].append(spent)
        return finished


def instrument(timers: Timers, runner: Any, consumer: Any) -> None:
    holders = {"consumer": consumer, "store": runner.store, "files": runner.files}
    for label, calls in PARTS.items():
        for holder, name in calls:
            target = holders[holder]
            setattr(target, name, timers.wrap(label, getattr(target, name)))
    opener = runner.files.source

    @contextlib.contextmanager
    def source(media_id: str) -> Iterator[Path]:
        started, cpu_started = time.perf_counter(), time.process_time()
        with opener(media_id) as path:
            timers.add(SOURCE, time.perf_counter() - started, time.process_time() - cpu_started)
            yield path
            started, cpu_started = time.perf_counter(), time.process_time()
        timers.add(SOURCE, time.perf_counter() - started, time.process_time() - cpu_started)

    runner.files.source = source
    runner.handler.make = timers.wrap(HANDLER_REST, runner.handler.make)
    Image.read = timers.wrap(DECODE, Image.read)
    jobs.fingerprints = timers.wrap(FINGERPRINTS, jobs.fingerprints)


ROWS = [*PARTS, FINGERPRINTS, LOOP, HANDLER_REST, DECODE]
OUTSIDE = "outside the decode (every row above but the decode)"
WHOLE = "whole job"


def pillow_cpu_ms(photo: Path, runs: int) -> float:
    """Median CPU ms (this process) of Pillow's draft + thumbnail + save: less moved than the wall
    time by the other work on a shared machine."""
    pillow_thumbnail(photo)
    spent = []
    for _ in range(runs):
        started = time.process_time()
        pillow_thumbnail(photo)
        spent.append((time.process_time() - started) * 1000)
    return statistics.median(spent)


def run_jobs(service: BenchService, jobs: int, warm_up: int) -> Timers:
    """The worker's loop over the queued jobs, timed; every label (with the whole job and the
    loop's own share) holds one (wall, CPU) per measured job."""
    os.environ.update(service.env)
    settings = load_settings()
    apply_limits(settings.limits)
    scratch = ScratchDir(service.workdir / "scratch")
    runner, consumer, store = build(settings, "image", Heartbeat(600), scratch.path)
    timers = Timers()
    instrument(timers, runner, consumer)
    try:
        for index in range(warm_up + jobs):
            started, cpu_started = time.perf_counter(), time.process_time()
            delivery = None
            while delivery is None:
                delivery = consumer.next(1.0)
            handle(runner, consumer, delivery)
            scratch.empty()
            consumer.settle_abandoned(runner.abandon)
            timers.add(WHOLE, time.perf_counter() - started, time.process_time() - cpu_started)
            finished = timers.end_job()
            if index < warm_up:  # first jobs pay for connections and caches
                for label in finished:
                    timers.spent[label].pop()
    finally:
        consumer.close()
        store.close()
    spent = timers.spent
    # The handler's timer covers its read; the loop's share is what no timer covers.
    spent[HANDLER_REST] = [_minus(whole, read) for whole, read in zip(spent[HANDLER_REST], spent[DECODE], strict=True)]
    for job in range(jobs):
        covered = (0.0, 0.0)
        for label in ROWS:
            if label != LOOP and spent[label]:
                covered = (covered[0] + spent[label][job][0], covered[1] + spent[label][job][1])
        spent[LOOP].append(_minus(spent[WHOLE][job], covered))
    spent[OUTSIDE] = [_minus(whole, read) for whole, read in zip(spent[WHOLE], spent[DECODE], strict=True)]
    return timers


def _minus(whole: tuple[float, float], part: tuple[float, float]) -> tuple[float, float]:
    return whole[0] - part[0], whole[1] - part[1]


def rows(timers: Timers, pillow: tuple[float, float]) -> list[list[str]]:
    wall_ms, cpu_ms = pillow

    def row(label: str) -> list[str]:
        spent = timers.spent.get(label) or [(0.0, 0.0)]
        wall = statistics.fmean(value[0] for value in spent) * 1000
        cpu = statistics.fmean(value[1] for value in spent) * 1000
        return [label, f"{wall:.2f}", f"{cpu:.2f}", f"{cpu / cpu_ms:.3f}"]

    table = [row(label) for label in [*ROWS, OUTSIDE, WHOLE]]
    table.append(["Pillow draft + thumbnail + save, same process", f"{wall_ms:.2f}", f"{cpu_ms:.2f}", "1.000"])
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    warm_up = 5
    photo = next(item.path for item in make_corpus(1, 0) if item.media_type == "image/jpeg")
    jpeg = photo.read_bytes()
    busy = wait_for_quiet(max_wait=10)
    before = pillow_ms(photo, 15), pillow_cpu_ms(photo, 15)
    with BenchService("distributed", workers=None) as service:
        ids = post_all(service, warm_up + args.jobs, lambda _index: (unique_base64(jpeg), "image/jpeg"))
        timers = run_jobs(service, args.jobs, warm_up)
        completed = len(completed_items(service, requests.Session(), ids))
    after = pillow_ms(photo, 15), pillow_cpu_ms(photo, 15)
    pillow = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
    print_table(["per job (mean)", "wall ms", "CPU ms", "CPU / Pillow CPU"], rows(timers, pillow),
                f"photo worker budget, {args.jobs} jobs of a 12 MP JPEG ({completed} of {len(ids)} Completed); "
                f"machine {busy:.0f}% busy at the start; Pillow {before[0]:.1f} ms before, {after[0]:.1f} after")
    return 0 if completed == len(ids) else 1


if __name__ == "__main__":
    run_script(main)
