"""Helpers shared by the bench scripts: an isolated real service, a camera-like corpus, wrk, a table.

The service runs as real processes (`python -m common.launch` or `python -m server`, or their
`thumbnailify` equivalents in a checkout of the installed-package layout) with its own volume,
SQLite file, Redis key prefix and RabbitMQ queue, like tests/harness.py does, so a bench never
touches `make run`'s data and cleans every trace of itself up afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

import pika.exceptions
import psutil
import redis
import requests
from PIL import Image, ImageChops, ImageOps

from tests.harness import NATS_MODE, REDIS_URL, delete_queues, free_port, on_nats, remove_nats_stream
from tests.harness import service_env as harness_env

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
CORPUS_DIR = ROOT / "var" / "bench-corpus"
TERMINAL = ("Completed", "Error")
STATUS_POLL_SECONDS = 0.005

JPEG_SIZE = (4000, 3000)  # 12 MP, a phone camera's 4:3 frame
PNG_SIZES = ((2000, 1500), (2400, 1600))  # 3 MP and 3.84 MP
JPEG_NOISE = 12  # +-levels of uniform noise: q90 files of ~3 MB, as a camera writes
PNG_NOISE = 4  # milder: lossless PNG keeps all of it


def on_sigterm_raise() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt, so a script's `finally` stops its services.

    SIGINT too, explicitly: a script started in the background by a non-interactive shell
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt on its own.
    """

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


# -- the service ---------------------------------------------------------------------------------
def service_env(mode: str, workdir: Path, **overrides: str) -> dict[str, str]:
    """The tests' isolated namespace (own volume, Redis prefix, queue), without per-request logs:
    INFO lines would cost the server CPU we are trying to measure."""
    return harness_env(mode, workdir, **({"THUMBNAILIFY_LOG_LEVEL": "WARNING"} | overrides))


def run_script(main: Callable[[], int]) -> None:
    """A bench script's entry point: its exit code, or 130 after Ctrl-C (services stopped)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; services stopped", file=sys.stderr)
        sys.exit(130)


@dataclass(frozen=True)
class Launcher:
    """How to start one checkout's code: the interpreter, and the modules it runs from `root`."""

    root: Path
    python: str
    launch: str  # the whole service (server + supervised workers)
    server: str
    worker: tuple[str, ...]  # the arguments after `python` that start one photo worker
    installed: bool  # the code imports only once installed (the `thumbnailify` package)

    def argv(self, module: str, *args: str) -> list[str]:
        return [self.python, "-m", module, *args]

    def is_photo_worker(self, cmdline: list[str]) -> bool:
        """A photo worker we or the launcher started (`--kind image`, or the bare worker module)."""
        return cmdline[-2:] == ["--kind", "image"] or cmdline[-2:] == ["-m", self.worker[1]]


def detect_launcher(root: Path, python: str = sys.executable) -> Launcher:
    """The layout of the checkout at `root`: the installed package `thumbnailify`, or the older
    top-level packages (common/, server/, worker/) that import from the working directory."""
    if (root / "thumbnailify" / "__main__.py").exists():
        return Launcher(root, python, "thumbnailify", "thumbnailify.server",
                        ("-m", "thumbnailify.worker", "--kind", "image"), installed=True)
    if (root / "common" / "launch.py").exists():
        worker_main = root / "worker" / "__main__.py"
        # Before the video worker there was one kind of worker, and no --kind option.
        kind = ("--kind", "image") if "--kind" in worker_main.read_text() else ()
        return Launcher(root, python, "common.launch", "server", ("-m", "worker", *kind), installed=False)
    raise ValueError(f"{root} is neither layout of this project (no thumbnailify/__main__.py nor common/launch.py)")


