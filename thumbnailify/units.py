"""Quantities in the words people read, the same from the server, the page's messages and the CLI.

No dependencies beyond the standard library: the `[client]` extra imports it too.
"""

from __future__ import annotations


def size_text(count: float) -> str:
    """A byte count as people read it: "20 MB", "1.5 KB" (powers of 1024, as file managers show)."""
    if count < 1024:
        return f"{count:.0f} bytes"
    value = count / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable: GB ends the loop")
