"""Every bench script still imports: they lean on the service's and the tests' modules, which move."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("name", sorted(path.stem for path in BENCH.glob("*.py") if path.stem != "__init__"))
def test_the_bench_script_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
