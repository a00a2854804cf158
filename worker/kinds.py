"""The kinds of worker (`python -m thumbnailify.worker --kind ...`): the queue each takes jobs from, and what
it makes of them. Photos and videos share the media state machine (worker.jobs) with a handler of
their own (thumbnailify.worker.handlers); webhooks have a runner of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from thumbnailify import state
from thumbnailify.backends.loader import load_backend
from thumbnailify.settings import Settings
from thumbnailify.worker.backends import TABLE, Consumer, Delivery, Files, Store
from thumbnailify.worker.handlers import load_handler
from thumbnailify.worker.jobs import JobRunner
from thumbnailify.worker.liveness import Heartbeat
from thumbnailify.worker.metrics import WorkerMetrics
from thumbnailify.worker.outcome import Outcome, Verdict
from thumbnailify.worker.webhooks.runner import WebhookRunner

log = logging.getLogger(__name__)

class Runner(Protocol):
    metrics: WorkerMetrics

    def run(self, delivery: Delivery) -> Verdict: ...
    def abandon(self, delivery: Delivery) -> None: ...
    def record_failure(self, media_id: str, code: int, reason: str) -> None: ...


def run_guarded(runner: Runner, delivery: Delivery) -> Verdict:
    """The runner's verdict; a bug of ours is an Error, recorded, so no job loops forever."""
    try:
        return runner.run(delivery)
    except Exception as exc:
        log.exception("unexpected error", extra={"media_id": delivery.media_id})
        reason = f"internal error: {exc!r}"
        runner.record_failure(delivery.media_id, state.UNDECODABLE, reason)
        return Verdict(Outcome.ERROR, reason)


def build_runner(
    kind: str, settings: Settings, *, store: Store, consumer: Consumer, heartbeat: Heartbeat, scratch: Path
) -> Runner:
    metrics = WorkerMetrics()
    if kind == "webhook":
        return WebhookRunner(settings, store, metrics)
    files: Files = load_backend(TABLE, "files", settings.backends.files)(settings, scratch)
    try:
        files.prepare()
    except files.transient as exc:  # not fatal: each job checks the files backend and retries through outages
        log.warning("media files not usable yet: %s", exc)
    handler = load_handler(kind, settings)
    return JobRunner(settings, store, files, handler, metrics, heartbeat,
                     notify=lambda media_id, media_type: consumer.enqueue("webhook", media_id, media_type))
