"""`python -m server`: serve the API, in one process or several sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile

import uvloop
from aiohttp import web

from common.config import load_settings
from common.logs import setup_logging
from common.supervisor import Child, Supervisor
from server.app import create_app

log = logging.getLogger("server")


def serve(index: int, shared_port: bool) -> None:
    settings = load_settings()
    setup_logging(settings.log, "server")
    conf = settings.server
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_app(settings, run_recovery_pass=index == 0),
        host=conf.host,
        port=conf.port,
        reuse_port=shared_port,
        shutdown_timeout=conf.shutdown_timeout,
        access_log=None,
        print=lambda _: log.info("serving on http://%s:%d", conf.host, conf.port),
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m server")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = load_settings()
    processes = max(1, settings.server.processes)
    if args.child is not None or processes == 1:
        serve(args.child or 0, shared_port=processes > 1)
        return 0
    setup_logging(settings.log, "server")
    metrics_dir = tempfile.mkdtemp(prefix="thumbnailify-metrics-")
    children = [
        Child(f"server-{i}", [sys.executable, "-m", "server", "--child", str(i)],
              {"PROMETHEUS_MULTIPROC_DIR": metrics_dir})
        for i in range(processes)
    ]
    try:
        return Supervisor(children, grace_seconds=settings.server.shutdown_timeout + 5).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
