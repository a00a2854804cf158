#!/usr/bin/env python3
"""Where a photo worker's time goes, per job: every millisecond outside the JPEG decode.

    .venv/bin/python -m bench.budget [--jobs 100]

The server alone (distributed: Redis + RabbitMQ, files on the volume) takes the uploads of one
12 MP JPEG (each with a JPEG comment of its own, so nothing is reused); then this process runs
the photo worker's own loop (`thumbnailify.worker.__main__.build` and `handle`, as
`python -m thumbnailify.worker` does) over the queue, with a timer around each call the job
makes: receive (the next delivery), record reads (get, content lookup), record writes (attempt,
Processing, Completed: the record's history entry and its event are written by the same Lua call),
file moves (the upload opened, thumbnails written and renamed, upload removed), ack, and the
handler split into ImageMagick's read (the decode) and the rest (orient, resize, colour, encode).
Whatever the timers do not cover (logging, metrics, retry wrapper, heartbeat, scratch folder) is
'the loop itself'. Pillow's draft + thumbnail + save of the same photo runs in the same process
before and after, as the yardstick. Wall milliseconds per job: mean and median over the jobs.
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
SOURCE = "file moves (open upload, write + rename thumbnail, remove upload)"
LOOP = "the loop itself (log, metrics, retry wrapper, heartbeat, scratch)"


class Timers:
    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = defaultdict(list)  # label -> seconds per job
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, label: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.current[label] += time.perf_counter() - started
        return timed

    def end_job(self) -> dict[str, float]:
        finished, self.current = dict(self.current), defaultdict(float)
        for label, seconds in finished.items():
            self.spent[label].append(seconds)
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
        started = time.perf_counter()
        with opener(media_id) as path:
            timers.current[SOURCE] += time.perf_counter() - started
            yield path
            started = time.perf_counter()
        timers.current[SOURCE] += time.perf_counter() - started

    runner.files.source = source
    runner.handler.make = timers.wrap(HANDLER_REST, runner.handler.make)
    Image.read = timers.wrap(DECODE, Image.read)


ROWS = [*PARTS, LOOP, HANDLER_REST, DECODE]


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


def run_jobs(service: BenchService, jobs: int, warm_up: int) -> tuple[Timers, list[float], list[float]]:
    """The worker's loop over the queued jobs, timed; (timers, wall and CPU seconds per measured job)."""
    os.environ.update(service.env)
    settings = load_settings()
    apply_limits(settings.limits)
    scratch = ScratchDir(service.workdir / "scratch")
    runner, consumer, store = build(settings, "image", Heartbeat(600), scratch.path)
    timers = Timers()
    instrument(timers, runner, consumer)
    totals, cpu = [], []
    try:
        for index in range(warm_up + jobs):
            started, cpu_started = time.perf_counter(), time.process_time()
            delivery = None
            while delivery is None:
                delivery = consumer.next(1.0)
            handle(runner, consumer, delivery)
            scratch.empty()
            consumer.settle_abandoned(runner.abandon)
            finished = timers.end_job()
            if index < warm_up:  # first jobs pay for connections and caches
                for label in finished:
                    timers.spent[label].pop()
                continue
            totals.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    finally:
        consumer.close()
        store.close()
    spent = timers.spent
    # The handler's timer covers its read: the rest of the handler is what remains.
    spent[HANDLER_REST] = [whole - read for whole, read in zip(spent[HANDLER_REST], spent[DECODE], strict=True)]
    covered = [sum(spent[label][job] for label in ROWS if label != LOOP and spent[label]) for job in range(jobs)]
    spent[LOOP] = [total - part for total, part in zip(totals, covered, strict=True)]
    return timers, totals, cpu


def rows(timers: Timers, totals: list[float], cpu: list[float], pillow: tuple[float, float]) -> list[list[str]]:
    wall_ms, cpu_ms = pillow

    def row(label: str, seconds: list[float]) -> list[str]:
        values = [value * 1000 for value in seconds]
        return [label, f"{statistics.fmean(values):.2f}", f"{statistics.median(values):.2f}",
                f"{statistics.fmean(values) / wall_ms:.3f}"]

    table = [row(label, timers.spent.get(label) or [0.0]) for label in ROWS]
    outside = [total - read for total, read in zip(totals, timers.spent[DECODE], strict=True)]
    table.append(row("outside the decode (every row above but the decode)", outside))
    table.append(row("whole job (wall)", totals))
    table.append(row("whole job (this process's CPU)", cpu))
    table.append(["Pillow draft + thumbnail + save (wall; CPU)", f"{wall_ms:.2f}", f"CPU {cpu_ms:.2f}", "1.000"])
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
        timers, totals, cpu = run_jobs(service, args.jobs, warm_up)
        completed = len(completed_items(service, requests.Session(), ids))
    after = pillow_ms(photo, 15), pillow_cpu_ms(photo, 15)
    pillow = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
    print_table(["per job", "mean ms", "median ms", "mean / Pillow wall"], rows(timers, totals, cpu, pillow),
                f"photo worker budget, {args.jobs} jobs of a 12 MP JPEG ({completed} of {len(ids)} Completed); "
                f"machine {busy:.0f}% busy at the start; Pillow {before[0]:.1f} ms before, {after[0]:.1f} after")
    return 0 if completed == len(ids) else 1


if __name__ == "__main__":
    run_script(main)
