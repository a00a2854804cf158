#!/usr/bin/env python3
"""Past one machine: media in a bucket against media on a volume, and what one job costs each
shared service, from which the README's capacity model for 10 to 1,000 worker machines follows.

    .venv/bin/python -m bench.scale [--runs 40] [--jobs 30]

(1) POST -> Completed of one 12 MP JPEG, sequentially, on two services running side by side
(2 workers each, Redis + RabbitMQ), one with its media on a volume (files: filesystem) and one in
a bucket (files: s3, a local SeaweedFS); requests alternate between them so both see the same
machine. Target: s3 p50 <= 1.5 x filesystem p50.
(2) Per-job costs on the s3 stack, with a Redis of its own (INFO commandstats: commands and the
Redis CPU they took) and metering proxies in front of RabbitMQ (AMQP methods, bytes) and SeaweedFS
(S3 requests by kind, bytes); worker and server CPU from their processes' CPU time.
(3) What 10, 100 and 1,000 worker machines of 2 cores need from each shared service at those costs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
import requests
from PIL import Image

from bench.meter import MeteringProxy
from bench.support import (
    BenchService,
    make_corpus,
    met,
    on_sigterm_raise,
    percentile,
    print_table,
    run_script,
    wait_for_quiet,
)
from scripts.seaweed import DEFAULT_PORTS, SeaweedFS
from tests.harness import AMQP_PORT, free_port, wait_until

POLL_SECONDS = 0.005
JOB_TIMEOUT = 20.0
WARM_UP_RUNS = 3
TARGET_RATIO = 1.5
MACHINES = (10, 100, 1000)
CORES_PER_MACHINE = 2


def post_and_wait(session: requests.Session, url: str, body: bytes, content_type: str) -> tuple[float, str, int]:
    """POST -> Completed in ms, the media_id, and how many status polls it took."""
    started = time.perf_counter()
    polls = 0
    response = session.post(f"{url}/images?encoding=binary", data=body, headers={"Content-Type": content_type},
                            timeout=30)
    response.raise_for_status()
    media_id = response.json()["media_id"]
    state = "Processing"
    while state == "Processing" and time.perf_counter() - started < JOB_TIMEOUT:
        time.sleep(POLL_SECONDS)
        state = session.get(f"{url}/images/{media_id}", timeout=10).json()["state"]
        polls += 1
    elapsed = (time.perf_counter() - started) * 1000
    if state != "Completed":
        raise RuntimeError(f"{media_id} ended {state} after {elapsed:.0f} ms")
    return elapsed, media_id, polls


def latency_side_by_side(store: SeaweedFS, jpeg: bytes, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"filesystem": [], "s3": []}
    with BenchService("distributed", workers=2) as volume, \
            BenchService("distributed", workers=2, **store.settings_env()) as bucket:
        session = requests.Session()
        wait_for_quiet()
        for index in range(WARM_UP_RUNS + runs):
            for name, service in (("filesystem", volume), ("s3", bucket)):
                elapsed, media_id, _ = post_and_wait(session, service.url, jpeg, "image/jpeg")
                session.delete(f"{service.url}/images/{media_id}", timeout=10)
                if index >= WARM_UP_RUNS:
                    times[name].append(elapsed)
    return times


@dataclass(frozen=True)
class Job:
    data: bytes
    media_type: str
    megapixels: float


def jobs_of(media_type: str, count: int) -> list[Job]:
    files = [f for f in make_corpus() if f.media_type == media_type]
    picked = [files[i % len(files)] for i in range(count)]
    return [Job(f.path.read_bytes(), f.media_type, Image.open(f.path).width * Image.open(f.path).height / 1e6)
            for f in picked]


@dataclass
class Costs:
    kind: str
    jobs: int
    megapixels: float
    redis_calls: dict[str, int]
    redis_usec: float
    amqp: dict[str, int]
    amqp_bytes: int
    s3: dict[str, int]
    s3_bytes_up: int
    s3_bytes_down: int
    worker_cpu: float
    upload_bytes: int

    def per_job(self, value: float) -> float:
        return value / self.jobs

    @property
    def redis_commands(self) -> int:
        return sum(self.redis_calls.values())

    @property
    def amqp_messages(self) -> int:
        return sum(self.amqp.get(k, 0) for k in ("basic.publish", "basic.deliver", "basic.ack"))

    @property
    def s3_requests(self) -> int:
        return sum(self.s3.values())


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def command_stats(client: redis.Redis) -> tuple[dict[str, int], dict[str, float]]:
    """Calls and microseconds of Redis CPU, by command."""
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    usec = {name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in stats.items()}
    return calls, usec


def per_job_costs(store: SeaweedFS, files: list[Job], workdir: Path) -> Costs:
    """Upload `files` one after the other, each to Completed, and count what they cost."""
    port = free_port()
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                    "--appendonly", "no", "--dir", str(workdir), "--pidfile", str(workdir / "redis.pid")],
                   check=True, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, decode_responses=True)
    ping = ["redis-cli", "-p", str(port), "ping"]
    wait_until(lambda: subprocess.run(ping, check=False, capture_output=True).returncode == 0, 10, "bench redis")
    try:
        with MeteringProxy(AMQP_PORT, "amqp") as amqp, MeteringProxy(store.ports["s3.port"], "http") as s3:
            env = store.settings_env() | {
                "THUMBNAILIFY_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "THUMBNAILIFY_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{amqp.port}/%2F",
                "THUMBNAILIFY_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}",
            }
            with BenchService("distributed", workers=1, THUMBNAILIFY_WORKER_WEBHOOK_PROCESSES="0", **env) as service:
                session = requests.Session()
                post_and_wait(session, service.url, files[0].data, files[0].media_type)  # connections, caches
                time.sleep(2)  # idle workers' polls and the recovery pass are not part of a job
                workers = service.worker_pids()
                calls0, usec0 = command_stats(client)
                amqp.reset()
                s3.reset()
                cpu0 = cpu_seconds(workers)
                polls = sum(post_and_wait(session, service.url, f.data, f.media_type)[2] for f in files)
                cpu1 = cpu_seconds(workers)
                calls1, usec1 = command_stats(client)
        calls = {k: v - calls0.get(k, 0) for k, v in calls1.items() if v - calls0.get(k, 0) > 0}
        usec = {k: v - usec0.get(k, 0.0) for k, v in usec1.items()}
        # The bench's own status polls (one HGETALL each, through the server) are not a job's.
        calls.pop("info", None)
        usec.pop("info", None)
        if polls and "hgetall" in calls:
            usec["hgetall"] -= usec["hgetall"] * polls / calls["hgetall"]
            calls["hgetall"] -= polls
        return Costs(
            kind=files[0].media_type, jobs=len(files),
            megapixels=sum(f.megapixels for f in files),
            redis_calls={k: v for k, v in calls.items() if v > 0}, redis_usec=sum(usec.values()),
            amqp=dict(amqp.operations), amqp_bytes=amqp.bytes_up + amqp.bytes_down,
            s3=dict(s3.operations), s3_bytes_up=s3.bytes_up, s3_bytes_down=s3.bytes_down,
            worker_cpu=cpu1 - cpu0,
            upload_bytes=sum(len(f.data) for f in files),
        )
    finally:
        client.shutdown(nosave=True)


def capacity_rows(costs: Costs) -> list[list[str]]:
    """What N worker machines (2 cores, a worker per core, always busy) ask of the shared services."""
    rows = []
    cpu_per_job = costs.per_job(costs.worker_cpu)
    for machines in MACHINES:
        jobs_per_second = machines * CORES_PER_MACHINE / cpu_per_job
        redis_cpu = jobs_per_second * costs.per_job(costs.redis_usec) / 1e6
        rows.append([
            f"{machines:,}", f"{jobs_per_second:,.0f}",
            f"{jobs_per_second * costs.per_job(costs.redis_commands):,.0f} cmd/s, {redis_cpu:.2f} core",
            f"{jobs_per_second * costs.per_job(costs.amqp_messages):,.0f} msg/s",
            f"{jobs_per_second * costs.per_job(costs.s3_requests):,.0f} req/s",
            f"{jobs_per_second * costs.per_job(costs.s3_bytes_up + costs.s3_bytes_down) / 1e6:,.0f} MB/s",
        ])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="POST -> Completed runs per mode")
    parser.add_argument("--jobs", type=int, default=30, help="jobs per kind for the per-job costs")
    args = parser.parse_args()
    on_sigterm_raise()
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-bench-scale-"))
    store = SeaweedFS(workdir / "seaweedfs", ports={flag: free_port() for flag in DEFAULT_PORTS})
    try:
        store.start()
        jpegs, pngs = jobs_of("image/jpeg", args.jobs), jobs_of("image/png", args.jobs)
        times = latency_side_by_side(store, jpegs[0].data, args.runs)
        fs50, s350 = percentile(times["filesystem"], 0.5), percentile(times["s3"], 0.5)
        print_table(
            ["Files backend", "p50 ms", "p90 ms", "runs"],
            [[name, f"{percentile(t, 0.5):.1f}", f"{percentile(t, 0.9):.1f}", str(len(t))]
             for name, t in times.items()],
            "POST -> Completed, one 12 MP JPEG, services side by side (2 workers each)",
        )
        ratio = s350 / fs50
        print(f"s3 / filesystem p50 = {ratio:.2f} (target <= {TARGET_RATIO}): {met(ratio <= TARGET_RATIO)}\n")

        wait_for_quiet()
        measured = [per_job_costs(store, jobs, workdir) for jobs in (jpegs, pngs)]
        rows = []
        for costs in measured:
            rows.append([
                costs.kind, f"{costs.megapixels / costs.jobs:.1f}",
                f"{costs.per_job(costs.redis_commands):.1f} ({costs.per_job(costs.redis_usec):.0f} us)",
                f"{costs.per_job(costs.amqp_messages):.1f} ({costs.per_job(costs.amqp_bytes) / 1024:.1f} KiB)",
                f"{costs.per_job(costs.s3_requests):.1f}",
                f"{costs.per_job(costs.s3_bytes_up) / 1e6:.2f} / {costs.per_job(costs.s3_bytes_down) / 1e6:.2f}",
                f"{costs.per_job(costs.worker_cpu) * 1000:.0f} ms",
                f"{costs.worker_cpu / costs.megapixels * 1000:.1f} ms",
            ])
        print_table(["Upload", "MP", "Redis cmds (CPU)", "AMQP msgs (bytes)", "S3 requests", "S3 MB up / down",
                     "worker CPU", "CPU per MP"], rows, f"Per job ({args.jobs} jobs each, one after the other)")
        for costs in measured:
            print(f"{costs.kind}: Redis {dict(sorted(costs.redis_calls.items()))}")
            print(f"{costs.kind}: AMQP {dict(sorted(costs.amqp.items()))}")
            print(f"{costs.kind}: S3 {dict(sorted(costs.s3.items()))}")
        print()
        print_table(["Worker machines", "jobs/s", "Redis", "RabbitMQ", "S3 requests", "S3 traffic"],
                    capacity_rows(measured[0]),
                    f"Capacity model: 12 MP JPEGs, {CORES_PER_MACHINE} cores per machine, every worker busy")
    finally:
        store.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_script(main)
