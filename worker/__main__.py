"""`python -m worker`: one worker process; take a job, make its thumbnail, record it, ack, repeat.

SIGTERM or SIGINT lets the current job finish and be acked, then the process exits 0. Scale by
running more processes (`make run` starts one per core; compose and Kubernetes use replicas).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from common import state
from common.config import Settings, load_settings
from common.loader import load_backend
from common.logs import setup_logging
from common.volume import Volume
from worker.backends import TABLE, Consumer, Delivery, Store
from worker.jobs import JobRunner, Outcome
from worker.metrics import WorkerMetrics
from worker.thumbnails import ThumbHandler, apply_limits

log = logging.getLogger("worker")

IDLE_SECONDS = 1.0


def handle(runner: JobRunner, consumer: Consumer, delivery: Delivery) -> None:
    started = time.perf_counter()
    try:
        outcome, reason = runner.run(delivery)
    except Exception as exc:  # a bug of ours must not make a job loop forever or the worker exit
        log.exception("unexpected error", extra={"media_id": delivery.media_id})
        outcome, reason = Outcome.ERROR, f"internal error: {exc!r}"
        runner.record_failure(delivery.media_id, state.UNDECODABLE, reason)
    if outcome is Outcome.DEAD_LETTERED:
        consumer.dead_letter(delivery, reason)
    else:
        consumer.ack(delivery)
    runner.metrics.jobs.labels(outcome.value).inc()
    log.info(
        "job %s", outcome.value,
        extra={"media_id": delivery.media_id, "reason": reason, "redelivered": delivery.redelivered,
               "ms": round((time.perf_counter() - started) * 1000, 1)},
    )


def build(settings: Settings) -> tuple[JobRunner, Consumer, Store]:
    names = settings.backends
    store: Store = load_backend(TABLE, "store", names.store)(settings)
    consumer: Consumer = load_backend(TABLE, "queue", names.queue)(settings)
    volume = Volume(settings.path(settings.files.root))
    try:
        volume.prepare()
    except OSError as exc:  # not fatal: each job checks the volume and retries through outages
        log.warning("media volume not usable yet: %s", exc)
    runner = JobRunner(settings, store, volume, ThumbHandler(settings.thumbnail, settings.limits), WorkerMetrics())
    return runner, consumer, store


def main() -> int:
    settings = load_settings()
    setup_logging(settings.log, "worker")
    apply_limits(settings.limits)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the current job, then exiting", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # see JobRunner._make: a job's hard time limit
    runner, consumer, store = build(settings)
    if settings.worker.metrics_port:
        runner.metrics.serve(settings.worker.metrics_port)
    log.info("worker ready", extra={"store": settings.backends.store, "queue": settings.backends.queue})
    while not stopping.is_set():
        delivery = consumer.next(IDLE_SECONDS)
        if delivery is not None:
            handle(runner, consumer, delivery)
    consumer.close()
    store.close()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
