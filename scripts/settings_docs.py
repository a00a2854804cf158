"""Write config/config.yaml and the settings table of docs/configuration.md from the settings' definitions.

Each key's type, default and description live once, in `thumbnailify/settings.py`; this writes the docs
from there, so they cannot drift (tests/unit/test_config.py runs the check).

    python -m scripts.settings_docs          # rewrite both files
    python -m scripts.settings_docs --check  # only compare: exit 1 and name the stale files
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import yaml
from pydantic.fields import FieldInfo

from thumbnailify.settings import DEFAULT_CONFIG_FILE, PROJECT_ROOT, Section, group_model, keys, sections

CONFIGURATION_DOC = PROJECT_ROOT / "docs" / "configuration.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
COMMENT_WIDTH = 100
CONFIG_HEADER = """\
# Thumbnailify configuration, read by the server and every worker.
# Every value can be overridden from the environment as THUMBNAILIFY_<SECTION>_<KEY>,
# e.g. THUMBNAILIFY_BACKENDS_STORE=redis or THUMBNAILIFY_AUTH_API_KEY=secret.
# THUMBNAILIFY_CONFIG=/path/to/other.yaml reads another file instead of this one.
# Relative paths are taken from the project root.
#
# This file states every default. It is written from thumbnailify/settings.py (python -m scripts.settings_docs):
# change a default or a description there, not here.
"""


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), COMMENT_WIDTH, initial_indent=f"{indent}# ",
                         subsequent_indent=f"{indent}# ", break_on_hyphens=False)


def _yaml_entry(key: str, field: FieldInfo) -> str:
    return yaml.safe_dump({key: field.default}, sort_keys=False, width=1000, allow_unicode=True).strip()


def _yaml_keys(model: type[Section], indent: str) -> list[str]:
    """A section's (or a group's) keys with their defaults, each described in a comment."""
    lines: list[str] = []
    for key, field in model.model_fields.items():
        lines += _comment(field.description or "", indent)
        group = group_model(field)
        lines += [f"{indent}{key}:", *_yaml_keys(group, indent + "  ")] if group else [
            f"{indent}{_yaml_entry(key, field)}"]
    return lines


def config_yaml() -> str:
    """The YAML file: every section and key with its default, each described in a comment."""
    lines = [CONFIG_HEADER.rstrip("\n")]
    for name, model in sections().items():
        lines += ["", *_comment(model.__doc__ or "", ""), f"{name}:", *_yaml_keys(model, "  ")]
    return "\n".join(lines) + "\n"


def _shown_default(value: object) -> str:
    return "empty" if value == "" else f"`{value}`"


def settings_table() -> str:
    """The settings table of docs/configuration.md, one row per key."""
    rows = ["| Key | Default | Meaning |", "| --- | --- | --- |"]
    for name, model in sections().items():
        for key, field in keys(model).items():
            meaning = " ".join((field.description or "").split()).replace("|", "\\|")
            rows.append(f"| `{name}.{key}` | {_shown_default(field.default)} | {meaning} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """The document with the text between the table's markers replaced by the current table."""
    before, start, rest = document.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{CONFIGURATION_DOC}: the markers {TABLE_START} and {TABLE_END} are missing")
    return f"{before}{TABLE_START}\n{settings_table()}\n{TABLE_END}{after}"


def documents() -> dict[Path, str]:
    """Each generated file and the text it should hold."""
    return {DEFAULT_CONFIG_FILE: config_yaml(), CONFIGURATION_DOC: with_table(CONFIGURATION_DOC.read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = [path for path, text in documents().items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(PROJECT_ROOT)} is out of date: run python -m scripts.settings_docs",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(documents()[path])
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
