#!/usr/bin/env python3
"""Where the server's time goes while it takes uploads, beside the bare handler's under the same load.

    .venv/bin/python -m bench.profile [--seconds 8] [--form base64|binary]

wrk POSTs a ~100 KB JPEG (as in bench.compare's ingest, 32 connections) first to the bare handler
(bench.bare_ingest: decode the base64, write the file, answer), then to the server alone
(distributed: Redis, RabbitMQ, files on the volume). For each it prints:

- requests per second, and the CPU milliseconds per request of each process (the server's event
  loop thread apart from its file-writing threads; Redis and RabbitMQ are shared with any other
  work on the machine: an upper bound) and of the whole machine (/proc/stat);
- what the event loop thread was doing, from its state in /proc sampled ~200 times a second: on a
  core, ready but waiting for one (the machine is saturated), waiting for a lock (the GIL, held by
  a file-writing thread), waiting for the sockets (epoll: idle).

For the server, py-spy (`--nonblocking`, Python frames, ~100 samples a second: pausing the process
for native frames cut it to a twentieth of its rate) samples the loop thread meanwhile; each sample
goes in the first group whose frames it holds. Time in uvloop's own C code (socket reads and
writes, callbacks) shows as the loop's bare `run` frame.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.support import (
    BenchService,
    WrkBody,
    WrkFigures,
    bare_handler,
    finish_wrk,
    photo_payload,
    print_table,
    run_script,
    start_wrk,
    wrk_body,
)

# (group, frames that put a sample in it), first match wins: the backends' clients write to their
# sockets through asyncio streams, so they come before the HTTP side.
GROUPS = [
    ("Redis: the record created (one Lua call: record, index, history, event)", ["RedisStore.create"]),
    ("Redis: the client's backlog counted (fair share)", ["Backlogs.add"]),
    ("Redis: other calls, event messages in (pub/sub)", ["redis/"]),
    ("RabbitMQ: the job published, its confirm read", ["aioamqp", "RabbitMQPublisher", "BatchingChannel",
                                                       "Protocol._send_batch"]),
    ("base64 decode", ["Base64Decoder"]),
    ("file write handed to a writer thread and back", ["Upload._run", "Upload._flush", "Upload.commit"]),
    ("type check, SHA-256, buffering (Intake.feed)", ["Intake.feed"]),
    ("body read, the rest of the upload chain", ["take_in", "_receive", "raw_chunks", "base64_chunks", "Intake"]),
    ("middlewares, handler, response", ["create_image", "observe (", "errors (", "preflight", "auth ("]),
    ("HTTP parsing, socket writes (aiohttp)", ["aiohttp/", "asyncio/streams"]),
]
UVLOOP = "uvloop's own C code (sockets, callbacks), or idle"
OTHER = "other (asyncio, gc)"
LOOP_RUN = "Runner.run (asyncio/runners.py"


def group_samples(raw: Path, main_thread: int) -> collections.Counter[str]:
    """The loop thread's samples per group, from py-spy's raw (collapsed stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack.startswith(f"thread ({main_thread})"):
            continue
        if stack.rpartition(";")[2].startswith(LOOP_RUN):
            group = UVLOOP
        else:
            group = next((name for name, frames in GROUPS if any(frame in stack for frame in frames)), OTHER)
        counts[group] += int(number)
    return counts


def thread_state(pid: int, tid: int) -> str:
    """One look at a thread: 'running' (on a core or ready for one), 'lock' (a futex: the GIL),
    'socket' (epoll), 'disk', or 'other'."""
    task = f"/proc/{pid}/task/{tid}"
    with open(f"{task}/stat") as stat, open(f"{task}/wchan") as wchan:
        state = stat.read().rpartition(")")[2].split()[0]
        channel = wchan.read()
    if state == "R":
        return "running"
    if state == "D":
        return "disk"
    if "futex" in channel:
        return "lock"
    if "poll" in channel:  # epoll_wait, poll
        return "socket"
    return "other"


@dataclass
class Watch:
    """A process's threads and the machine while a load runs: states sampled from /proc by a
    thread of this process, CPU times read at start and at stop."""

    pid: int
    others: dict[str, list[psutil.Process]] = field(default_factory=dict)  # processes whose CPU counts too
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    thread_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # cores' worth of CPU in use, the whole machine
    seconds: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError, IndexError):
                self.states[thread_state(self.pid, self.pid)] += 1

    def _cpu(self) -> dict[str, float]:
        main, rest = 0.0, 0.0
        for thread in psutil.Process(self.pid).threads():
            if thread.id == self.pid:
                main += thread.user_time + thread.system_time
            else:
                rest += thread.user_time + thread.system_time
        return {"loop thread": main, "other threads": rest}

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        sampler = threading.Thread(target=self._sample, daemon=True)
        start, machine = self._cpu() | _cpu_of(self.others), psutil.cpu_times()
        began = time.perf_counter()
        sampler.start()
        try:
            yield
        finally:
            self._stop.set()
            sampler.join()
            self.seconds = time.perf_counter() - began
            end, machine_end = self._cpu() | _cpu_of(self.others), psutil.cpu_times()
            self.thread_cpu = {name: end[name] - start[name] for name in start}
            busy = sum(machine_end) - machine_end.idle - (sum(machine) - machine.idle)
            self.machine_busy = busy / self.seconds


