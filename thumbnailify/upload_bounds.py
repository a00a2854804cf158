"""The bounds on unfinished resumable uploads, which each store checks as it creates one: one
client's and every client's together. A finished, terminated or expired upload frees its place."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Full(enum.StrEnum):
    """Which bound refused a new upload."""

    CLIENT = "client"  # the uploading client's own
    TOTAL = "total"  # every client's together


@dataclass(frozen=True)
class UploadBounds:
    total: int
    per_client: int
