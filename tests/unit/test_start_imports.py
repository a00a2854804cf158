"""What a process loads at start: each module it does not need costs every start CPU and memory
(a server starts far more often than it answers a similar query, and never decodes; a webhook
worker never makes a thumbnail)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.harness import ROOT
from thumbnailify.worker.backends import TABLE as WORKER_TABLE

HEAVY = {"numpy", "wand", "av", "PIL", "pillow_heif"}


def heavy_modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout)) & HEAVY


def test_the_server_loads_no_decoder_and_no_numpy() -> None:
    assert heavy_modules_loaded_by("thumbnailify.server.app") == set()


def test_a_worker_loads_the_decoders_only_for_media_jobs_and_never_numpy() -> None:
    """A webhook worker runs `thumbnailify.worker` and never builds the media runner; the
    fingerprints are plain Python (numpy would add 13 MB to every photo and video worker)."""
    assert heavy_modules_loaded_by("thumbnailify.worker.__main__") == set()
    assert heavy_modules_loaded_by("thumbnailify.worker.jobs") == set()
    assert heavy_modules_loaded_by("thumbnailify.worker.handlers.image") == {"wand"}
    assert "numpy" not in heavy_modules_loaded_by("thumbnailify.worker.handlers.video")


def test_the_workers_backends_load_none_of_the_servers_side() -> None:
    """Each backend a worker can be configured with imports its blocking side alone: the server's
    side (aiohttp's errors, the asyncio clients built on them) would only add to every worker."""
    modules = sorted({path.partition(":")[0] for table in WORKER_TABLE.values() for path in table.values()})
    code = (f"import json, sys\nfor name in {modules!r}: __import__(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    assert [name for name in loaded if name.startswith("thumbnailify.server")] == []
    assert [name for name in loaded if re.fullmatch(r"thumbnailify\.backends\..*\.aio(_\w+)?", name)] == []


def test_wand_finds_imagemagick_without_searching() -> None:
    """Each name Wand looks for and misses runs ldconfig, gcc and ld (0.2 s at every worker start)."""
    code = ("import ctypes.util, os; found = ctypes.util.find_library; asked = []\n"
            "ctypes.util.find_library = lambda name: asked.append(name) or found(name)\n"
            "import thumbnailify.worker, wand.api; print(sum(name.startswith('Magick') for name in asked))")
    env = {key: value for key, value in os.environ.items() if key != "WAND_MAGICK_LIBRARY_SUFFIX"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(done.stdout) == 2, done.stdout  # MagickCore and MagickWand, each found at once
