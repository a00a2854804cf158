"""Every class the loader's tables name is held to its protocol by mypy in thumbnailify/backends/conformance.py."""

from __future__ import annotations

import ast
from pathlib import Path

from thumbnailify.backends import conformance
from thumbnailify.server.backends import TABLE as SERVER_TABLE
from thumbnailify.worker.backends import TABLE as WORKER_TABLE
from thumbnailify.worker.handlers import HANDLERS


def _checked_classes() -> set[str]:
    """module:Class of each import in the conformance module."""
    tree = ast.parse(Path(conformance.__file__).read_text())
    return {f"{node.module}:{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_every_backend_in_the_tables_is_checked_against_its_protocol():
    named = {target for table in (SERVER_TABLE, WORKER_TABLE, HANDLERS) for kind in table.values()
             for target in kind.values()}
    assert named - _checked_classes() == set()
