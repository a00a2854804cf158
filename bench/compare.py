#!/usr/bin/env python3
"""What a change cost: the key benchmarks on an older revision and on this checkout, side by side.

    .venv/bin/python -m bench.compare --before <rev> [--rounds 2] [--quick] [--keep]
    make bench-compare BEFORE=<rev>

<rev> is checked out with `git worktree add --detach var/bench-before/<rev>` (reused when there,
removed at the end unless --keep). Both checkouts get the same black-box measurements, alternating
within each round (before, then now) so both see the same minute of this shared machine; each run
is a fresh stack on 127.0.0.1 with its own port, folder, Redis prefix and RabbitMQ queue, all
removed afterwards, and every load is bounded in count and time.

1. POST -> Completed p50 and p90 of one 12 MP JPEG (each upload with a JPEG comment of its own,
   so content-hash dedup skips nothing), sequential, on an idle distributed stack (Redis +
   RabbitMQ, 2 photo workers); against Pillow's own draft + thumbnail + save of that photo on
   one core in this process (target: p50 <= 1.5x Pillow).
2. Backlog drain: jobs queued with no worker running, then 2 photo workers drain them; jobs/s from
   the first completion to the last, against one bare Pillow core (target: >= 1.7x).
3. A photo worker's peak RSS (VmHWM) after those jobs (target: <= 64 MB).
4. Ingest: wrk -c32 POSTing a ~100 KB JPEG (as base64, then `?encoding=binary`) to the server
   alone, against a bare aiohttp handler that decodes the base64 and writes the file, under the
   same wrk load in the same round (targets: base64 >= 0.9x bare, binary >= 1.3x base64, p99 <=
   1.5x bare).

Each round prints before, now and now/before; the end prints the medians over the rounds with
each target checked on the 'now' column. A ratio to a baseline is taken within its round (the
baseline saw the same minute), so its median need not equal the quotient of the medians above it.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import math
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import requests

from bench.support import (
    ROOT,
    BenchService,
    ForeignLoad,
    Launcher,
    WrkBody,
    bare_handler,
    completed_items,
    detect_launcher,
    drain,
    finish_wrk,
    make_corpus,
    met,
    on_sigterm_raise,
    percentile,
    photo_payload,
    pillow_thumbnail,
    post_all,
    post_to_completed,
    print_table,
    run_script,
    start_wrk,
    vm_hwm_mb,
    wait_for_quiet,
    wrk_body,
)
from tests.harness import distinct_jpeg

BEFORE_DIR = ROOT / "var" / "bench-before"
SIDES = ("before", "now")
PHOTO_WORKERS = 2
WARM_UP_RUNS = 3  # first jobs pay for connections, worker start and caches: not what we measure
JOB_PATIENCE = 30.0  # one 12 MP JPEG takes ~0.1 s; still Processing after this is a failure
DRAIN_PATIENCE = 180.0
CONNECTIONS = 32
MAX_FAILED_SHARE = 0.01  # a wrk run with more failed requests than this measured errors, not ingest
READY_PATIENCE = 15.0
UNIQUE = itertools.count()  # every upload's own JPEG comment

# Figure names, in the order of the table.
PILLOW_MS = "Pillow draft+thumbnail+save, 1 core (ms)"
P50_MS = "POST->Completed p50 (ms)"
P90_MS = "POST->Completed p90 (ms)"
P50_VS_PILLOW = "  p50 / Pillow"
DRAIN_RATE = "backlog drain, 2 workers (jobs/s)"
DRAIN_VS_PILLOW = "  jobs/s / Pillow core img/s"
DRAIN_DONE = "  jobs Completed"
WORKER_PEAK = "photo worker peak RSS (MB)"
BARE_RATE = "bare aiohttp base64 ingest (req/s)"
BARE_P99 = "bare aiohttp p99 (ms)"
BASE64_RATE = "ingest base64 (req/s)"
BASE64_P99 = "ingest base64 p99 (ms)"
BINARY_RATE = "ingest binary (req/s)"
BASE64_VS_BARE = "  base64 / bare"
BINARY_VS_BASE64 = "  binary / base64"
P99_VS_BARE = "  base64 p99 / bare p99"


@dataclass(frozen=True)
class Target:
    """A bound the 'now' figure must meet: at least (>=) or at most (<=) `bound`."""

    at_least: bool
    bound: float

    def text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"

    def met_by(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound


@dataclass(frozen=True)
class Figure:
    name: str
    digits: int = 1
    target: Target | None = None
    shared: bool = False  # a baseline measured once per round for both sides: no ratio


@dataclass(frozen=True)
class Plan:
    latency_runs: int
    jobs: int
    ingest_seconds: int
    pillow_runs: int

    @classmethod
    def choose(cls, quick: bool) -> Plan:
        return cls(5, 30, 3, 5) if quick else cls(20, 100, 8, 15)


Values = dict[str, float | None]  # figure name -> value (None: not measured)
Round = dict[str, Values]  # side -> its figures


def figures(jobs: int) -> list[Figure]:
    return [
        Figure(PILLOW_MS, shared=True),
        Figure(P50_MS), Figure(P90_MS), Figure(P50_VS_PILLOW, 2, Target(False, 1.5)),
        Figure(DRAIN_RATE, 2), Figure(DRAIN_VS_PILLOW, 2, Target(True, 1.7)),
        Figure(DRAIN_DONE, 0, Target(True, jobs)),
        Figure(WORKER_PEAK, 1, Target(False, 64)),
        Figure(BARE_RATE, 0, shared=True), Figure(BARE_P99, 1, shared=True),
        Figure(BASE64_RATE, 0), Figure(BASE64_P99), Figure(BINARY_RATE, 0),
        Figure(BASE64_VS_BARE, 2, Target(True, 0.9)),
        Figure(BINARY_VS_BASE64, 2, Target(True, 1.3)),
        Figure(P99_VS_BARE, 2, Target(False, 1.5)),
    ]


# -- the table (pure) ----------------------------------------------------------------------------
def quotient(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0 or math.isnan(denominator):
        return None
    return numerator / denominator


def median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def medians(rounds: list[Round]) -> Round:
    """Each side's figures as the median over the rounds (of the rounds that measured them)."""
    names = {name for one in rounds for values in one.values() for name in values}
    return {side: {name: median([one.get(side, {}).get(name) for one in rounds]) for name in names}
            for side in SIDES}


