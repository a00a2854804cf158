#!/usr/bin/env python3
"""Ingest rate: how many ~100 KB JPEG uploads per second the server takes, and their p99.

    bash bench/ingest.sh [--duration 20] [--connections 32] [--server-processes 1 2]

wrk (C, one thread: it must not take the server's cores the way a Python load generator does)
POSTs a ~100 KB JPEG back to back (each with a comment of its own: other bytes every time), as
base64 (the default form) and as raw bytes (`?encoding=binary`), to the distributed service as
`make stack` runs it (Redis + RabbitMQ) with the workers paused (server only), with 1 and 2
server processes. While the load runs, the CPU used by the server, wrk, Redis and RabbitMQ is
measured, to show what the bottleneck is on this machine. Every run's queue and Redis keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.support import (
    BenchService,
    ForeignLoad,
    WrkBody,
    finish_wrk,
    met,
    on_sigterm_raise,
    photo_payload,
    print_table,
    run_script,
    start_wrk,
    wait_for_quiet,
    wrk_body,
)

TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0
TARGET_BINARY_RATIO = 1.3


@dataclass
class IngestRun:
    label: str
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    failures: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, per group of processes
    error: str = ""


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _by_name(*names: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
    return seconds


def measure_cpu(groups: dict[str, Callable[[], list[psutil.Process]]], start: float, end: float,
                into: dict[str, float], stop: threading.Event) -> None:
    """CPU % of one core per group between `start` and `end` seconds from now (the steady state)."""
    if stop.wait(start):
        return
    before = {name: _cpu_seconds(find()) for name, find in groups.items()}
    began = time.monotonic()
    if stop.wait(end - start):
        return
    wall = time.monotonic() - began
    for name, find in groups.items():
        after = _cpu_seconds(find())
        used = sum(t - before[name].get(pid, 0.0) for pid, t in after.items())
        into[name] = 100 * used / wall


def run_wrk(service: BenchService, run: IngestRun, url: str, *, body: WrkBody, args: argparse.Namespace,
            workdir: Path) -> None:
    wrk = start_wrk(url, body, connections=args.connections, duration=args.duration, workdir=workdir)
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "server": service.family,
        "wrk": lambda: _tree(wrk.pid),
        "redis": lambda: _by_name("redis-server"),
        "rabbitmq": lambda: _by_name("beam.smp"),
    }
    stop = threading.Event()
    sampler = threading.Thread(  # steady state only: skip the start, stop before the end
        target=measure_cpu, args=(groups, 3.0, max(4.0, args.duration - 2.0), run.cpu, stop), daemon=True
    )
    sampler.start()
    try:
        figures = finish_wrk(wrk, args.duration)
    finally:
        stop.set()
        sampler.join()
    run.rate, run.p50_ms, run.p99_ms = figures.rate, figures.p50_ms, figures.p99_ms
    run.requests, run.failures, run.error = figures.requests, figures.failures, figures.error


def ingest(form: str, processes: int, bodies: dict[str, WrkBody], args: argparse.Namespace, workdir: Path) -> IngestRun:
    run = IngestRun(f"{form}, server x{processes}")
    with BenchService("distributed", workers=None, THUMBNAILIFY_SERVER_PROCESSES=str(processes)) as service:
        url = f"{service.url}/images" + ("?encoding=binary" if form == "binary" else "")
        run_wrk(service, run, url, body=bodies[form], args=args, workdir=workdir)
    cpu = " ".join(f"{name} {value:.0f}%" for name, value in run.cpu.items() if value >= 1)
    print(f"{run.label}: {run.rate:.0f} req/s, p99 {run.p99_ms:.1f} ms, {run.failures} failures, cpu {cpu}",
          flush=True)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `bash scripts/install-system.sh test` installs it")
    on_sigterm_raise()
    begun = time.perf_counter()
    busy = wait_for_quiet(max_wait=10)
    load = ForeignLoad()
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-ingest-"))
    photo = photo_payload()
    bodies = {form: wrk_body(photo, form) for form in ("base64", "binary")}
    print(f"machine CPU busy before start: {busy:.0f}%; a {len(photo)} byte JPEG, {args.connections} connections, "
          f"{args.duration}s per run", flush=True)
    runs: dict[tuple[str, int], IngestRun] = {}
    try:
        for processes in args.server_processes:
            for form in ("base64", "binary"):
                runs[form, processes] = ingest(form, processes, bodies, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for (form, processes), run in runs.items():
        base = runs[("base64", processes)]
        if form == "base64":
            ok = run.rate >= TARGET_RATE and run.p99_ms <= TARGET_P99_MS and not run.failures
            target = f">= {TARGET_RATE:.0f}/s, p99 <= {TARGET_P99_MS:.0f} ms"
        else:
            ratio = run.rate / base.rate if base.rate else 0.0
            ok = ratio >= TARGET_BINARY_RATIO and not run.failures
            target = f">= {TARGET_BINARY_RATIO}x base64 ({ratio:.2f}x)"
        cpu = " ".join(f"{name} {value:.0f}%" for name, value in run.cpu.items() if value >= 1)
        rows.append([run.label, f"{run.rate:.0f}", f"{run.p50_ms:.1f}", f"{run.p99_ms:.1f}",
                     f"{run.failures}/{run.requests}", cpu, target, met(ok and not run.error)])
    print_table(["run", "req/s", "p50 ms", "p99 ms", "failed", "CPU (% of a core)", "target", "met"], rows,
                title=f"bench/ingest ({time.perf_counter() - begun:.0f}s): POST /images, workers paused, wrk")
    for run in runs.values():
        if run.error:
            print(f"{run.label}: {run.error}")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
