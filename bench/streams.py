#!/usr/bin/env python3
"""Idle event streams are cheap: a server process holding 500 open event streams.

    .venv/bin/python -m bench.streams [--streams 500] [--duration 10]

Against the distributed service with the workers paused (server only, one process), 500 clients
each wait on `GET /images/{id}/events` for an upload of its own that stays Processing (the
waiting client of a phone app), plus one `GET /events` dashboard. Measured: the server's RSS
before and with the streams open, the ingest rate (wrk, base64 POSTs of a ~100 KB JPEG) without
and with them open, side by side, and whether the dashboard saw every upload's change and every
waiting stream is still open at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import requests

from bench.support import (
    BenchService,
    ForeignLoad,
    WrkBody,
    finish_wrk,
    met,
    on_sigterm_raise,
    photo_payload,
    print_table,
    run_script,
    start_wrk,
    wait_for_quiet,
    wrk_body,
)

TARGET_RSS_MB = 100.0  # extra server memory for the idle streams
TARGET_RATE_RATIO = 0.9  # ingest with the streams open, against without


def rss_mb(service: BenchService) -> float:
    return sum(p.memory_info().rss for p in service.family()) / 2**20


def wrk_rate(url: str, body: WrkBody, duration: int, workdir: Path) -> float:
    figures = finish_wrk(start_wrk(url, body, connections=32, duration=duration, workdir=workdir), duration)
    if figures.error:
        raise RuntimeError(figures.error)
    return figures.rate


async def hold_streams(url: str, media_ids: list[str], state: dict[str, int], ready: asyncio.Event) -> None:
    """A stream per media id, and one on /events counting the status events it receives."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:

        async def stream(path: str, counting: bool) -> None:
            async with session.get(f"{url}{path}") as response:
                state["open"] += 1
                if state["open"] == len(media_ids) + 1:
                    ready.set()
                async for line in response.content:
                    if counting and line.startswith(b"event: status"):
                        state["dashboard"] += 1
            state["open"] -= 1

        tasks = [asyncio.create_task(stream(f"/images/{m}/events", False)) for m in media_ids]
        tasks.append(asyncio.create_task(stream("/events", True)))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)


def with_streams(service: BenchService, media_ids: list[str], duration: int, body: WrkBody,
                 workdir: Path) -> dict[str, float]:
    """Server RSS with the streams open, the ingest rate meanwhile, and what the streams saw."""
    state = {"open": 0, "dashboard": 0}
    result: dict[str, float] = {}

    async def run() -> None:
        ready = asyncio.Event()
        streams = asyncio.create_task(hold_streams(service.url, media_ids, state, ready))
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(2)  # settled
        result["rss"] = rss_mb(service)
        result["rate"] = await asyncio.to_thread(wrk_rate, f"{service.url}/images", body, duration, workdir)
        await asyncio.sleep(2)  # the last changes reach the dashboard
        result["open"], result["dashboard"] = state["open"], state["dashboard"]
        streams.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streams

    asyncio.run(run())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--duration", type=int, default=10, help="seconds of ingest load per run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `bash scripts/install-system.sh test` installs it")
    on_sigterm_raise()
    begun = time.perf_counter()
    busy = wait_for_quiet(max_wait=10)
    load = ForeignLoad()
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-streams-"))
    body = wrk_body(photo_payload(), "base64")
    print(f"machine CPU busy before start: {busy:.0f}%", flush=True)
    try:
        with BenchService("distributed", workers=None) as service:
            waiting = [requests.post(f"{service.url}/images", data=body.with_number(index), timeout=30,
                                     headers={"Content-Type": "image/jpeg"}).json()["media_id"]
                       for index in range(args.streams)]
            time.sleep(1)
            idle_rss = rss_mb(service)
            alone = wrk_rate(f"{service.url}/images", body, args.duration, workdir)
            time.sleep(2)  # the uploads wrk left in flight are answered before the count
            before = count_items(service)
            seen = with_streams(service, waiting, args.duration, body, workdir)
            uploads = count_items(service) - before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    streams_rss, crowded = seen["rss"], seen["rate"]
    extra = streams_rss - idle_rss
    ratio = crowded / alone if alone else 0.0
    rows = [
        ["server RSS, idle", f"{idle_rss:.0f} MB", "", ""],
        [f"server RSS with {args.streams} streams open", f"{streams_rss:.0f} MB (+{extra:.0f})",
         f"+<= {TARGET_RSS_MB:.0f} MB", met(extra <= TARGET_RSS_MB)],
        ["ingest without streams", f"{alone:.0f} req/s", "", ""],
        [f"ingest with {args.streams} streams open", f"{crowded:.0f} req/s ({ratio:.2f}x)",
         f">= {TARGET_RATE_RATIO}x", met(ratio >= TARGET_RATE_RATIO)],
        ["status events the /events dashboard saw", f"{seen['dashboard']:.0f} of {uploads} uploads",
         "all", met(seen["dashboard"] >= uploads)],
        ["waiting streams still open at the end", f"{seen['open'] - 1:.0f} of {args.streams}",
         "all", met(seen["open"] - 1 == args.streams)],
    ]
    print_table(["measure", "value", "target", "met"], rows,
                title=f"bench/streams ({time.perf_counter() - begun:.0f}s): idle event streams, one server process")
    print(load.summary())
    return 0


def count_items(service: BenchService) -> int:
    """How many items the service holds (the list endpoint, all pages)."""
    total, cursor = 0, None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = requests.get(f"{service.url}/images", params=params, timeout=30).json()
        total += len(page["items"])
        cursor = page["next"]
        if not cursor:
            return total


if __name__ == "__main__":
    run_script(main)
