"""What a process loads at start: each module it does not need costs every start CPU and memory
(a server starts far more often than it answers a similar query, and never decodes)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness import ROOT

HEAVY = {"numpy", "wand", "av", "PIL", "pillow_heif"}


def heavy_modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout)) & HEAVY


def test_the_server_loads_no_decoder_and_no_numpy() -> None:
    assert heavy_modules_loaded_by("thumbnailify.server.app") == set()
