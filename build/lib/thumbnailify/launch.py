"""`python -m thumbnailify`: the whole service on one machine, what `make run` starts.

The server, worker.processes photo workers (one per core when 0), worker.video_processes video
workers and worker.webhook_processes webhook workers as child processes, restarted when one dies,
all stopped by Ctrl-C or SIGTERM. With the embedded queue, jobs claimed by workers of an
earlier run that was killed are handed out again first, so nothing stays Processing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from thumbnailify.backends.loader import load_backend
from thumbnailify.backends.sqlite.schema import Database, release_all
from thumbnailify.logs import setup_logging
from thumbnailify.server.backends import TABLE as SERVER_TABLE
from thumbnailify.settings import BACKEND_NAMES, Settings, load_settings
from thumbnailify.startup import cannot_start_exits, check_port_free, raise_open_files_limit
from thumbnailify.supervisor import Child, Supervisor
from thumbnailify.worker.backends import TABLE as WORKER_TABLE

log = logging.getLogger("launch")


def check_backends(settings: Settings) -> None:
    """Load every configured backend as the server and the workers will, so one that cannot load
    is said once, here, rather than by each child."""
    for kind in BACKEND_NAMES:
        for table in (SERVER_TABLE, WORKER_TABLE):
            load_backend(table, kind, getattr(settings.backends, kind))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m thumbnailify")
    parser.add_argument("--workers", type=int, default=None, help="photo worker processes (default: config)")
    parser.add_argument("--video-workers", type=int, default=None, help="video worker processes (default: config)")
    args = parser.parse_args()
    settings = load_settings()
    setup_logging(settings.log, "launch")
    workers = args.workers
    if workers is None:
        workers = settings.worker.processes or os.cpu_count() or 1
    video_workers = settings.worker.video_processes if args.video_workers is None else args.video_workers
    check_port_free(settings.server.host, settings.server.port)
    check_backends(settings)
    open_files = raise_open_files_limit()  # after the checks: a start that cannot work says one line
    if settings.backends.queue == "sqlite":
        db = Database(settings.path(settings.sqlite.path))
        released = release_all(db)
        db.close()
        if released:
            log.info("%d queued jobs from an earlier run are ready again", released)
    children = [Child("server", [sys.executable, "-m", "thumbnailify.server"])]
    # Workers on one machine cannot share a metrics port: worker i serves on metrics_port + i.
    base_port = settings.worker.metrics_port
    kinds = ["image"] * workers + ["video"] * video_workers + ["webhook"] * settings.worker.webhook_processes
    children += [
        Child(f"worker-{i}" if kind == "image" else f"{kind}-worker-{i}",
              [sys.executable, "-m", "thumbnailify.worker", "--kind", kind],
              {"THUMBNAILIFY_WORKER_METRICS_PORT": str(base_port + i)} if base_port else {})
        for i, kind in enumerate(kinds)
    ]
    log.info(
        "starting server on http://%s:%d with %d photo, %d video and %d webhook workers (store=%s, queue=%s, "
        "open files limit %d)",
        settings.server.host, settings.server.port, workers, video_workers, settings.worker.webhook_processes,
        settings.backends.store, settings.backends.queue, open_files,
    )
    return Supervisor(children, grace_seconds=settings.worker.job_timeout + 5).run()


def run() -> None:
    """The console script and `python -m`: start-up errors are one line and exit code 2."""
    with cannot_start_exits("thumbnailify"):
        sys.exit(main())


if __name__ == "__main__":
    run()
