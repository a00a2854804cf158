"""`python -m thumbnailify.worker [--kind image|video|webhook]`: one worker process; take a job, do it, record the
outcome, settle the job with the queue, repeat. Each kind takes jobs from a queue of its own.

SIGTERM, SIGINT or SIGHUP lets the current job finish and be acked, then the process exits 0. A
webhook worker makes several attempts at once (see webhook_pool); it lets all of them finish. Scale
by running more processes (`make run` starts one per core; compose and Kubernetes use replicas).
A main loop that stops making progress ends the process (see liveness), so it is restarted too.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from thumbnailify.backends.loader import load_backend
from thumbnailify.kinds import KINDS, MEDIA_KINDS
from thumbnailify.logs import setup_logging
from thumbnailify.settings import Settings, load_settings
from thumbnailify.startup import cannot_start_exits, raise_open_files_limit
from thumbnailify.worker import liveness
from thumbnailify.worker.backends import TABLE, Consumer, Delivery, Store
from thumbnailify.worker.kinds import Runner, build_runner, run_guarded
from thumbnailify.worker.liveness import Heartbeat
from thumbnailify.worker.memory import limit_memory
from thumbnailify.worker.outcome import Outcome, Verdict
from thumbnailify.worker.scratch import ScratchDir
from thumbnailify.worker.webhooks.pool import WebhookPool

log = logging.getLogger("worker")

# How long an idle worker waits for a job before it looks at its stop flag again, so a stop signal
# ends an idle worker within it. The wait is local (pull requests and consumers stay open across it).
IDLE_SECONDS = 0.25


def handle(runner: Runner, consumer: Consumer, delivery: Delivery) -> None:
    started = time.perf_counter()
    settle(runner, consumer, delivery, run_guarded(runner, delivery), started)


def settle(runner: Runner, consumer: Consumer, delivery: Delivery, verdict: Verdict, started: float) -> None:
    """Tell the queue what became of a delivery (from the main thread only)."""
    outcome, reason, retry_in = verdict
    if outcome is Outcome.DEAD_LETTERED:
        consumer.dead_letter(delivery, reason)
    elif outcome is Outcome.RETRY_LATER:
        consumer.retry_later(delivery, retry_in)
    else:
        consumer.ack(delivery)
    runner.metrics.jobs.labels(outcome.value).inc()
    log.info(
        "job %s", outcome.value,
        extra={"media_id": delivery.media_id, "reason": reason, "redelivered": delivery.redelivered,
               "ms": round((time.perf_counter() - started) * 1000, 1)},
    )


def serve_one_at_a_time(runner: Runner, consumer: Consumer, heartbeat: Heartbeat, scratch: ScratchDir,
                        stopping: threading.Event) -> None:
    while not stopping.is_set():
        heartbeat.beat()
        delivery = consumer.next(IDLE_SECONDS)
        heartbeat.beat()
        if delivery is not None:
            handle(runner, consumer, delivery)
            scratch.empty()
        consumer.settle_abandoned(runner.abandon)


def serve_in_parallel(runner: Runner, consumer: Consumer, heartbeat: Heartbeat, pool: WebhookPool,
                      stopping: threading.Event) -> None:
    """Webhooks: take deliveries while the pool has a free slot, settle each as its attempt ends.
    The loop is alive while it turns and no attempt has run for longer than the limit."""
    while not stopping.is_set():
        heartbeat.beat(pool.oldest_start())
        if pool.has_room():
            delivery = consumer.next(IDLE_SECONDS)
            if delivery is not None:
                pool.submit(delivery)
            finished = pool.collect()
        else:
            finished = pool.collect(IDLE_SECONDS)
        for done in finished:
            settle(runner, consumer, done.delivery, done.verdict, done.started)
        consumer.settle_abandoned(runner.abandon)
    while True:  # stopping: the attempts under way end (each within webhooks.timeout) and are settled
        heartbeat.beat(pool.oldest_start())
        for done in pool.collect(0.0 if pool.idle() else IDLE_SECONDS):
            settle(runner, consumer, done.delivery, done.verdict, done.started)
        if pool.idle():
            break
    pool.close()


def build(settings: Settings, kind: str, heartbeat: Heartbeat, scratch: Path) -> tuple[Runner, Consumer, Store]:
    names = settings.backends
    store: Store = load_backend(TABLE, "store", names.store)(settings)
    consumer: Consumer = load_backend(TABLE, "queue", names.queue)(settings, kind)
    runner = build_runner(kind, settings, store=store, consumer=consumer, heartbeat=heartbeat, scratch=scratch)
    return runner, consumer, store


def scratch_dir(settings: Settings) -> ScratchDir:
    """This process's folder for ImageMagick's temporary files; those of ended workers are removed."""
    conf = settings.worker
    base = settings.path(conf.temp_dir) if conf.temp_dir else Path(tempfile.gettempdir()) / "thumbnailify"
    scratch = ScratchDir(base)
    scratch.sweep()
    return scratch


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m thumbnailify.worker")
    parser.add_argument("--kind", choices=KINDS, default="image", help="which jobs to take (default: image)")
    kind = parser.parse_args().kind
    settings = load_settings()
    setup_logging(settings.log, "worker")
    open_files = raise_open_files_limit()
    heartbeat = Heartbeat(settings.worker.job_timeout + settings.worker.stall_margin)
    liveness.start_watchdog(heartbeat)  # first: start-up touches the volume too
    if kind in MEDIA_KINDS:  # a webhook worker decodes nothing: it starts without loading ImageMagick
        from thumbnailify.worker.handlers.image import apply_limits  # noqa: PLC0415

        apply_limits(settings.limits)
    limit_memory(settings.worker.memory_limit)
    scratch = scratch_dir(settings)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the current job, then exiting", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # see jobs.time_limit: a job's hard time limit
    runner, consumer, store = build(settings, kind, heartbeat, scratch.path)
    if settings.worker.metrics_port:
        liveness.serve(settings.worker.metrics_port, runner.metrics.registry, heartbeat)
    log.info("worker ready", extra={"kind": kind, "store": settings.backends.store, "queue": settings.backends.queue,
                                    "open_files": open_files})
    if kind == "webhook":
        serve_in_parallel(runner, consumer, heartbeat, WebhookPool(runner, settings.webhooks), stopping)
    else:
        serve_one_at_a_time(runner, consumer, heartbeat, scratch, stopping)
    consumer.close()
    store.close()
    log.info("worker stopped")
    return 0


def run() -> None:
    """The console script and `python -m`: start-up errors are one line and exit code 2."""
    with cannot_start_exits("thumbnailify worker"):
        sys.exit(main())


if __name__ == "__main__":
    run()
