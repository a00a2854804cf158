#!/usr/bin/env python3
"""Every input of the photo and video corpus through the worker's handler, under the worker's own
memory limit: each input's peak RSS against worker.memory_limit.

    .venv/bin/python -m bench.memory [--limit 1GiB]

The cases of tests/corpus.py and tests/videos.py that reach a worker (those the server accepts)
are written to a folder; one process per kind of worker (photo, video) then sets itself up as
`python -m thumbnailify.worker` does (ImageMagick's limits, RLIMIT_DATA at worker.memory_limit), and for each
input resets its peak RSS (/proc/self/clear_refs), makes the thumbnails, and reports the outcome
and the peak (VmHWM). Ends with one table: input, expected, got, peak RSS, budget, met; it fails
when an input's outcome differs from the corpus's expectation (a legitimate input that no longer
fits) or its peak is over the budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.support import ROOT, met, on_sigterm_raise, print_table, run_script
from thumbnailify import media
from thumbnailify.settings import byte_size, load_settings

KINDS = ("image", "video")


def write_inputs(folder: Path) -> dict[str, list[dict[str, str]]]:
    """The corpus's inputs that reach a worker, as files, listed by kind of worker."""
    from tests.corpus import build_cases  # the corpus: in the parent only
    from tests.videos import video_cases

    listed: dict[str, list[dict[str, str]]] = {kind: [] for kind in KINDS}
    for case in build_cases() + video_cases():
        declared = media.parse_content_type(case.content_type)
        if case.body is None or case.expect_http != 202 or declared is None:
            continue
        path = folder / case.name
        path.write_bytes(case.body)
        kind = "video" if declared.name.startswith("video/") else "image"
        listed[kind].append({"name": case.name, "path": str(path), "type": declared.name, "want": case.expected()})
    return listed


def run_inputs(kind: str, limit: int, listing: Path) -> None:
    """In a process of its own: set up like a worker, then each input with its own peak RSS."""
    from thumbnailify.worker.handlers import ImageRejected, load_handler  # a child imports what a worker does
    from thumbnailify.worker.handlers.image import apply_limits
    from thumbnailify.worker.memory import limit_memory

    settings = load_settings()
    apply_limits(settings.limits)
    limit_memory(limit)
    handler = load_handler(kind, settings)
    for item in json.loads(listing.read_text()):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
        started = time.process_time()
        try:
            handler.make(Path(item["path"]), media.BY_NAME[item["type"]])
            got = "Completed"
        except ImageRejected as exc:
            got = f"Error {exc.code}"
        except MemoryError:
            got = "MemoryError"
        print(json.dumps({"name": item["name"], "got": got, "peak_mb": _vm_hwm_mb(),
                          "cpu_s": time.process_time() - started}), flush=True)


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure(kind: str, items: list[dict[str, str]], limit: int, folder: Path) -> dict[str, dict]:
    listing = folder / f"{kind}.json"
    listing.write_text(json.dumps(items))
    child = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", kind, "--limit", str(limit), "--listing", str(listing)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    found = {}
    for line in child.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            found[report["name"]] = report
    if child.returncode:
        print(f"the {kind} process ended with {child.returncode}:\n{child.stderr[-2000:]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", help="worker.memory_limit to run under (default: the configured one)")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--listing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit = byte_size(args.limit) if args.limit else load_settings().worker.memory_limit
    if args.child:
        run_inputs(args.child, limit, args.listing)
        return 0
    on_sigterm_raise()
    budget_mb = limit / (1 << 20) if limit else float("inf")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        listed = write_inputs(folder)
        for kind, items in listed.items():
            found = measure(kind, items, limit, folder)
            for item in items:
                report = found.get(item["name"], {"got": "(process ended)", "peak_mb": float("nan"), "cpu_s": 0.0})
                ok = report["got"] == item["want"] and report["peak_mb"] <= budget_mb
                rows.append([f"{kind}: {item['name']}", item["want"], report["got"], f"{report['peak_mb']:.0f} MB",
                             f"{report['cpu_s']:.2f} s", met(ok)])
    peak = max((float(row[3].split()[0]) for row in rows if row[3] != "nan MB"), default=0.0)
    print_table(["input", "expected", "got", "peak RSS", "CPU", "met"], rows,
                title=f"bench.memory: {len(rows)} inputs, worker.memory_limit {budget_mb:.0f} MiB; "
                      f"highest peak RSS {peak:.0f} MB")
    return 0 if all(row[5] != "NO" for row in rows) else 1


if __name__ == "__main__":
    run_script(main)