def shown(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table_rows(spec: list[Figure], summary: Round, with_targets: bool) -> list[list[str]]:
    """figure | before | now | now/before [| target | met]: the target is checked on 'now'."""
    rows = []
    for figure in spec:
        before, now = summary["before"].get(figure.name), summary["now"].get(figure.name)
        ratio = "" if figure.shared else shown(quotient(now, before), 2)
        row = [figure.name, shown(before, figure.digits), shown(now, figure.digits), ratio]
        if with_targets:
            target = figure.target
            row += ["", ""] if target is None else [
                target.text(), "n/a" if now is None else met(target.met_by(now))]
        rows.append(row)
    return rows


# -- the checkouts -------------------------------------------------------------------------------
def git(*args: str | Path, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def checkout_dir(rev: str) -> Path:
    return BEFORE_DIR / re.sub(r"[^A-Za-z0-9._-]", "_", rev)


def check_out(rev: str) -> Path:
    """A detached worktree of `rev` under var/bench-before/ (reused, moved to `rev`, when there)."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = checkout_dir(rev)
    if (path / ".git").exists():
        if git("rev-parse", "HEAD", cwd=path) != commit:
            git("checkout", "--quiet", "--detach", commit, cwd=path)
        return path
    BEFORE_DIR.mkdir(parents=True, exist_ok=True)
    # --force: also when an interrupted run registered this path and its folder is gone since.
    git("worktree", "add", "--quiet", "--force", "--detach", path, commit)
    return path


def remove_checkout(path: Path) -> None:
    try:
        git("worktree", "remove", "--force", path)
    except subprocess.CalledProcessError as exc:
        print(f"warning: could not remove the worktree {path}: {exc.stderr.strip()}", file=sys.stderr)


def installed_python(checkout: Path) -> str:
    """The interpreter of a small venv under the checkout with it installed (editable).

    The venv links this interpreter's site-packages with a .pth line, so every dependency is
    shared; the .pth files inside a linked folder are not run, so this checkout's own editable
    install does not leak into the other one.
    """
    venv = checkout / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if stamp.exists():
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    shared = dict.fromkeys(linked_site_dirs([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    (Path(venv_site) / "bench-shared-site.pth").write_text("".join(f"{path}\n" for path in shared))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", checkout], check=True)
    stamp.touch()
    return str(python)


def linked_site_dirs(sites: list[str]) -> list[str]:
    """The site folders and the folders their .pth files name (a venv whose dependencies come from
    another venv through a .pth line, as a helper worktree's does); never the editable install's
    import hooks, so this checkout's code stays out of the other one."""
    found = list(sites)
    for site in sites:
        for pth in sorted(Path(site).glob("*.pth")):
            for line in pth.read_text().splitlines():
                entry = line.strip()
                if entry and not entry.startswith(("#", "import")) and Path(entry).is_dir() and entry not in found:
                    found.append(entry)
    return found


def before_launcher(checkout: Path) -> Launcher:
    launcher = detect_launcher(checkout)
    return replace(launcher, python=installed_python(checkout)) if launcher.installed else launcher


# -- the measurements ----------------------------------------------------------------------------
def unique_base64(jpeg: bytes) -> bytes:
    return base64.b64encode(distinct_jpeg(jpeg, next(UNIQUE)))


def pillow_ms(path: Path, runs: int) -> float:
    """Median ms of Pillow's draft + thumbnail + save of the photo, here (one core), after a warm-up."""
    pillow_thumbnail(path)
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        pillow_thumbnail(path)
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def latency(launcher: Launcher, jpeg: bytes, plan: Plan) -> Values:
    with BenchService("distributed", workers=PHOTO_WORKERS, launcher=launcher) as service:
        session = requests.Session()
        spent = []
        for index in range(WARM_UP_RUNS + plan.latency_runs):
            seconds = post_to_completed(service, session, unique_base64(jpeg), "image/jpeg", JOB_PATIENCE)
            if index >= WARM_UP_RUNS:
                spent.append(seconds * 1000)
    return {P50_MS: percentile(spent, 0.5), P90_MS: percentile(spent, 0.9)}


def backlog(launcher: Launcher, jpeg: bytes, plan: Plan) -> Values:
    """Jobs queued (server alone), then the workers started; timed from the first completion to the
    last, so the workers' start is not counted."""
    with BenchService("distributed", workers=None, launcher=launcher) as service:
        session = requests.Session()
        ids = post_all(service, plan.jobs, lambda _index: (unique_base64(jpeg), "image/jpeg"))
        service.start_workers(PHOTO_WORKERS)
        drain(service, session, ids, time.perf_counter(), DRAIN_PATIENCE)
        done = completed_items(service, session, ids)
        peak = max((vm_hwm_mb(pid) for pid in service.worker_pids()), default=None)
    stamps = sorted(datetime.fromisoformat(item["updated_at"]).timestamp() for item in done)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else None
    return {DRAIN_RATE: rate, DRAIN_DONE: float(len(done)), WORKER_PEAK: peak}


def wrk_figures(label: str, url: str, body: WrkBody, plan: Plan, workdir: Path) -> tuple[float | None, float | None]:
    """(req/s, p99 ms) of one wrk run, or Nones when it measured failures rather than ingest."""
    figures = finish_wrk(start_wrk(url, body, connections=CONNECTIONS, duration=plan.ingest_seconds,
                                   workdir=workdir), plan.ingest_seconds)
    if figures.error or figures.failures > MAX_FAILED_SHARE * max(1, figures.requests):
        print(f"  {label}: not counted ({figures.failures}/{figures.requests} failed) {figures.error}".rstrip(),
              flush=True)
        return None, None
    return figures.rate, figures.p99_ms


def ingest(launcher: Launcher, bodies: dict[str, WrkBody], plan: Plan, workdir: Path) -> Values:
    with BenchService("distributed", workers=None, launcher=launcher) as service:
        rate, p99 = wrk_figures("base64", f"{service.url}/images", bodies["base64"], plan, workdir)
        binary, _ = wrk_figures("binary", f"{service.url}/images?encoding=binary", bodies["binary"], plan, workdir)
    return {BASE64_RATE: rate, BASE64_P99: p99, BINARY_RATE: binary}


def bare_ingest(bodies: dict[str, WrkBody], plan: Plan, workdir: Path) -> Values:
    """The same wrk load on bench.bare_ingest (its own port and folder, removed afterwards)."""
    with bare_handler(workdir, READY_PATIENCE) as (url, _pid):
        rate, p99 = wrk_figures("bare", f"{url}/images", bodies["base64"], plan, workdir)
    return {BARE_RATE: rate, BARE_P99: p99}


def attempt(label: str, measure: Callable[[], Values]) -> Values:
    """A measurement's figures; one that fails is reported and left out (n/a), the rest go on."""
    started = time.perf_counter()
    try:
        values = measure()
    except (RuntimeError, OSError, ValueError, KeyError, requests.RequestException) as exc:
        print(f"  {label}: failed: {exc}", flush=True)
        return {}
    print(f"  {label} ({time.perf_counter() - started:.0f}s): "
          + ", ".join(f"{name.strip()} {shown(value, 1)}" for name, value in values.items()), flush=True)
    return values


def derive(values: Values, shared: Values) -> Values:
    """The ratios of a side's figures to the round's baselines and to each other."""
    pillow_rate = quotient(1000.0, shared.get(PILLOW_MS))
    return {
        P50_VS_PILLOW: quotient(values.get(P50_MS), shared.get(PILLOW_MS)),
        DRAIN_VS_PILLOW: quotient(values.get(DRAIN_RATE), pillow_rate),
        BASE64_VS_BARE: quotient(values.get(BASE64_RATE), shared.get(BARE_RATE)),
        BINARY_VS_BASE64: quotient(values.get(BINARY_RATE), values.get(BASE64_RATE)),
        P99_VS_BARE: quotient(values.get(BASE64_P99), shared.get(BARE_P99)),
    }


def one_round(launchers: dict[str, Launcher], photo: Path, plan: Plan, workdir: Path) -> Round:
    jpeg = photo.read_bytes()
    bodies = {form: wrk_body(photo_payload(), form) for form in ("base64", "binary")}
    shared: Values = {PILLOW_MS: pillow_ms(photo, plan.pillow_runs)}
    values: Round = {side: {} for side in SIDES}
    for side in SIDES:
        values[side] |= attempt(f"{side}: latency", lambda side=side: latency(launchers[side], jpeg, plan))
    for side in SIDES:
        values[side] |= attempt(f"{side}: backlog", lambda side=side: backlog(launchers[side], jpeg, plan))
    shared |= attempt("bare ingest", lambda: bare_ingest(bodies, plan, workdir / "bare-wrk"))
    for side in SIDES:
        values[side] |= attempt(f"{side}: ingest",
                                lambda side=side: ingest(launchers[side], bodies, plan, workdir / side))
    return {side: shared | values[side] | derive(values[side], shared) for side in SIDES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the older revision (anything `git rev-parse` takes)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter loads: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep var/bench-before/<rev> (and its venv) afterwards")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `bash scripts/install-system.sh bench` installs it")
    on_sigterm_raise()
    begun = time.perf_counter()
    plan = Plan.choose(args.quick)
    spec = figures(plan.jobs)
    checkout = check_out(args.before)
    workdir = Path(tempfile.mkdtemp(prefix="thumbnailify-compare-"))
    try:
        launchers = {"before": before_launcher(checkout), "now": detect_launcher(ROOT)}
        photo = next(item.path for item in make_corpus(1, 0) if item.media_type == "image/jpeg")
        names = {side: git("describe", "--always", "--dirty", cwd=launchers[side].root) for side in SIDES}
        busy = wait_for_quiet(max_wait=10)
        load = ForeignLoad()
        print(f"before {names['before']} ({launchers['before'].launch}), now {names['now']} "
              f"({launchers['now'].launch}); {photo.name}; machine CPU busy before start: {busy:.0f}%", flush=True)
        rounds: list[Round] = []
        for index in range(args.rounds):
            print(f"round {index + 1} of {args.rounds}", flush=True)
            rounds.append(one_round(launchers, photo, plan, workdir))
            print_table(["figure", "before", "now", "now/before"], table_rows(spec, rounds[-1], with_targets=False),
                        title=f"round {index + 1}")
        print_table(["figure", f"before {names['before']}", f"now {names['now']}", "ratio (now/before)",
                     "target (now)", "met"], table_rows(spec, medians(rounds), with_targets=True),
                    title=f"bench.compare: medians of {args.rounds} round(s) ({time.perf_counter() - begun:.0f}s)")
        print(load.summary())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            remove_checkout(checkout)
    return 0


if __name__ == "__main__":
    run_script(main)
