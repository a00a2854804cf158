#!/usr/bin/env python3
"""What fair share adds to a job's publish: the server's publisher with the client's count
(worker.fair_share_jobs 8) and without it (0, first in, first out within a lane).

    .venv/bin/python -m bench.publish_cost [--jobs 1000] [--modes distributed,nats]

For each mode, the server's publisher (thumbnailify.server.backends' table) in this process
publishes N photo jobs of one client, one at a time, then as many at once as the server's
channels allow (`--concurrency`); the median and 95th percentile per publish alone, the total
time at once, and counted against uncounted. Each run has a queue, key prefix or stream of its
own, removed afterwards (no worker takes the jobs: they are removed with it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.support import print_table, run_script
from tests.harness import Stored, service_env
from thumbnailify.backends.loader import load_backend
from thumbnailify.lanes import Priority
from thumbnailify.server.backends import TABLE
from thumbnailify.settings import load_settings


class Namespace(Stored):
    """A queue, key prefix and stream of this run's own, removed by `cleanup`."""

    def __init__(self, mode: str, env: dict[str, str]) -> None:
        self.mode = mode
        self.env = env


async def publish_all(env: dict[str, str], jobs: int, concurrency: int) -> tuple[list[float], float]:
    settings = load_settings(env)
    publisher = load_backend(TABLE, "queue", settings.backends.queue)(settings)
    await publisher.open()
    try:
        await publisher.publish(str(uuid.uuid4()), "image/jpeg", Priority.NORMAL, "importer")  # connected
        each = []
        for _ in range(jobs):
            started = time.perf_counter()
            await publisher.publish(str(uuid.uuid4()), "image/jpeg", Priority.NORMAL, "importer")
            each.append(time.perf_counter() - started)
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await publisher.publish(str(uuid.uuid4()), "image/jpeg", Priority.NORMAL, "importer")

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return each, time.perf_counter() - started
    finally:
        await publisher.close()


def one_run(mode: str, fair_share_jobs: int, jobs: int, concurrency: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as workdir:
        env = service_env(mode, Path(workdir), THUMBNAILIFY_WORKER_FAIR_SHARE_JOBS=str(fair_share_jobs))
        namespace = Namespace(mode, env)
        try:
            return asyncio.run(publish_all(env, jobs, concurrency))
        finally:
            namespace.cleanup()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs published per run")
    parser.add_argument("--concurrency", type=int, default=16, help="publishes in flight at once")
    parser.add_argument("--modes", default="distributed,nats", help="comma-separated: distributed, nats")
    args = parser.parse_args()
    rows = []
    for mode in args.modes.split(","):
        plain_each, plain_total = one_run(mode, 0, args.jobs, args.concurrency)
        fair_each, fair_total = one_run(mode, 8, args.jobs, args.concurrency)
        for name, each, total in (("first in, first out (0)", plain_each, plain_total),
                                  ("counted (8)", fair_each, fair_total)):
            rows.append([mode, name, ms(statistics.median(each)), ms(statistics.quantiles(each, n=20)[18]),
                         ms(total / args.jobs), f"{statistics.median(each) / statistics.median(plain_each):.2f}",
                         f"{total / plain_total:.2f}"])
    print_table(["mode", "fair_share_jobs", "one publish: median", "p95", f"{args.concurrency} at once: per job",
                 "median vs FIFO", "at once vs FIFO"], rows,
                f"{args.jobs} photo jobs of one client published by the server's publisher")
    return 0


if __name__ == "__main__":
    run_script(main)
