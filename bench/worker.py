#!/usr/bin/env python3
"""Worker throughput and memory.

    .venv/bin/python -m bench.worker [--rounds 3] [--jpegs 12] [--pngs 6] [--jobs 72]

(a) bare Pillow and (b) our ThumbHandler over the same 12 MP JPEG / 3-4 MP PNG corpus, in this one
process, in interleaved rounds (order alternating) so neither gets a warmer cache or CPU;
(c) thumbnails/s through the real distributed service (Redis + RabbitMQ) with 1 then 2 workers,
both while the jobs are being uploaded and draining a backlog queued beforehand (no uploads
competing for the 2 cores); (d) a worker's peak RSS (VmHWM) over the 12 MP JPEGs, and over the
mixed corpus for information. Ends with one table: figure, target, met.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections import defaultdict
from dataclasses import dataclass

import requests

from bench.support import (
    BenchService,
    CorpusFile,
    ForeignLoad,
    completed_items,
    drain,
    make_corpus,
    met,
    on_sigterm_raise,
    pillow_thumbnail,
    post_all,
    print_table,
    run_script,
    vm_hwm_mb,
    wait_for_quiet,
)
from thumbnailify.media import BY_NAME
from thumbnailify.record import parse_iso
from thumbnailify.settings import load_settings

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from thumbnailify.worker.handlers import image as thumbnails

DRAIN_TIMEOUT = 60.0  # per service run; a stuck job fails the bench instead of hanging it


def in_process(corpus: list[CorpusFile], rounds: int) -> dict[tuple[str, str], float]:
    """Seconds spent per (method, media type), summed over the rounds."""
    settings = load_settings()
    thumbnails.apply_limits(settings.limits)
    handler = thumbnails.ThumbHandler(settings.thumbnail, settings.limits)

    def ours(item: CorpusFile) -> None:
        handler.make(item.path, BY_NAME[item.media_type])

    def pillow(item: CorpusFile) -> None:
        pillow_thumbnail(item.path)

    methods = {"pillow": pillow, "ours": ours}
    for item in corpus:  # warm-up, untimed: page cache, codec init, lazy imports
        pillow(item)
        ours(item)
    spent: dict[tuple[str, str], float] = defaultdict(float)
    for index in range(rounds):
        order = ["pillow", "ours"] if index % 2 == 0 else ["ours", "pillow"]
        for item in corpus:
            for name in order:  # per file, so a noisy moment hits both methods alike
                started = time.perf_counter()
                methods[name](item)
                spent[name, item.media_type] += time.perf_counter() - started
    return spent


@dataclass
class QueueRun:
    rate: float  # thumbnails/s
    completed: int
    upload_seconds: float
    peak_mb: float  # the workers' highest VmHWM


def _post_all(service: BenchService, corpus: list[CorpusFile], jobs: int) -> list[str]:
    bodies = [(base64.b64encode(item.path.read_bytes()), item.media_type) for item in corpus]
    return post_all(service, jobs, lambda index: bodies[index % len(bodies)])


def _drain(service: BenchService, session: requests.Session, ids: list[str], since: float) -> tuple[float, int]:
    return drain(service, session, ids, since, DRAIN_TIMEOUT)


def queue_throughput(corpus: list[CorpusFile], jobs: int, workers: int) -> QueueRun:
    """Workers running while the jobs are posted as fast as possible: POSTs to all Completed."""
    with BenchService("distributed", workers=workers) as service:
        session = requests.Session()
        started = time.perf_counter()
        ids = _post_all(service, corpus, jobs)
        uploaded = time.perf_counter() - started
        elapsed, completed = _drain(service, session, ids, started)
        peak = max((vm_hwm_mb(pid) for pid in service.worker_pids()), default=0.0)
    return QueueRun(completed / elapsed, completed, uploaded, peak)


def backlog_drain(corpus: list[CorpusFile], jobs: int, workers: int) -> QueueRun:
    """Jobs queued first (server alone), then workers started: their throughput without uploads
    competing for the CPU. Timed from the first to the last completion, so start-up is excluded."""
    with BenchService("distributed", workers=None) as service:
        session = requests.Session()
        started = time.perf_counter()
        ids = _post_all(service, corpus, jobs)
        uploaded = time.perf_counter() - started
        service.start_workers(workers)
        _, completed = _drain(service, session, ids, time.perf_counter())
        listed = completed_items(service, session, ids)
        stamps = sorted(parse_iso(item["updated_at"]).timestamp() for item in listed)
        peak = max((vm_hwm_mb(pid) for pid in service.worker_pids()), default=0.0)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    return QueueRun(rate, completed, uploaded, peak)


def jpeg_peak_rss(corpus: list[CorpusFile]) -> float:
    """The worker's VmHWM after thumbnailing every 12 MP JPEG once (the target's corpus)."""
    jpegs = [item for item in corpus if item.media_type == "image/jpeg"]
    with BenchService("distributed", workers=1) as service:
        session = requests.Session()
        ids = _post_all(service, jpegs, len(jpegs))
        _drain(service, session, ids, time.perf_counter())
        return max((vm_hwm_mb(pid) for pid in service.worker_pids()), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jpegs", type=int, default=12)
    parser.add_argument("--pngs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=72, help="jobs posted per service run")
    args = parser.parse_args()
    on_sigterm_raise()
    begun = time.perf_counter()
    corpus = make_corpus(args.jpegs, args.pngs)
    busy = wait_for_quiet()
    load = ForeignLoad()
    print(f"corpus: {args.jpegs} JPEG 4000x3000 + {args.pngs} PNG 2000x1500/2400x1600, {args.rounds} rounds; "
          f"machine CPU busy before start: {busy:.0f}%")

    spent = in_process(corpus, args.rounds)
    counts = defaultdict(int)
    for item in corpus:
        counts[item.media_type] += args.rounds

    def rate(method: str, media_type: str | None = None) -> float:
        types = [media_type] if media_type else list(counts)
        return sum(counts[t] for t in types) / sum(spent[method, t] for t in types)

    rows: list[list[str]] = []
    for label, media_type in (("12 MP JPEG", "image/jpeg"), ("3-4 MP PNG", "image/png"), ("whole corpus", None)):
        pillow, ours = rate("pillow", media_type), rate("ours", media_type)
        target = media_type is None
        rows.append([f"in-process, pillow, {label}", f"{pillow:.1f} img/s", "", ""])
        rows.append([f"in-process, ours, {label}", f"{ours:.1f} img/s", "", ""])
        rows.append([
            f"ours / pillow, {label}", f"{ours / pillow:.2f}",
            ">= 0.9" if target else "", met(ours / pillow >= 0.9) if target else "",
        ])
    print(f"in-process done after {time.perf_counter() - begun:.0f}s")

    runs: list[QueueRun] = []
    for label, measure in (("uploading meanwhile", queue_throughput), ("backlog drain", backlog_drain)):
        one, two = measure(corpus, args.jobs, 1), measure(corpus, args.jobs, 2)
        runs += [one, two]
        for workers, run in ((1, one), (2, two)):
            print(f"{label}, {workers} worker(s): {run.completed}/{args.jobs} Completed, {run.rate:.2f} thumbnails/s "
                  f"(uploads took {run.upload_seconds:.1f}s), worker VmHWM {run.peak_mb:.1f} MB")
        target = label == "uploading meanwhile"  # the brief's definition; the drain explains it
        rows.append([f"queue {label}, 1 worker", f"{one.rate:.2f} thumb/s", "", ""])
        rows.append([f"queue {label}, 2 workers", f"{two.rate:.2f} thumb/s", "", ""])
        rows.append([
            f"scaling 2/1 workers, {label}", f"{two.rate / one.rate:.2f}",
            ">= 1.6" if target else "(info)", met(two.rate / one.rate >= 1.6) if target else "",
        ])
    all_done = all(run.completed == args.jobs for run in runs)
    done = "yes" if all_done else "NO"
    rows.append([f"all {len(runs)}x{args.jobs} queued jobs Completed", done, "yes", met(all_done)])
    jpeg_peak = jpeg_peak_rss(corpus)
    mixed_peak = max(run.peak_mb for run in runs)
    rows.append(["worker peak RSS, 12 MP JPEGs", f"{jpeg_peak:.1f} MB", "<= 64 MB", met(jpeg_peak <= 64)])
    rows.append(["worker peak RSS, JPEG + PNG corpus", f"{mixed_peak:.1f} MB", "(info)", ""])
    print_table(["figure", "value", "target", "met"], rows,
                title=f"bench.worker ({time.perf_counter() - begun:.0f}s)")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
