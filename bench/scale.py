#!/usr/bin/env python3
"""Past one machine: media in a bucket against media on a volume, and what one job costs each
shared service, from which the capacity model in docs/scaling.md for 10 to 1,000 worker machines follows.

    .venv/bin/python -m bench.scale [--runs 40]

(1) POST -> Completed of one 12 MP JPEG, sequentially, on two services running side by side
(2 workers each, Redis + RabbitMQ), one with its media on a volume (files: filesystem) and one in
a bucket (files: s3, a local SeaweedFS); requests alternate between them so both see the same
machine. Target: s3 p50 <= 1.5 x filesystem p50.
(2) Per-job costs on the s3 stack: metering proxies in front of a Redis of its own (commands;
its CPU from INFO), RabbitMQ (AMQP methods, bytes) and SeaweedFS (S3 requests by kind, bytes); the
worker's CPU from its process. Each corpus file once (12 MP JPEGs, 3-4 MP PNGs).
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
    PHOTOS,
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


def jobs_of(media_type: str) -> list[Job]:
    """The bench corpus's files of one type, each different (an identical upload would reuse
    thumbnails and cost less than a job)."""
    jobs = []
    for file in make_corpus():
        if file.media_type == media_type:
            with Image.open(file.path) as image:
                jobs.append(Job(file.path.read_bytes(), file.media_type, image.width * image.height / 1e6))
    return jobs


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
        """Messages through the broker (each published, then delivered to a worker)."""
        return self.amqp.get("basic.publish", 0)

    @property
    def amqp_methods(self) -> int:
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


def command_time(sent: dict[str, int], before: dict, after: dict) -> float:
    """Microseconds Redis spent executing the commands clients sent. INFO commandstats also counts
    the commands scripts run (inside EVALSHA, whose time includes theirs) and our own polls, so
    each command name's time is shared out by the calls the proxy saw from the service."""
    total = 0.0
    for name, calls in sent.items():
        key = f"cmdstat_{name}"
        done = after.get(key, {}).get("calls", 0) - before.get(key, {}).get("calls", 0)
        usec = after.get(key, {}).get("usec", 0) - before.get(key, {}).get("usec", 0)
        if done > 0:
            total += usec * min(1.0, calls / done)
    return total


def wait_completed(client: redis.Redis, key: str) -> None:
    """Poll the record straight from Redis (not through the proxy or the server): the job's own
    traffic is all the meters see."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while (found := client.hget(key, "state")) == "Processing" and time.monotonic() < deadline:
        time.sleep(0.02)
    if found != "Completed":
        raise RuntimeError(f"{key} is {found}")


def per_job_costs(store: SeaweedFS, jobs: list[Job], workdir: Path) -> Costs:
    """Upload each job and wait for it to complete, one after the other; count what they cost."""
    port = free_port()
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                    "--appendonly", "no", "--dir", str(workdir), "--pidfile", str(workdir / "redis.pid")],
                   check=True, stdout=subprocess.DEVNULL)
    ping = ["redis-cli", "-p", str(port), "ping"]
    wait_until(lambda: subprocess.run(ping, check=False, capture_output=True).returncode == 0, 10, "bench redis")
    client = redis.Redis(port=port, decode_responses=True)
    try:
        with MeteringProxy(AMQP_PORT, "amqp") as amqp, MeteringProxy(store.ports["s3.port"], "http") as s3, \
                MeteringProxy(port, "redis") as red:
            env = store.settings_env() | {
                "THUMBNAILIFY_REDIS_URL": f"redis://127.0.0.1:{red.port}/0",
                "THUMBNAILIFY_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{amqp.port}/%2F",
                "THUMBNAILIFY_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3.port}",
            }
            with BenchService("distributed", workers=1, THUMBNAILIFY_WORKER_WEBHOOK_PROCESSES="0", **env) as service:
                session = requests.Session()
                warm_up = (PHOTOS / "coffee.jpg").read_bytes()  # connections and caches; content unlike the jobs'
                post_and_wait(session, service.url, warm_up, "image/jpeg")
                time.sleep(2)  # the recovery pass and start-up declarations are not part of a job
                workers, prefix = service.worker_pids(), service.env["THUMBNAILIFY_REDIS_PREFIX"]
                for meter in (amqp, s3, red):
                    meter.reset()
                cpu0 = cpu_seconds(workers)
                stats0 = client.info("commandstats")
                for job in jobs:
                    response = session.post(f"{service.url}/images?encoding=binary", data=job.data,
                                             headers={"Content-Type": job.media_type}, timeout=30)
                    response.raise_for_status()
                    wait_completed(client, f"{prefix}media:{response.json()['media_id']}")
                stats1 = client.info("commandstats")
                cpu1 = cpu_seconds(workers)
        redis_usec = command_time(dict(red.operations), stats0, stats1)
        return Costs(
            kind=jobs[0].media_type, jobs=len(jobs), megapixels=sum(j.megapixels for j in jobs),
            redis_calls=dict(red.operations), redis_usec=redis_usec,
            amqp=dict(amqp.operations), amqp_bytes=amqp.bytes_up + amqp.bytes_down,
            s3=dict(s3.operations), s3_bytes_up=s3.bytes_up, s3_bytes_down=s3.bytes_down,
            worker_cpu=cpu1 - cpu0, upload_bytes=sum(len(j.data) for j in jobs),
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
            f"{jobs_per_second * costs.per_job(costs.redis_commands):,.0f} cmd/s, {redis_cpu:.2f} s/s",
            f"{jobs_per_second * costs.per_job(costs.amqp_messages):,.0f} msg/s",
            f"{jobs_per_second * costs.per_job(costs.s3_requests):,.0f} req/s",
            f"{jobs_per_second * costs.per_job(costs.s3_bytes_up + costs.s3_bytes_down) / 1e6:,.0f} MB/s",
        ])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="POST -> Completed runs per mode")
    args = parser.parse_args()
    on_sigterm_raise()
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-bench-scale-"))
    store = SeaweedFS(workdir / "seaweedfs", ports={flag: free_port() for flag in DEFAULT_PORTS})
    try:
        store.start()
        jpegs, pngs = jobs_of("image/jpeg"), jobs_of("image/png")
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
                f"{costs.per_job(costs.amqp_messages):.0f} msg, {costs.per_job(costs.amqp_methods):.0f} methods "
                f"({costs.per_job(costs.amqp_bytes) / 1024:.1f} KiB)",
                f"{costs.per_job(costs.s3_requests):.1f}",
                f"{costs.per_job(costs.s3_bytes_up) / 1e6:.2f} / {costs.per_job(costs.s3_bytes_down) / 1e6:.2f}",
                f"{costs.per_job(costs.worker_cpu) * 1000:.0f} ms",
                f"{costs.worker_cpu / costs.megapixels * 1000:.1f} ms",
            ])
        print_table(["Upload", "MP", "Redis cmds (their time)", "RabbitMQ", "S3 requests", "S3 MB up / down",
                     "worker CPU", "CPU per MP"], rows,
                    f"Per job ({len(jpegs)} JPEGs, {len(pngs)} PNGs, one after the other, 1 worker)")
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
