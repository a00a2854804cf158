#!/usr/bin/env python3
"""Issue 15's server hardening (items 1-4 and 8), the old and the new code side by side.

    .venv/bin/python -m bench.hardening [--before /work/wt-before] [--only 1,2,3,4,8]

Each scenario runs against the checkout given as --before (its code, this interpreter), then
against this one, each on a fresh server of its own (127.0.0.1, its own volume, Redis prefix and
queue, all removed afterwards); one table shows both columns. Every load is bounded in count and
time; about 6 minutes in all.

1. Burst (distributed, server only): 300 concurrent GET /images/<id>, 300 concurrent POSTs of a
   small PNG, then 1,000 concurrent mixed clients; the same 1,000 in embedded mode.
2. Gzip bomb (auth.api_key set, embedded): ~1 GiB of newlines around a base64 PNG, gzip'd to
   ~1 MB, POSTed with Content-Encoding: gzip with the right key and without, while GET /health is
   probed back to back.
3. Slow uploads (embedded): 200 clients send the headers and 1 MiB of a 2 MiB base64 upload, then
   go idle (beside them 50 send half their headers, and one normal upload is made); the server's
   RSS, and the connections it still holds 40 s later (the new idle timeout is 30 s).
4. Expect: 100-continue (auth.api_key set, embedded): what the server answers first, and how many
   body bytes it takes in 10 s from a client that then streams as fast as it can.
8. Recovery (distributed): 2,000 stale Processing jobs planted in Redis with their uploads and no
   messages; seconds from process start until /health answers and until the pass is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import re
import socket
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import psutil
import requests
from PIL import Image

from bench.support import (
    ROOT,
    BenchService,
    ForeignLoad,
    on_sigterm_raise,
    print_table,
    run_script,
    vm_hwm_mb,
    wait_for_quiet,
)
from tests.harness import lane_depth
from tests.system.test_recovery import plant_stale_jobs

Figures = list[tuple[str, str]]  # (what was measured, the figure), in table order
API_KEY = "bench-hardening-key"
CACHE_DIR = ROOT / "var" / "bench-hardening"
HOST = "127.0.0.1"

BURST = 300
MIXED = 1000
CLIENT_TIMEOUT = 90.0  # per request: the new code may make an upload wait 30 s for memory

BOMB_NEWLINES = 1 << 30
PROBE_INTERVAL = 0.02
BOMB_TIMEOUT = 60.0
LINGER_WATCH = 12.0  # the old server goes on reading (inflating) for up to 10 s after its answer

SLOW_CLIENTS = 200
SLOW_BODY = 2 << 20  # base64 characters the headers announce ...
SLOW_SENT = 1 << 20  # ... and those sent before going idle
HALF_HEADER_CLIENTS = 50
SEND_PATIENCE = 20.0
AFTER_IDLE = 3.0
IDLE_WATCH = 40.0

EXPECT_LENGTH = 10_000_000_000
STREAM_SECONDS = 10.0
STREAM_CHUNK = 1 << 20

STALE_JOBS = 2000
RECOVERY_TIMEOUT = 120.0


# -- helpers -------------------------------------------------------------------------------------
def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def tally(counts: Counter[str]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items())) or "none"


def megabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def server_pid(service: BenchService) -> int:
    assert service.process is not None, "the service is not running"
    return service.process.pid


def revision(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=True).stdout.strip()


def request_head(*lines: str) -> bytes:
    return "\r\n".join(["POST /images HTTP/1.1", f"Host: {HOST}", *lines, "", ""]).encode()


async def final_status(reader: asyncio.StreamReader) -> str:
    """The status of the first final (not 1xx) response, or 'closed' when the server closed first."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return "closed"
            status = line.split()[1].decode()
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if not status.startswith("1"):
                with contextlib.suppress(asyncio.IncompleteReadError):
                    await reader.readexactly(length)
                return status
    except ConnectionError:
        return "reset"


async def send_quietly(writer: asyncio.StreamWriter, data: bytes, patience: float) -> None:
    """Send what the server takes within patience; a server that closes or stops reading is fine."""
    writer.write(data)
    with contextlib.suppress(ConnectionError, TimeoutError):
        await asyncio.wait_for(writer.drain(), patience)


# -- 1. burst ------------------------------------------------------------------------------------
async def concurrent_requests(url: str, kinds: list[str], body: bytes, media_id: str) -> tuple[Counter[str], float]:
    """Every request at once, each on a connection of its own; counts by status (or error)."""
    counts: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(kind: str) -> None:
            try:
                if kind == "GET":
                    request = session.get(f"{url}/images/{media_id}")
                else:
                    request = session.post(f"{url}/images", data=body, headers={"Content-Type": "image/png"})
                async with request as response:
                    await response.read()
                    counts[str(response.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                counts[type(exc).__name__] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(kind) for kind in kinds))
    return counts, time.perf_counter() - started


