#!/usr/bin/env python3
"""Fair share: one client's 2,000 queued photos against another client's single upload.

    .venv/bin/python -m bench.fair_share [--photos 2000] [--workers 2] [--modes embedded,distributed,nats]

For each mode (embedded; Redis + RabbitMQ; NATS) and case: `lanes` (the importer's key `bulk`, the
app's `high`), `same lane` (both `normal`: clients take turns within a lane) and, for RabbitMQ and
NATS, `same lane, FIFO` (both `normal`, worker.fair_share_jobs 0: first in, first out within the
lane, as before there was fair share, the baseline): a service with N photo workers; first the app's photo alone,
POST -> Completed, five times after two warm-ups (the idle latency); then, the workers stopped,
the importer queues its photos (small JPEGs, each with bytes of its own), the workers start again,
and once the backlog is being worked off, the queue's depth over two seconds gives one job's time
per worker (workers x seconds / jobs done);
then the app posts photos one at a time (up to nine, while the backlog lasts), each POST ->
Completed timed. The figure is what the backlog adds to the app job's wait in the queue, from
its record's history (accepted -> taken by a worker: the store's clock, free of HTTP and polling),
less the idle service's (medians shown as "queued"), in jobs per worker: the goal is at most 1
in both cases (`high` is taken when the job a worker is running ends; in the same lane the app's
job goes ahead of the importer's backlog: the embedded queue takes clients in turns, RabbitMQ and
NATS put it in the lane's light part). First in, first out, the app waits for the backlog. Ratios
against figures of the same run, never a timed assertion.
"""

from __future__ import annotations

import argparse
import io
import itertools
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from PIL import Image

from bench.support import BenchService, on_sigterm_raise, print_table, run_script, wait_for_quiet
from tests.harness import distinct_jpeg
from thumbnailify.record import parse_iso