def _cpu_of(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for name, group in processes.items():
        total[name] = 0.0
        for process in group:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total[name] += times.user + times.system
    return total


def load(url: str, body: WrkBody, seconds: int, workdir: Path, watch: Watch) -> WrkFigures:
    """wrk's load on `url`, watched from its second second to two seconds before its end."""
    wrk = start_wrk(url, body, connections=32, duration=seconds, workdir=workdir)
    time.sleep(1)
    with watch.running():
        time.sleep(max(1, seconds - 3))
    return finish_wrk(wrk, seconds)


def per_request(watch: Watch, figures: WrkFigures) -> dict[str, float]:
    served = max(1.0, figures.rate * watch.seconds)
    return {name: seconds / served * 1000 for name, seconds in watch.thread_cpu.items()}


def state_rows(watch: Watch) -> list[list[str]]:
    total = sum(watch.states.values()) or 1
    on_core = watch.thread_cpu["loop thread"] / watch.seconds * 100
    running = watch.states["running"] / total * 100
    rows = [["on a core", f"{min(on_core, running):.0f}"],
            ["ready, waiting for a core", f"{max(0.0, running - on_core):.0f}"]]
    waits = (("lock", "waiting for a lock (the GIL)"), ("socket", "waiting for the sockets (idle)"),
             ("disk", "in the kernel, on the disk"), ("other", "other sleep"))
    rows += [[label, f"{watch.states[state] / total * 100:.0f}"] for state, label in waits]
    return rows


def services() -> dict[str, list[psutil.Process]]:
    return {name: [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]
            for name in ("redis-server", "beam.smp")}


def profile_bare(body: WrkBody, seconds: int, workdir: Path) -> tuple[Watch, WrkFigures]:
    with bare_handler(workdir) as (url, pid):
        watch = Watch(pid)
        figures = load(f"{url}/images", body, seconds, workdir, watch)
    return watch, figures


def profile_server(spy: str, body: WrkBody, form: str, seconds: int, workdir: Path,
                   ) -> tuple[Watch, WrkFigures, collections.Counter[str]]:
    raw = workdir / "server.txt"
    others = services()
    with BenchService("distributed", workers=None) as service:
        assert service.process is not None
        pid = service.process.pid
        url = f"{service.url}/images" + ("?encoding=binary" if form == "binary" else "")
        watch = Watch(pid, others)
        sampler = subprocess.Popen(
            [spy, "record", "--nonblocking", "--threads", "--idle", "--rate", "100",
             "--duration", str(max(1, seconds - 2)), "--format", "raw", "--output", str(raw), "--pid", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        figures = load(url, body, seconds, workdir, watch)
        sampler.wait(timeout=60)
    return watch, figures, group_samples(raw, pid)


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
    try:
        bare, bare_figures = profile_bare(wrk_body(photo_payload(), "base64"), args.seconds, workdir)
        server, figures, counts = profile_server(spy, body, args.form, args.seconds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    cost, bare_cost = per_request(server, figures), per_request(bare, bare_figures)
    rows = [[name, f"{bare_cost.get(name, 0.0):.2f}", f"{value:.2f}"] for name, value in cost.items()]
    rows.append(["the whole machine", f"{bare.machine_busy / max(1.0, bare_figures.rate) * 1000:.2f}",
                 f"{server.machine_busy / max(1.0, figures.rate) * 1000:.2f}"])
    print_table(["CPU ms per request", "bare handler", "server"], rows,
                f"wrk, 32 connections: the bare handler (base64) {bare_figures.rate:.0f} req/s, p99 "
                f"{bare_figures.p99_ms:.0f} ms; the server ({args.form}) {figures.rate:.0f} req/s, p99 "
                f"{figures.p99_ms:.0f} ms; machine busy {bare.machine_busy:.2f} and {server.machine_busy:.2f} "
                f"of {os.cpu_count()} cores")
    states = {row[0]: row[1] for row in state_rows(bare)}
    print_table(["event loop thread", "% bare handler", "% server"],
                [[label, states[label], share] for label, share in state_rows(server)])
    total = sum(counts.values()) or 1
    print_table(["server loop thread, py-spy", "% of samples"],
                [[name, f"{count / total * 100:.1f}"] for name, count in counts.most_common()])
    return 0


if __name__ == "__main__":
    run_script(main)
