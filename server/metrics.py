"""Prometheus metrics of the server process(es).

With several server processes, PROMETHEUS_MULTIPROC_DIR is set by the launcher before any of them
imports prometheus_client, and a scrape of any process reports the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

OTHER = "other"  # the label of every client past the named ones
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, named_clients: int = 20) -> None:
        self.registry = CollectorRegistry()
        # Clients get a label of their own up to this many, the first each process sees (so one
        # series per client and process at most); the rest share "other": a service with
        # thousands of clients cannot blow up the metrics store.
        self.named_clients = named_clients
        self._named: set[str] = set()
        self.client_uploads = Counter(
            "thumbnailify_client_uploads_total", "Uploads answered 202, by client", ["client"], registry=self.registry,
        )
        self.client_bytes = Counter(
            "thumbnailify_client_upload_bytes_total", "Bytes of uploads answered 202, by client", ["client"],
            registry=self.registry,
        )
        self.client_refusals = Counter(
            "thumbnailify_client_refusals_total", "Uploads refused by client and reason (quota, rate)",
            ["client", "reason"], registry=self.registry,
        )
        self.requests = Counter(
            "thumbnailify_http_requests_total", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "thumbnailify_http_request_duration_seconds", "HTTP request latency by route",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.uploads = Counter(
            "thumbnailify_uploads_accepted_total", "Uploads answered 202", registry=self.registry,
        )
        self.event_streams = Gauge(
            "thumbnailify_event_streams", "Server-sent event streams open, read at scrape time",
            registry=self.registry, multiprocess_mode="livesum",
        )
        self.event_streams_refused = Counter(
            "thumbnailify_event_streams_refused_total",
            "Event streams answered 503: the process had server.max_event_streams open", registry=self.registry,
        )
        self.event_streams_cut = Counter(
            "thumbnailify_event_streams_cut_total",
            "Event streams disconnected because an event could not leave within server.event_send_timeout",
            registry=self.registry,
        )
        self.swept = Counter(
            "thumbnailify_swept_total",
            "What the retention sweep removed: media (past retention.media_days), upload, thumbnail, temp",
            ["what"], registry=self.registry,
        )
        self.queue_depth = Gauge(
            "thumbnailify_queue_depth", "Jobs waiting in the work queue, read at scrape time",
            registry=self.registry, multiprocess_mode="mostrecent",
        )

    def client_label(self, name: str) -> str:
        if name in self._named:
            return name
        if len(self._named) < self.named_clients:
            self._named.add(name)
            return name
        return OTHER

    def accepted(self, client: str, sizes: list[int]) -> None:
        label = self.client_label(client)
        self.uploads.inc(len(sizes))
        self.client_uploads.labels(label).inc(len(sizes))
        self.client_bytes.labels(label).inc(sum(sizes))

    def refused(self, client: str, reason: str) -> None:
        self.client_refusals.labels(self.client_label(client), reason).inc()

    def render(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)
