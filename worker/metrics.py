"""Prometheus metrics of one worker process, served on worker.metrics_port when it is set (see liveness)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from thumbnailify import state
from thumbnailify.record import MediaRecord

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "thumbnailify_jobs_total", "Jobs handled, by outcome (completed, error, skipped, dead_lettered)",
            ["outcome"], registry=self.registry,
        )
        self.processing = Histogram(
            "thumbnailify_job_processing_seconds", "Time to decode and make one thumbnail",
            buckets=SECONDS_BUCKETS, registry=self.registry,
        )
        self.queue_wait = Histogram(
            "thumbnailify_job_queue_wait_seconds", "Time from the 202 to a worker taking the job",
            buckets=SECONDS_BUCKETS, registry=self.registry,
        )

    def observe_wait(self, record: MediaRecord) -> None:
        self.queue_wait.observe(max(0.0, (state.now() - record.created_at).total_seconds()))
