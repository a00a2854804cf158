#!/usr/bin/env python3
"""End-to-end latency and the server's memory under big concurrent uploads.

    .venv/bin/python -m bench.e2e [--runs 50] [--clients 50]

(1) POST -> Completed of one 12 MP JPEG on an otherwise idle service, sequentially, in the
distributed (Redis + RabbitMQ) and the embedded (SQLite) mode, 2 workers each; the state is polled
every 5 ms. (2) The server alone (1 process, then server.processes=2) while 50 clients upload a
20 MiB image each at the same moment; its RSS (all its processes) is sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import requests

from bench.support import (
    BenchService,
    ForeignLoad,
    make_corpus,
    met,
    on_sigterm_raise,
    percentile,
    print_table,
    run_script,
    vm_hwm_mb,
    wait_for_quiet,
)

POLL_SECONDS = 0.005
JOB_TIMEOUT = 10.0  # one 12 MP JPEG takes ~50 ms; a run this long is a failure, not a figure
WARM_UP_RUNS = 3  # first jobs pay for connections, imports and caches: not what we measure
SAMPLE_SECONDS = 0.02
UPLOAD_BYTES = 20 * 1024 * 1024 - 4096  # just inside limits.max_upload_bytes (decoded)


@dataclass
class Latency:
    total_ms: list[float]
    post_ms: list[float]
    failures: int


def latency(mode: str, body: bytes, runs: int) -> Latency:
    with BenchService(mode, workers=2) as service:
        session = requests.Session()
        totals: list[float] = []
        posts: list[float] = []
        failures = 0
        for index in range(WARM_UP_RUNS + runs):
            started = time.perf_counter()
            response = session.post(
                f"{service.url}/images", data=body, headers={"Content-Type": "image/jpeg"}, timeout=30
            )
            posted = time.perf_counter()
            response.raise_for_status()
            media_id = response.json()["media_id"]
            state = "Processing"
            while state == "Processing" and time.perf_counter() - started < JOB_TIMEOUT:
                time.sleep(POLL_SECONDS)
                state = session.get(f"{service.url}/images/{media_id}", timeout=10).json()["state"]
            done = time.perf_counter()
            session.delete(f"{service.url}/images/{media_id}", timeout=10)  # keep the store small
            if index < WARM_UP_RUNS:
                continue
            if state != "Completed":
                failures += 1
                continue
            totals.append((done - started) * 1000)
            posts.append((posted - started) * 1000)
    return Latency(totals, posts, failures)


def big_png_body() -> bytes:
    """base64 of a 20 MiB (decoded) body with a real PNG signature and IHDR chunk.

    Only the server's memory is measured (no worker runs), so the rest need only be incompressible
    bytes of the right size; the server checks magic bytes, not the whole file.
    """
    ihdr = (8000).to_bytes(4, "big") + (600).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    return base64.b64encode(head + os.urandom(UPLOAD_BYTES - len(head)))


@dataclass
class MemoryRun:
    peak_total_mb: float  # sampled sum of RSS over the server's processes
    peak_process_mb: float  # highest VmHWM of any one server process
    idle_mb: float
    statuses: Counter[int]
    seconds: float


def server_memory(body: bytes, clients: int, processes: int) -> MemoryRun:
    with BenchService("distributed", workers=None, THUMBNAILIFY_SERVER_PROCESSES=str(processes)) as service:
        expected = processes + 1 if processes > 1 else 1  # a supervisor above several children
        deadline = time.monotonic() + 10
        while len(family := service.family()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # let every child finish starting before the idle figure is read
        idle = sum(p.memory_info().rss for p in family) / 2**20
        peak = idle
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                total = 0
                for proc in family:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += proc.memory_info().rss
                peak = max(peak, total / 2**20)
                time.sleep(SAMPLE_SECONDS)

        barrier = threading.Barrier(clients)

        def upload(_: int) -> int:
            barrier.wait(timeout=30)  # all clients start their upload at the same moment
            try:
                response = requests.post(
                    f"{service.url}/images", data=body, headers={"Content-Type": "image/png"}, timeout=60
                )
            except requests.RequestException:
                return 0
            return response.status_code

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(clients) as pool:
                statuses = Counter(pool.map(upload, range(clients)))
        finally:
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - started
        hwm = max(vm_hwm_mb(p.pid) for p in family)
    return MemoryRun(peak, hwm, idle, statuses, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    on_sigterm_raise()
    begun = time.perf_counter()
    busy = wait_for_quiet()
    load = ForeignLoad()
    jpeg = next(item for item in make_corpus(1, 0) if item.media_type == "image/jpeg")
    body = base64.b64encode(jpeg.path.read_bytes())
    print(f"machine CPU busy before start: {busy:.0f}%; JPEG {jpeg.path.name} ({jpeg.path.stat().st_size} bytes)")

    rows: list[list[str]] = []
    for mode in ("distributed", "embedded"):
        result = latency(mode, body, args.runs)
        if not result.total_ms:
            rows.append([f"POST->Completed, {mode}", f"all {args.runs} runs failed", "p50 <= 100 ms", "NO"])
            continue
        p50 = percentile(result.total_ms, 0.5)
        rows.append([f"POST->Completed p50, {mode}", f"{p50:.1f} ms", "<= 100 ms", met(p50 <= 100)])
        rows.append([f"POST->Completed p90, {mode}", f"{percentile(result.total_ms, 0.9):.1f} ms", "", ""])
        rows.append([f"POST->Completed max, {mode}", f"{max(result.total_ms):.1f} ms", "", ""])
        rows.append([f"  of which POST p50, {mode}", f"{percentile(result.post_ms, 0.5):.1f} ms", "", ""])
        rows.append([f"  runs not Completed, {mode}", str(result.failures), "0", met(result.failures == 0)])
        print(f"latency {mode}: done after {time.perf_counter() - begun:.0f}s")

    big = big_png_body()
    for processes in (1, 2):
        run = server_memory(big, args.clients, processes)
        accepted = run.statuses.get(202, 0)
        print(f"server x{processes}: statuses {dict(run.statuses)} in {run.seconds:.1f}s, idle {run.idle_mb:.0f} MB")
        rows.append([
            f"server RSS peak, {processes} process(es), {args.clients} x 20 MiB",
            f"{run.peak_total_mb:.0f} MB", "< 250 MB", met(run.peak_total_mb < 250),
        ])
        rows.append([f"  max VmHWM of one server process (x{processes})", f"{run.peak_process_mb:.0f} MB", "", ""])
        rows.append([f"  uploads accepted (x{processes})", f"{accepted}/{args.clients}", "all",
                     met(accepted == args.clients)])
    print_table(["figure", "value", "target", "met"], rows, title=f"bench.e2e ({time.perf_counter() - begun:.0f}s)")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