def five_xx(counts: Counter[str], seconds: float) -> str:
    errors = sum(n for status, n in counts.items() if status.startswith("5") or not status.isdigit())
    return f"{errors} 5xx/errors ({tally(counts)}; {seconds:.1f} s)"


def burst(root: Path) -> Figures:
    body = base64.b64encode(small_png())
    figures: Figures = []
    for mode in ("distributed", "embedded"):
        with BenchService(mode, workers=None, root=root) as service:
            created = requests.post(f"{service.url}/images", data=body, headers={"Content-Type": "image/png"},
                                    timeout=10)
            created.raise_for_status()
            media_id = created.json()["media_id"]
            if mode == "distributed":
                for label, kind in (("GET /images/<id>", "GET"), ("POST /images (small PNG)", "POST")):
                    counts, seconds = asyncio.run(concurrent_requests(service.url, [kind] * BURST, body, media_id))
                    figures.append((f"{mode}: {BURST} concurrent {label}", f"{tally(counts)} ({seconds:.1f} s)"))
            mixed = ["GET", "POST"] * (MIXED // 2)
            counts, seconds = asyncio.run(concurrent_requests(service.url, mixed, body, media_id))
            figures.append((f"{mode}: {MIXED:,} concurrent mixed GET/POST", five_xx(counts, seconds)))
    return figures


# -- 2. gzip bomb --------------------------------------------------------------------------------
def gzip_bomb() -> bytes:
    """~1 GiB of newlines around a base64 PNG, gzip'd to ~1 MB: built once, streaming, then cached."""
    path = CACHE_DIR / "newlines-1GiB-around-png.b64.gz"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        newlines = b"\n" * (1 << 20)
        halves = BOMB_NEWLINES // 2 // len(newlines)
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
        partial = path.with_suffix(".part")
        with partial.open("wb") as out:
            for piece in (*[newlines] * halves, base64.b64encode(small_png()), *[newlines] * halves):
                out.write(compressor.compress(piece))
            out.write(compressor.flush())
        partial.replace(path)  # an interrupted build never leaves a truncated cache entry
    return path.read_bytes()


async def worst_health_latency(url: str, stop: asyncio.Event) -> float:
    """GET /health back to back (20 ms apart) until stop; the slowest answer's seconds."""
    worst = 0.0
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        while not stop.is_set():
            started = loop.time()
            async with session.get(f"{url}/health") as response:
                await response.read()
            worst = max(worst, loop.time() - started)
            await asyncio.sleep(PROBE_INTERVAL)
    return worst


async def post_bomb(service: BenchService, bomb: bytes, key: str | None) -> tuple[str, float, float]:
    """(status, seconds until it, worst /health latency from just before the POST until the server
    has closed the connection or stopped reading)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    prober = asyncio.create_task(worst_health_latency(service.url, stop))
    await asyncio.sleep(0.2)
    lines = ["Content-Type: image/png", "Content-Encoding: gzip", f"Content-Length: {len(bomb)}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    reader, writer = await asyncio.open_connection(HOST, service.port)
    started = loop.time()
    sender = asyncio.create_task(send_quietly(writer, request_head(*lines) + bomb, BOMB_TIMEOUT))
    try:
        status = await asyncio.wait_for(final_status(reader), BOMB_TIMEOUT)
    except TimeoutError:
        status = "no answer"
    seconds = loop.time() - started
    # Keep the connection as an attacker would: the old server goes on inflating after a 401.
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_WATCH):
            while await reader.read(65536):
                pass
    stop.set()
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    writer.close()
    return status, seconds, await prober


def gzip_bomb_scenario(root: Path) -> Figures:
    bomb = gzip_bomb()
    figures: Figures = []
    with BenchService("embedded", workers=None, root=root, THUMBNAILIFY_AUTH_API_KEY=API_KEY) as service:
        for label, key in (("right key", API_KEY), ("no key", None)):
            status, seconds, worst = asyncio.run(post_bomb(service, bomb, key))
            measure = f"{megabytes(len(bomb))} gzip of 1 GiB, {label}: answer"
            figures.append((measure, f"{status} after {seconds:.2f} s"))
            figures.append((f"... {label}: slowest parallel GET /health", f"{worst * 1000:.0f} ms"))
        figures.append(("server peak RSS (VmHWM)", f"{vm_hwm_mb(server_pid(service)):.0f} MB"))
    return figures


# -- 3. slow uploads -----------------------------------------------------------------------------
async def idle_connection(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    await send_quietly(writer, data, SEND_PATIENCE)
    return reader, writer


def held_connections(pid: int, port: int, writers: list[asyncio.StreamWriter]) -> int:
    """How many of these clients' connections the server process still has ESTABLISHED."""
    ports = {writer.get_extra_info("sockname")[1] for writer in writers}
    return sum(
        1 for conn in psutil.Process(pid).net_connections("tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port and conn.raddr
        and conn.raddr.port in ports
    )


async def timed_upload(url: str, body: bytes) -> str:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)) as session, \
                session.post(f"{url}/images", data=body, headers={"Content-Type": "image/png"}) as response:
            status = str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = type(exc).__name__
    return f"{status} after {loop.time() - started:.1f} s"


