#!/usr/bin/env python3
"""Ingest rate: how many ~100 KB JPEG uploads per second the server takes, and their p99.

    bash bench/ingest.sh [--duration 20] [--users 64] [--locust-processes 1] [--server-processes 1 2 3]

Runs stress/locustfile.py's IngestOnlyUser (uploads back to back) against the distributed service
(Redis + RabbitMQ): the server alone with 1, 2 and 3 processes, then the best of those with 2
workers running too. While the load runs, the CPU used by the server, the workers, locust, Redis
and RabbitMQ is measured, to show what is the bottleneck on this machine. Every run's queue and
Redis keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.support import (
    ROOT,
    BenchService,
    ForeignLoad,
    met,
    on_sigterm_raise,
    print_table,
    run_script,
    wait_for_quiet,
)

LOCUSTFILE = ROOT / "stress" / "locustfile.py"
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0


@dataclass
class IngestRun:
    label: str
    locust_processes: int
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


def run_locust(service: BenchService, run: IngestRun, args: argparse.Namespace, outdir: Path) -> None:
    prefix = outdir / run.label.replace(" ", "_").replace(",", "")
    argv = [
        str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "IngestOnlyUser",
        "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
        "--host", service.url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "2",
    ]
    if run.locust_processes > 1:
        argv += ["--processes", str(run.locust_processes)]
    # The locustfile imports this tree's client library (a console script does not put cwd on sys.path).
    env = os.environ | {"THUMBNAILIFY_API_KEY": "", "PYTHONPATH": str(ROOT)}
    with (outdir / f"{prefix.name}.log").open("wb") as log:
        locust = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "server": lambda: [p for p in service.family() if p.pid not in service.worker_pids()],
        "workers": lambda: [psutil.Process(pid) for pid in service.worker_pids()],
        "locust": lambda: _tree(locust.pid),
        "redis": lambda: _by_name("redis-server"),
        "rabbitmq": lambda: _by_name("beam.smp"),
    }
    stop = threading.Event()
    # Steady state only: skip start-up and ramp-up, stop before the end.
    sampler = threading.Thread(
        target=measure_cpu, args=(groups, 4.0, max(5.0, args.duration - 3.0), run.cpu, stop), daemon=True
    )
    sampler.start()
    try:
        locust.wait(timeout=args.duration + 30)
    except BaseException:
        for proc in _tree(locust.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        locust.wait()
        raise
    finally:
        stop.set()
        sampler.join()
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        run.error = f"locust exited {locust.returncode} without stats; see its log"
        return
    with stats.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Type"] == "POST" and row["Name"] == "/images":
                run.rate = float(row["Requests/s"])
                run.p50_ms = float(row["50%"])
                run.p99_ms = float(row["99%"])
                run.requests = int(row["Request Count"])
                run.failures = int(row["Failure Count"])


def ingest(label: str, server_processes: int, workers: int | None, args: argparse.Namespace,
           outdir: Path) -> IngestRun:
    run = IngestRun(label, args.locust_processes)
    overrides = {"THUMBNAILIFY_SERVER_PROCESSES": str(server_processes)}
    with BenchService("distributed", workers=workers, **overrides) as service:
        run_locust(service, run, args, outdir)
        if run.error or run.failures:
            run.error = (run.error + " " + _first_failure(outdir, label)).strip()
    print(f"{label}: {run.rate:.0f} req/s, p99 {run.p99_ms:.0f} ms, {run.failures} failures, "
          f"cpu {_cpu_text(run.cpu)}", flush=True)
    return run


def _first_failure(outdir: Path, label: str) -> str:
    failures = outdir / f"{label.replace(' ', '_').replace(',', '')}_failures.csv"
    if not failures.exists():
        return ""
    with failures.open(newline="") as handle:
        for row in csv.DictReader(handle):
            return f"{row.get('Occurrences')}x {row.get('Error', '')[:120]}"
    return ""


def _cpu_text(cpu: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.0f}%" for name, value in cpu.items() if value >= 1) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument("--server-processes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    on_sigterm_raise()
    begun = time.perf_counter()
    busy = wait_for_quiet(max_wait=10)
    load = ForeignLoad()
    print(f"machine CPU busy before start: {busy:.0f}%; {args.users} users, {args.duration}s per run, "
          f"locust processes: {args.locust_processes}", flush=True)
    outdir = Path(tempfile.mkdtemp(prefix="thumbnailify-ingest-"))
    runs: list[IngestRun] = []
    try:
        for processes in args.server_processes:
            runs.append(ingest(f"server x{processes}, no workers", processes, None, args, outdir))
        best = max(runs, key=lambda r: r.rate)
        best_processes = args.server_processes[runs.index(best)]
        runs.append(ingest(f"server x{best_processes}, 2 workers", best_processes, 2, args, outdir))
    finally:
        shutil.rmtree(outdir, ignore_errors=True)

    rows = []
    for run in runs:
        ok = run.rate >= TARGET_RATE and run.p99_ms <= TARGET_P99_MS and not run.failures and not run.error
        rows.append([
            run.label, str(run.locust_processes), f"{run.rate:.0f}", f"{run.p50_ms:.0f}", f"{run.p99_ms:.0f}",
            f"{run.failures}/{run.requests}", _cpu_text(run.cpu), met(ok),
        ])
    print_table(
        ["run", "locust procs", "req/s", "p50 ms", "p99 ms", "failed", "CPU (% of a core)", "met"], rows,
        title=f"bench/ingest ({time.perf_counter() - begun:.0f}s); target >= {TARGET_RATE:.0f} req/s "
              f"and p99 <= {TARGET_P99_MS:.0f} ms, POST /images of a ~100 KB JPEG",
    )
    for run in runs:
        if run.error:
            print(f"{run.label}: {run.error}")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
