"""Is the worker's main loop still making progress? A heartbeat, a watchdog, and GET /health.

prometheus-client answers from a thread of its own, so a worker whose main loop hangs (a call on
a hung NFS mount, a store with no timeout) still serves /metrics. The loop beats instead: after
each wait for a job and at each try of a job. Silent longer than worker.job_timeout (the longest a
try may take) plus worker.stall_margin, the worker is stuck: /health answers 503, and a few
seconds later (so a probe or a scrape can see why) the watchdog ends the process, so that
whatever runs it (the launcher, compose, Kubernetes) starts a new one; the job goes back to the
queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

STUCK_EXIT_CODE = 70  # EX_SOFTWARE
WATCH_INTERVAL = 1.0
REPORT_SECONDS = 3.0  # /health says 503 this long before the process ends


class Heartbeat:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last = time.monotonic()

    def beat(self, at: float | None = None) -> None:
        """Progress now, or as of `at` (a time.monotonic()) when work begun then is still under way."""
        self.last = time.monotonic() if at is None else at

    def silence(self) -> float:
        return time.monotonic() - self.last

    def stuck(self) -> bool:
        return self.silence() > self.limit


def start_watchdog(heartbeat: Heartbeat) -> None:
    """End the process once the main loop is stuck: nothing else can interrupt it."""

    def watch() -> None:
        while heartbeat.silence() <= heartbeat.limit + REPORT_SECONDS:
            time.sleep(WATCH_INTERVAL)
        log.error("main loop stuck for %.0fs (limit %.0fs); exiting so the worker is restarted",
                  heartbeat.silence(), heartbeat.limit)
        logging.shutdown()
        os._exit(STUCK_EXIT_CODE)

    threading.Thread(target=watch, name="watchdog", daemon=True).start()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not worth a log line."""


Environ = dict[str, object]
StartResponse = Callable[[str, list[tuple[str, str]]], object]


def serve(port: int, registry: CollectorRegistry, heartbeat: Heartbeat) -> None:
    """GET /health (the main loop's progress) and the Prometheus metrics, from a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            return metrics(environ, start_response)  # type: ignore[arg-type]
        silence = heartbeat.silence()
        status = "503 Service Unavailable" if heartbeat.stuck() else "200 OK"
        body = f'{{"main_loop_silent_seconds": {silence:.1f}, "limit_seconds": {heartbeat.limit:.1f}}}\n'
        start_response(status, [("Content-Type", "application/json")])
        return [body.encode()]

    httpd = make_server("0.0.0.0", port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