async def slow_uploads_run(service: BenchService) -> Figures:
    pid, port = server_pid(service), service.port
    decoded = SLOW_BODY // 4 * 3
    body = base64.b64encode((small_png() + bytes(decoded))[:decoded])
    head = request_head("Content-Type: image/png", f"Content-Length: {len(body)}")
    before = rss_mb(pid)
    slow = await asyncio.gather(*(idle_connection(port, head + body[:SLOW_SENT]) for _ in range(SLOW_CLIENTS)))
    half_head = request_head("Content-Type: image/png")[:-4]  # the headers, never their end
    half = await asyncio.gather(*(idle_connection(port, half_head) for _ in range(HALF_HEADER_CLIENTS)))
    answers = [asyncio.create_task(final_status(reader)) for reader, _ in slow]
    normal = asyncio.create_task(timed_upload(service.url, base64.b64encode(small_png())))
    await asyncio.sleep(AFTER_IDLE)
    after = rss_mb(pid)
    await asyncio.sleep(IDLE_WATCH - AFTER_IDLE)
    held_slow = held_connections(pid, port, [writer for _, writer in slow])
    held_half = held_connections(pid, port, [writer for _, writer in half])
    later = rss_mb(pid)
    answered = Counter(task.result() if task.done() else "no answer" for task in answers)
    for task in answers:
        task.cancel()
    await asyncio.gather(*answers, return_exceptions=True)
    normal_upload = await normal
    for _, writer in (*slow, *half):
        writer.close()
    return [
        (f"{SLOW_CLIENTS} idle uploads (1 of 2 MiB sent): server RSS before → {AFTER_IDLE:.0f} s after (peak)",
         f"{before:.0f} → {after:.0f} MB ({vm_hwm_mb(pid):.0f})"),
        (f"... RSS {IDLE_WATCH:.0f} s after", f"{later:.0f} MB"),
        (f"... connections the server still holds after {IDLE_WATCH:.0f} s", f"{held_slow} of {SLOW_CLIENTS}"),
        ("... what those clients were answered", tally(answered)),
        ("a normal small upload sent meanwhile", normal_upload),
        (f"{HALF_HEADER_CLIENTS} clients that sent half their headers: still held after {IDLE_WATCH:.0f} s",
         f"{held_half} of {HALF_HEADER_CLIENTS}"),
    ]


def slow_uploads(root: Path) -> Figures:
    with BenchService("embedded", workers=None, root=root) as service:
        return asyncio.run(slow_uploads_run(service))


# -- 4. Expect: 100-continue ---------------------------------------------------------------------
def first_answer(sock: socket.socket) -> str:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed"
            data += chunk
    except TimeoutError:
        return "nothing within 5 s"
    return data.split(b"\r\n", 1)[0].decode("latin-1").split()[1]  # the status code


def body_frames(chunked: bool) -> Iterator[bytes]:
    """A PNG's base64 start, then 'A's (zeros) for ever; chunk-framed when chunked."""
    data = base64.b64encode(small_png()[:36]).ljust(STREAM_CHUNK, b"A")
    while True:
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data
        data = b"A" * STREAM_CHUNK


def stream_for(sock: socket.socket, chunked: bool) -> tuple[int, float | None]:
    """Stream as fast as the server takes it for STREAM_SECONDS: (bytes sent, seconds until the
    server closed, or None when it was still reading)."""
    sock.settimeout(0.5)
    sent = 0
    started = time.monotonic()
    frames = body_frames(chunked)
    pending = memoryview(next(frames))
    while time.monotonic() - started < STREAM_SECONDS:
        try:
            sent += (n := sock.send(pending))
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return sent, time.monotonic() - started
        pending = pending[n:] or memoryview(next(frames))
    return sent, None