class BenchService:
    """The whole service with N photo workers, or the server alone when workers is None.

    The processes run the code of the checkout at `root` (this one by default), or as `launcher`
    says: a bench can run another commit's code beside this one's, in an isolated namespace.
    """

    def __init__(self, mode: str, workers: int | None, root: Path = ROOT, launcher: Launcher | None = None,
                 **overrides: str) -> None:
        self.mode = mode
        self.workers = workers
        self.launcher = launcher or detect_launcher(root)
        self.root = self.launcher.root
        self.workdir = Path(tempfile.mkdtemp(prefix=f"thumbnailify-bench-{mode}-"))
        self.env = service_env(mode, self.workdir, **overrides)
        self.port = int(self.env["THUMBNAILIFY_SERVER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> BenchService:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self, timeout: float = 30) -> BenchService:
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def spawn(self) -> None:
        """Start the processes without waiting for them to be ready (start() waits)."""
        argv = self.launcher.argv(self.launcher.server)
        if self.workers is not None:
            argv = self.launcher.argv(self.launcher.launch, "--workers", str(self.workers))
        with self.log_path.open("ab") as log:
            # Own session: a Ctrl-C in the terminal reaches only us; our finally stops the service.
            self.process = subprocess.Popen(
                argv, cwd=self.root, env=os.environ | self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_workers(self, count: int) -> None:
        """Extra photo worker processes beside a server-only service (to drain a backlog)."""
        with self.log_path.open("ab") as log:
            for _ in range(count):
                self.extra_workers.append(subprocess.Popen(
                    [self.launcher.python, *self.launcher.worker], cwd=self.root, env=os.environ | self.env,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ))

    def wait_ready(self, timeout: float) -> None:
        wait_ready(self.url, self.process, timeout, "service", self.logs)

    def family(self) -> list[psutil.Process]:
        """The launcher, every process under it, and the extra workers."""
        family: list[psutil.Process] = []
        for process in [self.process, *self.extra_workers]:
            if process is None:
                continue
            try:
                top = psutil.Process(process.pid)
                family += [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return family

    def worker_pids(self) -> list[int]:
        """The photo workers (started by the launcher or by us)."""
        pids = []
        for proc in self.family():
            try:
                if self.launcher.is_photo_worker(proc.cmdline()):
                    pids.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        return pids

    def stop(self, timeout: float = 20) -> None:
        family = self.family()
        processes = [p for p in (self.process, *self.extra_workers) if p is not None]
        self.process, self.extra_workers = None, []
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        # Whatever outlived the grace period (or was orphaned by a crash) is killed, never left behind.
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=5)

    def purge(self, patience: float = 15.0) -> None:
        """Delete this service's Redis keys and RabbitMQ queues (distributed mode), or its NATS
        stream and buckets (nats mode).

        Retried for a while: Redis or RabbitMQ may be briefly down (another test stops them).
        """
        if self.mode == NATS_MODE:
            on_nats(self.env, remove_nats_stream)
            return
        if self.mode != "distributed":
            return
        deadline = time.monotonic() + patience
        for step in (self._purge_redis, self._purge_rabbitmq):
            while True:
                try:
                    step()
                    break
                except (redis.RedisError, pika.exceptions.AMQPError) as exc:
                    if time.monotonic() > deadline:
                        print(f"warning: could not clean up {self.env['THUMBNAILIFY_REDIS_PREFIX']}* keys / "
                              f"{self.env['THUMBNAILIFY_RABBITMQ_QUEUE']} queues: {exc!r}", file=sys.stderr)
                        return
                    time.sleep(1.0)

    def _purge_redis(self) -> None:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        try:
            keys = list(client.scan_iter(f"{self.env['THUMBNAILIFY_REDIS_PREFIX']}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
        finally:
            client.close()

    def _purge_rabbitmq(self) -> None:
        delete_queues(self.env["THUMBNAILIFY_RABBITMQ_QUEUE"])

    def close(self) -> None:
        try:
            self.stop()
        finally:
            try:
                self.purge()
            finally:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # As tests.harness.Service has them, so the tests' helpers that plant data work on a bench service.
    @property
    def redis_url(self) -> str:
        return self.env["THUMBNAILIFY_REDIS_URL"]

    def media_dir(self, kind: str) -> Path:
        return Path(self.env["THUMBNAILIFY_FILES_ROOT"]) / kind


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout: float, name: str,
               logs: Callable[[], str] = str) -> None:
    """Until GET {url}/ready answers 200; a process that exits meanwhile, or no answer in time, is
    an error naming `name` (with what `logs` gives)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{logs()}")
        try:
            if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout:.0f}s:\n{logs()}")


@contextlib.contextmanager
def bare_handler(workdir: Path, patience: float = 15.0) -> Iterator[tuple[str, int]]:
    """The ingest baseline (bench.bare_ingest) on a port and folder of its own, ready: its URL and
    pid. Stopped, and its folder removed, afterwards."""
    port, folder = free_port(), workdir / "bare"
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_ingest", "--port", str(port), "--folder", folder],
                               cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, patience, "bench.bare_ingest")
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def vm_hwm_mb(pid: int) -> float:
    """A process's high-water resident set (VmHWM from /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- other load on the machine -------------------------------------------------------------------
# Redis and RabbitMQ work for us during a bench; any other busy process skews its figures.
SHARED_INFRA = frozenset({"redis-server", "beam.smp", "epmd", "erl_child_setup", "inet_gethost"})


def _foreign_cpu_seconds() -> dict[int, float]:
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    seconds: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.pid in mine or proc.info["name"] in SHARED_INFRA or times is None:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def wait_for_quiet(max_wait: float = 20.0, busy_percent: float = 25.0) -> float:
    """Wait (bounded) until the machine's CPU is mostly idle; returns the last busy percentage."""
    deadline = time.monotonic() + max_wait
    busy = psutil.cpu_percent(interval=1.0)
    while busy > busy_percent and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


class ForeignLoad:
    """CPU time used by processes that are neither ours nor Redis/RabbitMQ, over a bench."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.before = _foreign_cpu_seconds()

    def summary(self) -> str:
        after = _foreign_cpu_seconds()
        used = sum(max(0.0, t - self.before.get(pid, 0.0)) for pid, t in after.items())
        wall = max(1e-9, time.monotonic() - self.started)
        note = " -- figures are skewed, rerun on a quiet machine" if used / wall > 0.15 else ""
        return f"other processes used {used:.1f} CPU-s in {wall:.0f}s ({100 * used / wall:.0f}% of a core){note}"


# -- the corpus ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusFile:
    path: Path
    media_type: str  # "image/jpeg" | "image/png"


def _sources() -> list[Path]:
    return sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))


def _noisy(photo: Image.Image, size: tuple[int, int], amplitude: int, seed: int) -> Image.Image:
    """The photo cropped to the aspect and upscaled, plus seeded zero-mean noise of +-amplitude.

    A plain LANCZOS upscale is so smooth it would compress (and decode) unrealistically well;
    the noise gives it the entropy of a real sensor's output.
    """
    rng = random.Random(seed)
    if rng.random() < 0.5:
        photo = ImageOps.mirror(photo)  # same photo, other seed: a different file to decode
    big = ImageOps.fit(photo.convert("RGB"), size, Image.Resampling.LANCZOS)
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    noise = noise.point([v * 2 * amplitude // 255 for v in range(256)] * 3)
    return ImageChops.add(big, noise, 1.0, -amplitude)


def make_corpus(jpegs: int = 12, pngs: int = 6) -> list[CorpusFile]:
    """12 MP q90 JPEGs and 3-4 MP PNGs made from the test photos, cached in var/bench-corpus/."""
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    sources = _sources()
    corpus: list[CorpusFile] = []
    for index in range(jpegs):
        source = sources[index % len(sources)]
        path = CORPUS_DIR / f"jpeg-{index:02d}-{source.stem}-{JPEG_SIZE[0]}x{JPEG_SIZE[1]}.jpg"
        if not path.exists():
            with Image.open(source) as photo:
                image = _noisy(photo, JPEG_SIZE, JPEG_NOISE, seed=index)
            _atomic_save(image, path, "JPEG", quality=90)
        corpus.append(CorpusFile(path, "image/jpeg"))
    for index in range(pngs):
        source = sources[index % len(sources)]
        size = PNG_SIZES[index % len(PNG_SIZES)]
        path = CORPUS_DIR / f"png-{index:02d}-{source.stem}-{size[0]}x{size[1]}.png"
        if not path.exists():
            with Image.open(source) as photo:
                image = _noisy(photo, size, PNG_NOISE, seed=1000 + index)
            _atomic_save(image, path, "PNG")
        corpus.append(CorpusFile(path, "image/png"))
    return corpus


def _atomic_save(image: Image.Image, path: Path, fmt: str, **params: int) -> None:
    # Written aside then renamed: a run interrupted mid-save never leaves a truncated cache entry.
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


# -- output --------------------------------------------------------------------------------------
def print_table(headers: list[str], rows: list[list[str]], title: str = "") -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    if title:
        print(f"\n{title}")
    print(line)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print(line)
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(line)


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def interleaved(methods: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each method, alternating their order each round after one warm-up."""
    for method in methods.values():
        method()
    spent: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            started = time.perf_counter()
            methods[name]()
            spent[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in spent.items()}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def post_to_completed(service: BenchService, session: requests.Session, body: bytes, content_type: str,
                      patience: float = 120.0) -> float:
    """Seconds from a POST of `body` (as sent) to its item Completed; any other end, or still
    Processing after `patience` seconds, is an error."""
    started = time.perf_counter()
    response = session.post(f"{service.url}/images", data=body, headers={"Content-Type": content_type}, timeout=60)
    response.raise_for_status()
    media_id = response.json()["media_id"]
    while True:
        status = session.get(f"{service.url}/images/{media_id}", timeout=10).json()
        if status["state"] != "Processing":
            break
        if time.perf_counter() - started > patience:
            raise RuntimeError(f"{content_type} still Processing after {patience:.0f}s")
        time.sleep(STATUS_POLL_SECONDS)
    elapsed = time.perf_counter() - started
    if status["state"] != "Completed":
        raise RuntimeError(f"{content_type} ended {status['state']}: {status['message']}")
    return elapsed


# -- queued jobs ---------------------------------------------------------------------------------
UPLOAD_THREADS = 4  # enough to keep the server busy; more only adds client CPU on 2 cores
DRAIN_POLL_SECONDS = 0.05


def post_all(service: BenchService, jobs: int, body: Callable[[int], tuple[bytes, str]]) -> list[str]:
    """POST `jobs` uploads, body(index) giving each one's (body as sent, content type); their ids."""
    local = threading.local()  # a requests.Session per upload thread: sessions are not thread-safe

    def post(index: int) -> str:
        data, content_type = body(index)
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(
            f"{service.url}/images", data=data, headers={"Content-Type": content_type}, timeout=30
        )
        response.raise_for_status()
        return response.json()["media_id"]

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        return list(pool.map(post, range(jobs)))


def completed_items(service: BenchService, session: requests.Session, ids: list[str]) -> list[dict[str, str]]:
    """The listed Completed items among `ids`."""
    listed = session.get(f"{service.url}/images", params={"state": "Completed", "limit": 1000}, timeout=10)
    listed.raise_for_status()
    wanted = set(ids)
    return [item for item in listed.json()["items"] if item["media_id"] in wanted]


def drain(service: BenchService, session: requests.Session, ids: list[str], since: float,
          patience: float) -> tuple[float, int]:
    """Wait (at most `patience` seconds after `since`) until nothing is Processing; (seconds since
    `since`, how many of ids are Completed)."""
    deadline = since + patience
    while time.perf_counter() < deadline:
        pending = session.get(f"{service.url}/images", params={"state": "Processing", "limit": 1}, timeout=10)
        if not pending.json()["items"]:
            break
        time.sleep(DRAIN_POLL_SECONDS)
    elapsed = time.perf_counter() - since
    return elapsed, len(completed_items(service, session, ids))


# -- the bare baselines --------------------------------------------------------------------------
def pillow_thumbnail(path: Path) -> bytes:
    """The baseline: what a bare Pillow loop does for the same job."""
    with Image.open(path) as im:
        fmt = im.format
        if fmt == "JPEG":
            im.draft("RGB", (200, 200))  # libjpeg's shrink-on-load, as ours uses jpeg:size
        im.thumbnail((100, 100))
        out = io.BytesIO()
        im.save(out, format=fmt)
        return out.getvalue()


# -- wrk: POSTs of a ~100 KB JPEG, each with bytes of its own -----------------------------------
PAYLOAD_BYTES = 100_000
SLOT_BYTES = 12  # the comment that makes each wrk upload unique: 12 digits, or 16 base64 characters
# The body is head .. a number of `width` digits .. tail: the number (counting requests) is the
# JPEG comment, spelled as raw digits, or as base64 characters standing for 12 bytes of comment.
WRK_SCRIPT = """
local function slurp(variable)
  local file = io.open(os.getenv(variable), "rb")
  local text = file:read("*a")
  file:close()
  return text
end
local head, tail = slurp("BENCH_HEAD"), slurp("BENCH_TAIL")
local slot = "%0" .. os.getenv("BENCH_WIDTH") .. "d"
local count = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
request = function()
  count = count + 1
  return wrk.format(nil, nil, nil, head .. string.format(slot, count) .. tail)
end
"""


def photo_payload() -> bytes:
    """A real photo as a ~100 KB JPEG (the largest quality at or under the size)."""
    with Image.open(PHOTOS / "coffee.jpg") as photo:
        image = photo.convert("RGB").resize((1200, 800), Image.Resampling.LANCZOS)
    for quality in range(95, 10, -5):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= PAYLOAD_BYTES:
            return buffer.getvalue()
    return buffer.getvalue()


@dataclass(frozen=True)
class WrkBody:
    """A JPEG as wrk sends it: head, then a slot of `width` digits, then tail."""

    head: bytes
    width: int
    tail: bytes

    def with_number(self, number: int) -> bytes:
        return self.head + f"{number:0{self.width}d}".encode() + self.tail


def wrk_body(jpeg: bytes, form: str) -> WrkBody:
    """The JPEG with a 12-byte comment slot, as raw bytes ("binary") or as "base64".

    SOI + COM marker + length are 6 bytes and the comment 12: both multiples of 3, so the base64
    of the whole is the base64 of each part end to end, and any 16 digits in the slot decode to
    12 bytes of comment.
    """
    head = jpeg[:2] + b"\xff\xfe" + (SLOT_BYTES + 2).to_bytes(2, "big")
    if form == "binary":
        return WrkBody(head, SLOT_BYTES, jpeg[2:])
    if form == "base64":
        return WrkBody(base64.b64encode(head), SLOT_BYTES * 4 // 3, base64.b64encode(jpeg[2:]))
    raise ValueError(f"unknown form {form!r}")


@dataclass
class WrkFigures:
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    failures: int = 0  # non-2xx answers and socket errors
    error: str = ""


def start_wrk(url: str, body: WrkBody, *, connections: int, duration: float, workdir: Path) -> subprocess.Popen[str]:
    """wrk (one thread: it must not take the server's cores) POSTing `body` to `url`; its output
    comes on stdout. The caller waits with communicate(timeout=duration + 30)."""
    workdir.mkdir(parents=True, exist_ok=True)
    script, head, tail = workdir / "post.lua", workdir / "body.head", workdir / "body.tail"
    script.write_text(WRK_SCRIPT)
    head.write_bytes(body.head)
    tail.write_bytes(body.tail)
    env = {"BENCH_HEAD": str(head), "BENCH_TAIL": str(tail), "BENCH_WIDTH": str(body.width)}
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "-s", str(script), url]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish_wrk(wrk: subprocess.Popen[str], duration: float) -> WrkFigures:
    """Wait for wrk (bounded: killed 30 s past its duration) and read its figures."""
    try:
        output, _ = wrk.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        wrk.kill()
        output, _ = wrk.communicate()
    return parse_wrk(output, wrk.returncode)


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str, returncode: int | None) -> WrkFigures:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if returncode != 0 or rate is None:
        return WrkFigures(error=f"wrk exited {returncode}: {output[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkFigures(
        rate=float(rate.group(1)),
        p50_ms=_milliseconds(re.search(r"\s50%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        p99_ms=_milliseconds(re.search(r"\s99%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        requests=int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        failures=(int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0),
    )
