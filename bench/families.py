#!/usr/bin/env python3
"""The distributed backend families side by side: Redis + RabbitMQ, and NATS JetStream.

    .venv/bin/python -m bench.families [--runs 30] [--jobs 60]

For each, the whole service with 2 photo workers on this machine: (1) POST -> Completed of one
small JPEG at a time on an otherwise idle service (the state polled every 5 ms), p50 and p90;
(2) worker throughput: `--jobs` 12 MP JPEGs posted as fast as possible, thumbnails per second from
the first POST to the last completion. Ends with one table.
"""

from __future__ import annotations

import argparse
import base64
import time

import requests

from bench.support import (
    BenchService,
    drain,
    make_corpus,
    percentile,
    post_all,
    print_table,
    run_script,
)
from tests.harness import NATS_MODE, ROOT

FAMILIES = {"distributed": "Redis + RabbitMQ", NATS_MODE: "NATS JetStream"}
WARM_UP_RUNS = 3
DRAIN_SECONDS = 300.0
POLL_SECONDS = 0.005
JOB_TIMEOUT = 10.0


def latencies(service: BenchService, body: bytes, runs: int) -> list[float]:
    session = requests.Session()
    found = []
    for index in range(WARM_UP_RUNS + runs):
        started = time.perf_counter()
        response = session.post(f"{service.url}/images", data=body, headers={"Content-Type": "image/jpeg"}, timeout=30)
        response.raise_for_status()
        media_id, state = response.json()["media_id"], "Processing"
        while state == "Processing" and time.perf_counter() - started < JOB_TIMEOUT:
            time.sleep(POLL_SECONDS)
            state = session.get(f"{service.url}/images/{media_id}", timeout=10).json()["state"]
        if index >= WARM_UP_RUNS and state == "Completed":
            found.append((time.perf_counter() - started) * 1000)
        session.delete(f"{service.url}/images/{media_id}", timeout=10)  # no reuse of the identical upload
    return found


def throughput(service: BenchService, jobs: int) -> tuple[float, int]:
    bodies = [(base64.b64encode(item.path.read_bytes()), item.media_type) for item in make_corpus(jpegs=6, pngs=0)]
    started = time.perf_counter()
    ids = post_all(service, jobs, lambda index: bodies[index % len(bodies)])
    elapsed, completed = drain(service, requests.Session(), ids, started, DRAIN_SECONDS)
    return completed / elapsed, completed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=60)
    args = parser.parse_args()
    body = base64.b64encode((ROOT / "tests" / "data" / "photos" / "coffee.jpg").read_bytes())
    rows = []
    for mode, name in FAMILIES.items():
        with BenchService(mode, workers=2) as service:
            totals = latencies(service, body, args.runs)
            rate, completed = throughput(service, args.jobs)
        rows.append([name, f"{percentile(totals, 0.5):.1f} ms", f"{percentile(totals, 0.9):.1f} ms",
                     f"{rate:.2f}/s", f"{completed}/{args.jobs}"])
    print_table(["family", "POST->Completed p50", "p90", "12 MP JPEGs, 2 workers", "completed"], rows,
                title=f"backend families ({args.runs} latency runs, {args.jobs} throughput jobs)")
    return 0


if __name__ == "__main__":
    run_script(main)