def expect_continue(port: int, lines: list[str], stream: bool) -> Figures:
    """The first answer to the headers; when streaming, what the server then takes (even after a
    final answer: a client may ignore it and send on)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(request_head(*lines, "Expect: 100-continue"))
        figures = [("first answer", first_answer(sock))]
        if stream:
            sent, closed = stream_for(sock, chunked="Transfer-Encoding: chunked" in lines)
            after = f"closed after {closed:.2f} s" if closed is not None else "still reading"
            figures.append((f"body bytes taken in {STREAM_SECONDS:.0f} s", f"{megabytes(sent)}, {after}"))
    return figures


def expect_scenario(root: Path) -> Figures:
    key = f"Authorization: Bearer {API_KEY}"
    cases = (
        ("Content-Length 10^10, image/png, key", [key, "Content-Type: image/png", f"Content-Length: {EXPECT_LENGTH}"],
         True),
        ("chunked (no length), image/png, key", [key, "Content-Type: image/png", "Transfer-Encoding: chunked"], True),
        ("Content-Length 10^10, text/plain, key", [key, "Content-Type: text/plain",
                                                   f"Content-Length: {EXPECT_LENGTH}"], False),
        ("Content-Length 10^10, image/png, no key", ["Content-Type: image/png", f"Content-Length: {EXPECT_LENGTH}"],
         False),
    )
    figures: Figures = []
    with BenchService("embedded", workers=None, root=root, THUMBNAILIFY_AUTH_API_KEY=API_KEY) as service:
        for label, lines, stream in cases:
            for index, (measure, figure) in enumerate(expect_continue(service.port, lines, stream)):
                figures.append((f"Expect 100-continue, {label}: {measure}" if index == 0 else f"... {measure}", figure))
    return figures


# -- 8. recovery ---------------------------------------------------------------------------------
def recovery(root: Path) -> Figures:
    service = BenchService("distributed", workers=None, root=root, THUMBNAILIFY_LOG_LEVEL="INFO")
    try:
        plant_stale_jobs(service, STALE_JOBS)  # a BenchService has what it uses
        started = time.monotonic()
        service.spawn()
        health = logged = None
        while (health is None or logged is None) and time.monotonic() - started < RECOVERY_TIMEOUT:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{service.logs()}")
            if health is None:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{service.url}/health", timeout=1).status_code == 200:
                        health = time.monotonic() - started
            if logged is None and "recovery pass:" in service.logs():
                logged = time.monotonic() - started
            time.sleep(0.02)
        found = re.search(r"recovery pass: (\d+) stale jobs re-queued", service.logs())
        depth = lane_depth(service.env["THUMBNAILIFY_RABBITMQ_QUEUE"])
    finally:
        service.close()

    def seconds(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else f"not within {RECOVERY_TIMEOUT:.0f} s"

    return [
        (f"{STALE_JOBS:,} stale jobs: process start → /health answers", seconds(health)),
        ("... process start → recovery pass logged", seconds(logged)),
        ("... jobs re-queued (log) / messages on the queue",
         f"{found.group(1) if found else '?'} / {depth}"),
    ]


# -- the run -------------------------------------------------------------------------------------
SCENARIOS: dict[str, tuple[str, Callable[[Path], Figures]]] = {
    "1": ("burst", burst),
    "2": ("gzip bomb", gzip_bomb_scenario),
    "3": ("slow uploads", slow_uploads),
    "4": ("Expect: 100-continue", expect_scenario),
    "8": ("recovery", recovery),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hardening", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="a checkout of the code before the fixes, run beside this one")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="items to run, comma-separated (1,2,3,4,8)")
    args = parser.parse_args()
    on_sigterm_raise()
    items = [item.strip() for item in args.only.split(",")]
    if unknown := [item for item in items if item not in SCENARIOS]:
        parser.error(f"unknown items {unknown}; choose from {', '.join(SCENARIOS)}")
    roots = [ROOT]
    if args.before is not None:
        if not (args.before / "server" / "__main__.py").exists():
            parser.error(f"{args.before} is not a checkout of this project")
        roots.insert(0, args.before.resolve())
    names = [revision(root) if len(roots) == 1 else f"{'after' if root == ROOT else 'before'} {revision(root)}"
             for root in roots]
    if "2" in items:
        gzip_bomb()  # built (once) before anything is measured
    load = ForeignLoad()
    rows: list[list[str]] = []
    for item in items:
        title, scenario = SCENARIOS[item]
        columns: list[Figures] = []
        for root, name in zip(roots, names, strict=True):
            wait_for_quiet()
            print(f"{item}. {title}: {name} ...", file=sys.stderr, flush=True)
            columns.append(scenario(root))
            for measure, figure in columns[-1]:
                print(f"    {measure}: {figure}", file=sys.stderr, flush=True)
        for index, (measure, _) in enumerate(columns[0]):
            rows.append([item, measure, *(column[index][1] for column in columns)])
    print_table(["#", "measure", *names], rows, title="Issue 15 hardening, before and after")
    print(load.summary())
    return 0


if __name__ == "__main__":
    run_script(main)
