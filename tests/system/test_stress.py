"""The locust file drives the real service without a single failed request (a short, bounded run)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, Service

pytestmark = pytest.mark.timeout(180)


@pytest.mark.long
def test_locust_thumbnail_flow_has_no_failures(tmp_path: Path) -> None:
    with Service("distributed", tmp_path, workers=2) as service:
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "stress/locustfile.py"), "ThumbnailUser",
             "--headless", "-u", "8", "-r", "8", "-t", "10s", "--host", service.url,
             "--csv", str(tmp_path / "run"), "--only-summary", "--stop-timeout", "10"],
            capture_output=True, text=True, timeout=120, check=False,
            env=os.environ,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "run_stats.csv").open())}
    flows = int(rows["upload -> thumbnail -> delete"]["Request Count"])
    print(f"\nlocust: {flows} flows, {rows['Aggregated']['Request Count']} requests, "
          f"{rows['Aggregated']['Failure Count']} failures")
    assert flows >= 8
    assert rows["Aggregated"]["Failure Count"] == "0"