ADMIN = "bench-admin-key"
OPERATOR = "bench-operator-key"  # auth.api_key: the client `default`, who reads /metrics
PHOTO_SIZE = (640, 480)
WARM_UP_RUNS = 2
IDLE_RUNS = 5
RATE_WINDOW_SECONDS = 2.0
BACKLOG_STARTED = 20  # jobs worked off before the window opens (workers at their pace)
PATIENCE_SECONDS = 300.0
POLL_SECONDS = 0.005
UPLOAD_THREADS = 4
GOAL = 1.0  # the delay a backlog may add: the job each worker is running when the upload comes
SAMPLES = 9  # the app's uploads while the backlog lasts
BACKLOG_LEFT = 200  # no more of them once fewer jobs than this wait (a quarter of a smaller backlog)
DEPTH = re.compile(r"^thumbnailify_queue_depth(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)
UNIQUE = itertools.count()


def small_jpeg() -> bytes:
    """A 640x480 photo-like JPEG (a gradient with noise): a job of a few tens of milliseconds."""
    gradient = Image.linear_gradient("L").resize(PHOTO_SIZE)
    noise = Image.effect_noise(PHOTO_SIZE, 40)
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass(frozen=True)
class Timed:
    """One upload: POST -> Completed as the client saw it, and the job's wait in the queue, from its
    record's history (accepted -> taken by a worker; the store's clock, milliseconds)."""

    seconds: float
    queued: float


class Client:
    def __init__(self, service: BenchService, name: str, priority: str) -> None:
        made = requests.post(f"{service.url}/admin/keys", json={"name": name, "priority": priority},
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
        made.raise_for_status()
        self.url = service.url
        self.headers = {"Authorization": f"Bearer {made.json()['key']}", "Content-Type": "image/jpeg"}
        self.local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        session: requests.Session = self.local.session
        return session

    def post(self, photo: bytes) -> str:
        response = self._session().post(f"{self.url}/images?encoding=binary", data=distinct_jpeg(photo, next(UNIQUE)),
                                        headers=self.headers, timeout=30)
        response.raise_for_status()
        return str(response.json()["media_id"])

    def post_to_completed(self, photo: bytes) -> Timed:
        started = time.perf_counter()
        media_id = self.post(photo)
        while True:
            status = self._session().get(f"{self.url}/images/{media_id}", headers=self.headers, timeout=10).json()
            if status["state"] != "Processing":
                break
            if time.perf_counter() - started > PATIENCE_SECONDS:
                raise RuntimeError(f"still Processing after {PATIENCE_SECONDS:.0f}s")
            time.sleep(POLL_SECONDS)
        if status["state"] != "Completed":
            raise RuntimeError(f"ended {status['state']}: {status['message']}")
        history = status["history"]
        taken = next(entry["at"] for entry in history if entry["service"] == "worker")
        return Timed(time.perf_counter() - started, (parse_iso(taken) - parse_iso(history[0]["at"])).total_seconds())


def depth(service: BenchService) -> int:
    """The queue's depth, every lane, as /metrics reads it (the operator's, auth.api_key)."""
    metrics = requests.get(f"{service.url}/metrics", headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=10).text
    found = DEPTH.search(metrics)
    if found is None:
        raise RuntimeError("no thumbnailify_queue_depth in /metrics")
    return int(float(found.group(1)))


def stop_workers(service: BenchService) -> None:
    for worker in service.extra_workers:
        worker.terminate()  # SIGTERM: the current job ends and is acked first
        worker.wait(30)
    service.extra_workers.clear()


@dataclass(frozen=True)
class Case:
    name: str
    importer: str  # the clients' priorities
    app: str
    fair_share_jobs: int | None  # worker.fair_share_jobs; None: as configured
    goal: str


CASES = (Case("lanes", "bulk", "high", None, f"<= {GOAL:g}"),
         Case("same lane", "normal", "normal", None, f"<= {GOAL:g}"),
         Case("same lane, FIFO", "normal", "normal", 0, "(baseline)"))


def cases(mode: str) -> list[Case]:
    """The embedded queue always takes clients in turns: it has no first in, first out to compare."""
    return [case for case in CASES if mode != "embedded" or case.fair_share_jobs is None]


def one_run(mode: str, case: Case, photos: int, workers: int, photo: bytes) -> list[str]:
    overrides = {} if case.fair_share_jobs is None else {
        "THUMBNAILIFY_WORKER_FAIR_SHARE_JOBS": str(case.fair_share_jobs)}
    with BenchService(mode, workers=None, THUMBNAILIFY_AUTH_ADMIN_KEY=ADMIN,
                      THUMBNAILIFY_AUTH_API_KEY=OPERATOR, **overrides) as service:
        importer = Client(service, "importer", case.importer)
        app = Client(service, "app", case.app)
        service.start_workers(workers)
        for _ in range(WARM_UP_RUNS):
            app.post_to_completed(photo)
        idle_runs = [app.post_to_completed(photo) for _ in range(IDLE_RUNS)]
        idle = statistics.median(timed.seconds for timed in idle_runs)
        idle_queued = statistics.median(timed.queued for timed in idle_runs)
        # The importer's photos all queued, then the workers back at them.
        stop_workers(service)
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(lambda _index: importer.post(photo), range(photos)))
        queued = depth(service)
        service.start_workers(workers)
        while depth(service) > queued - BACKLOG_STARTED:
            time.sleep(0.05)
        before, started = depth(service), time.perf_counter()
        time.sleep(RATE_WINDOW_SECONDS)
        after, window = depth(service), time.perf_counter() - started
        if before - after <= 0:
            raise RuntimeError("the backlog did not move")
        job_per_worker = workers * window / (before - after)
        # The app's uploads one after another while the backlog lasts (at least one).
        waits: list[Timed] = [app.post_to_completed(photo)]
        while len(waits) < SAMPLES and depth(service) > min(BACKLOG_LEFT, photos // 4):
            waits.append(app.post_to_completed(photo))
        left = depth(service)
    added = [max(0.0, timed.queued - idle_queued) / job_per_worker for timed in waits]
    return [mode, case.name, str(queued), f"{job_per_worker * 1000:.1f} ms",
            f"{idle * 1000:.0f} ms", f"{idle_queued * 1000:.0f} ms",
            f"{statistics.median(timed.seconds for timed in waits) * 1000:.0f} ms",
            f"{statistics.median(timed.queued for timed in waits) * 1000:.0f} ms", str(len(waits)), str(left),
            f"{statistics.median(added):.2f} / {max(added):.2f}", case.goal]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000, help="the importer's bulk photos")
    parser.add_argument("--workers", type=int, default=2, help="photo workers")
    parser.add_argument("--modes", default="embedded,distributed,nats",
                        help="comma-separated: embedded, distributed (Redis + RabbitMQ), nats")
    args = parser.parse_args()
    on_sigterm_raise()
    photo = small_jpeg()
    busy = wait_for_quiet(max_wait=10)
    rows = [one_run(mode, case, args.photos, args.workers, photo)
            for mode in args.modes.split(",") for case in cases(mode)]
    print_table(["mode", "case", "backlog", "job/worker", "idle: POST->Completed", "idle: queued",
                 "app: POST->Completed", "app: queued", "uploads", "backlog left",
                 "added wait in jobs/worker (median / max)", "goal"], rows,
                f"An app's uploads behind an importer's {args.photos} photos, {args.workers} workers "
                f"(CPU {busy:.0f}% busy before the run)")
    return 0


if __name__ == "__main__":
    run_script(main)
