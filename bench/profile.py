#!/usr/bin/env python3
"""Where the server's time goes while it takes uploads: py-spy samples of its main thread.

    .venv/bin/python -m bench.profile [--seconds 8] [--form base64|binary]

The server alone (distributed: Redis, RabbitMQ, files on the volume) takes wrk's load of a
~100 KB JPEG (as in bench.compare's ingest, 32 connections); py-spy (`--native --idle`) samples
the server process meanwhile. Each main-thread sample is put in the first group whose frames it
holds, so the table says what share of the thread's time each step took, and how much of it
was waiting (for the socket, or for the GIL: a thread-pool thread holding it shows as
`pthread_cond_wait` under whatever Python line the main thread was at). Also printed: requests
per second, and the CPU milliseconds per request of the server, Redis and RabbitMQ (the last two
are shared with any other work on the machine: an upper bound).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.support import BenchService, finish_wrk, photo_payload, print_table, run_script, start_wrk, wrk_body

# (group, frames that put a sample in it), first match wins.
GROUPS = [
    ("waiting for the socket (epoll)", ["epoll_pwait", "epoll_wait"]),
    ("waiting for the GIL", ["pthread_cond_wait", "pthread_cond_timedwait", "take_gil"]),
    ("Redis: the record created (one Lua call: record, index, history, event)", ["RedisStore.create"]),
    ("Redis: event messages in (pub/sub), other calls", ["redis/"]),
    ("RabbitMQ: the job published, confirmed", ["aioamqp", "RabbitMQPublisher"]),
    ("SHA-256 of the upload", ["EVP_", "SHA256"]),
    ("base64 decode", ["Base64Decoder", "base64_stream"]),
    ("file write handed to a thread and back", ["to_thread", "run_in_executor", "_write_and_rename",
                                                "Upload.commit"]),
    ("upload chain (body read, type check, intake)", ["take_in", "_receive", "raw_chunks", "base64_chunks",
                                                      "Intake"]),
    ("middlewares, handler, response", ["create_image", "observe (", "errors (", "preflight", "auth ("]),
    ("HTTP parsing, socket reads and writes", ["llhttp", "feed_data", "uv__read", "UVStream", "data_received",
                                               "web_protocol"]),
]
OTHER = "other (event loop, asyncio, gc)"


def group_samples(raw: Path) -> collections.Counter[str]:
    """Main-thread samples per group, from py-spy's raw (collapsed stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if "uv_run" not in stack:  # a thread-pool thread, not the event loop
            continue
        group = next((name for name, frames in GROUPS if any(frame in stack for frame in frames)), OTHER)
        counts[group] += int(number)
    return counts


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--form", choices=("base64", "binary"), default="base64")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install -r requirements-dev.txt")
    body = wrk_body(photo_payload(), args.form)
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-profile-"))
    raw = workdir / "server.txt"
    services = {name: [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]
                for name in ("redis-server", "beam.smp")}
    try:
        with BenchService("distributed", workers=None) as service:
            assert service.process is not None
            server = psutil.Process(service.process.pid)
            url = f"{service.url}/images" + ("?encoding=binary" if args.form == "binary" else "")
            wrk = start_wrk(url, body, connections=32, duration=args.seconds, workdir=workdir)
            time.sleep(0.5)  # past wrk's connections being opened
            before = {"server": cpu_seconds([server])} | {name: cpu_seconds(ps) for name, ps in services.items()}
            sampler = subprocess.Popen(
                [spy, "record", "--native", "--idle", "--rate", "300", "--duration", str(max(1, args.seconds - 2)),
                 "--format", "raw", "--output", str(raw), "--pid", str(server.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            figures = finish_wrk(wrk, args.seconds)
            after = {"server": cpu_seconds([server])} | {name: cpu_seconds(ps) for name, ps in services.items()}
            sampler.wait(timeout=60)
        counts = group_samples(raw)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(counts.values()) or 1
    busy = total - counts[GROUPS[0][0]] or 1
    rows = [[name, f"{count / total * 100:.1f}", "" if name == GROUPS[0][0] else f"{count / busy * 100:.1f}"]
            for name, count in counts.most_common()]
    requests = max(1, figures.requests)
    title = (f"server main thread under wrk ({args.form}, 32 connections): {figures.rate:.0f} req/s, p99 "
             f"{figures.p99_ms:.0f} ms; CPU ms per request: "
             + ", ".join(f"{name} {(after[name] - before[name]) / requests * 1000:.2f}" for name in before))
    print_table(["main thread", "% of samples", "% of the non-idle ones"], rows, title)
    return 0


if __name__ == "__main__":
    run_script(main)
