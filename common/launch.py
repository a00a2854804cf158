"""`python -m common.launch`: the whole service on one machine, what `make run` starts.

The server and worker.processes workers (one per core when 0) as child processes, restarted when
one dies, all stopped by Ctrl-C or SIGTERM. With the embedded queue, jobs claimed by workers of an
earlier run that was killed are handed out again first, so nothing stays Processing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from common.config import load_settings
from common.logs import setup_logging
from common.sqlite import Database, SQLiteQueue
from common.supervisor import Child, Supervisor

log = logging.getLogger("launch")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m common.launch")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: config)")
    args = parser.parse_args()
    settings = load_settings()
    setup_logging(settings.log, "launch")
    workers = args.workers
    if workers is None:
        workers = settings.worker.processes or os.cpu_count() or 1
    if settings.backends.queue == "sqlite":
        db = Database(settings.path(settings.sqlite.path))
        released = SQLiteQueue(db, settings.sqlite.lease_seconds).release_all()
        db.close()
        if released:
            log.info("%d queued jobs from an earlier run are ready again", released)
    children = [Child("server", [sys.executable, "-m", "server"])]
    # Workers on one machine cannot share a metrics port: worker i serves on metrics_port + i.
    base_port = settings.worker.metrics_port
    children += [
        Child(f"worker-{i}", [sys.executable, "-m", "worker"],
              {"THUMBNAILIFY_WORKER_METRICS_PORT": str(base_port + i)} if base_port else {})
        for i in range(workers)
    ]
    log.info(
        "starting server on http://%s:%d with %d workers (store=%s, queue=%s)",
        settings.server.host, settings.server.port, workers, settings.backends.store, settings.backends.queue,
    )
    return Supervisor(children, grace_seconds=settings.worker.job_timeout + 5).run()


if __name__ == "__main__":
    sys.exit(main())
