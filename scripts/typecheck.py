"""Run mypy (strict, configured in pyproject.toml's [tool.mypy]) on the installed package's source.

The package is one namespace, `thumbnailify`, but its source is four folders: setuptools maps server/,
worker/ and client/ into it (package-dir), and the editable install resolves them with an import hook
that mypy cannot follow. So this lays the namespace out as mypy expects it, a folder of links in
var/typecheck/ (rebuilt each run, so new files are seen), runs mypy on it, and prints the messages with
the repository's own paths.

    python -m scripts.typecheck            # what `make lint` runs; extra arguments go to mypy
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "var" / "typecheck"
PACKAGE = TREE / "thumbnailify"
# The folders setuptools maps into the namespace, as in pyproject.toml's [tool.setuptools.package-dir].
MAPPED = ("server", "worker", "client")


def lay_out_tree() -> None:
    """thumbnailify/ linked entry by entry, and the mapped folders linked in beside them."""
    shutil.rmtree(TREE, ignore_errors=True)
    PACKAGE.mkdir(parents=True)
    for entry in (ROOT / "thumbnailify").iterdir():
        if entry.name != "__pycache__":
            (PACKAGE / entry.name).symlink_to(entry)
    for name in MAPPED:
        (PACKAGE / name).symlink_to(ROOT / name)


def repo_paths(text: str) -> str:
    """Messages name var/typecheck/thumbnailify/server/app.py: give them as server/app.py."""
    prefix = f"{PACKAGE.relative_to(ROOT)}/"
    for name in MAPPED:
        text = text.replace(f"{prefix}{name}/", f"{name}/")
    return text.replace(prefix, "thumbnailify/")


def main(argv: list[str]) -> int:
    lay_out_tree()
    out, err, status = api.run(argv)
    sys.stdout.write(repo_paths(out))
    sys.stderr.write(repo_paths(err))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
