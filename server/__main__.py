"""`python -m thumbnailify.server`: serve the API, in one process or several sharing the port (SO_REUSEPORT).

On SIGTERM, SIGINT or SIGHUP a process stops listening, lets the requests in flight finish (up to
server.shutdown_timeout), then closes. aiohttp's own shutdown stops reading request bodies at
once, which would cut off uploads still streaming in, so the drain comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import shutil
import signal
import sys
import tempfile

import uvloop
from aiohttp import web

from thumbnailify.logs import setup_logging
from thumbnailify.memory import map_large_blocks
from thumbnailify.server.app import create_app
from thumbnailify.server.http.protocol import AppRunner
from thumbnailify.server.resources import IN_FLIGHT, RESOURCES
from thumbnailify.settings import Settings, load_settings
from thumbnailify.startup import bind_error, cannot_start_exits, check_port_free, raise_open_files_limit
from thumbnailify.supervisor import Child, Supervisor

log = logging.getLogger("server")

# A bucket's upload part (5 MiB and more) gets a mapping of its own, handed back when freed. Smaller
# buffers (aiohttp's joined chunks, decoded runs of base64) come from the heap and are reused from
# one upload to the next: mapped, each cost a page fault per 4 KiB (a third of the server's CPU, half
# its kernel time, on a 12 MP base64 upload); the upload slots hand a burst's heap back.
LARGE_BLOCK = 1024 * 1024


async def serve(settings: Settings, shared_port: bool, open_files: int) -> None:
    conf = settings.server
    app = create_app(settings)
    runner = AppRunner(app, keepalive_timeout=conf.keepalive_timeout, access_log=None,
                       shutdown_timeout=conf.shutdown_timeout)
    # Before the app starts (its start runs the recovery pass and the sweep): a process that cannot
    # listen must do nothing else.
    check_port_free(conf.host, conf.port, shared=shared_port)
    await runner.setup()
    site = web.TCPSite(runner, conf.host, conf.port, reuse_port=shared_port, backlog=conf.backlog)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        error = bind_error(conf.host, conf.port, exc)
        if error is None:
            raise
        raise error from exc
    log.info("serving on http://%s:%d (open files limit %d, at most %d event streams)", conf.host, conf.port,
             open_files, app[RESOURCES].events.limit)
    # What start-up made lives as long as the process: a full collection stops walking it. Under
    # ingest load one took 44-50 ms (a stall for every request in flight), 2 ms once frozen. (No
    # collection first: it would cost each start 25 ms to free the few cycles start-up leaves.)
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal was closed
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    in_flight = app[IN_FLIGHT]
    log.info("stopping: no new connections, %d requests in flight", in_flight.count)
    await site.stop()
    app[RESOURCES].events.close()  # event streams would never finish on their own
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(in_flight.idle.wait(), conf.shutdown_timeout)
    await runner.cleanup()
    log.info("stopped")


def main() -> int:
    map_large_blocks(LARGE_BLOCK)
    parser = argparse.ArgumentParser(prog="python -m thumbnailify.server")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = load_settings()
    setup_logging(settings.log, "server")
    open_files = raise_open_files_limit()
    processes = max(1, settings.server.processes)
    if args.child is not None or processes == 1:
        uvloop.run(serve(settings, shared_port=processes > 1, open_files=open_files))
        return 0
    metrics_dir = tempfile.mkdtemp(prefix="thumbnailify-metrics-")
    children = [
        Child(f"server-{i}", [sys.executable, "-m", "thumbnailify.server", "--child", str(i)],
              {"PROMETHEUS_MULTIPROC_DIR": metrics_dir})
        for i in range(processes)
    ]
    try:
        return Supervisor(children, grace_seconds=settings.server.shutdown_timeout + 5).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def run() -> None:
    """The console script and `python -m`: start-up errors are one line and exit code 2."""
    with cannot_start_exits("thumbnailify server"):
        sys.exit(main())


if __name__ == "__main__":
    run()
