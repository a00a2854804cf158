"""Uploading many files at once: which files, each one's way to a thumbnail on disk, the results."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thumbnailify.client import media
from thumbnailify.client.session import ApiError, Client


@dataclass(frozen=True)
class Source:
    path: Path
    out_stem: Path  # where its thumbnail goes under --out, without the extension


@dataclass(frozen=True)
class Result:
    path: Path
    state: str  # the media's final state, or "Failed" when it never got one
    message: str
    media_id: str = ""
    written: Path | None = None

    @property
    def ok(self) -> bool:
        return self.state == "Completed"


class Reporter(Protocol):
    def started(self, source: Source) -> None: ...
    def sent(self, source: Source, done: int, total: int) -> None: ...
    def processing(self, source: Source, media_id: str) -> None: ...
    def finished(self, source: Source, result: Result) -> None: ...


def _walk(folder: Path) -> Iterable[Path]:
    """Accepted files under a folder, in a stable order; hidden files and folders are left out."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            if not name.startswith(".") and media.accepted(path):
                yield path


def collect(paths: Iterable[Path]) -> tuple[list[Source], list[Result]]:
    """The files to upload (folders walked, a file named on the command line always tried), and a
    failed result for each path that does not exist."""
    sources: list[Source] = []
    missing: list[Result] = []
    for given in paths:
        if given.is_dir():
            sources += [Source(path, path.relative_to(given).with_suffix("")) for path in _walk(given)]
        elif given.is_file():
            sources.append(Source(given, Path(given.stem)))
        else:
            missing.append(Result(given, "Failed", "no such file or folder"))
    return sources, missing


class ThumbnailWriter:
    """Writes thumbnails under one folder as <stem>.<ext>; a name already written in this run gets
    "-2", "-3" ... (two photos of the same name in different folders given on the command line)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._taken: set[Path] = set()
        self._lock = threading.Lock()

    def write(self, stem: Path, extension: str, data: bytes) -> Path:
        with self._lock:
            target = self.folder / f"{stem}.{extension}"
            count = 1
            while target in self._taken:
                count += 1
                target = self.folder / f"{stem}-{count}.{extension}"
            self._taken.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        partial.write_bytes(data)
        partial.replace(target)  # never a half-written thumbnail under its real name
        return target


@dataclass
class Batch:
    client: Client
    reporter: Reporter
    writer: ThumbnailWriter | None = None
    size: str | None = None
    timeout: float = 600.0

    def one(self, source: Source) -> Result:
        self.reporter.started(source)
        media_id = ""
        try:
            accepted = self.client.upload(
                source.path, progress=lambda done, total: self.reporter.sent(source, done, total))
            media_id = accepted["media_id"]
            self.reporter.processing(source, media_id)
            final = self.client.wait(media_id, self.timeout)
            written = None
            if final["state"] == "Completed" and self.writer is not None:
                data, content_type = self.client.thumbnail(media_id, self.size)
                written = self.writer.write(source.out_stem, media.thumbnail_extension(content_type), data)
            result = Result(source.path, final["state"], final.get("message", ""), media_id, written)
        except ApiError as exc:
            result = Result(source.path, "Failed", str(exc), media_id)
        except OSError as exc:
            result = Result(source.path, "Failed", f"{exc.strerror or exc}: {exc.filename or source.path}", media_id)
        self.reporter.finished(source, result)
        return result

    def run(self, sources: list[Source], jobs: int) -> list[Result]:
        """Each file's result, in the order given; `jobs` files are on their way at once."""
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="upload")
        try:
            return list(pool.map(self.one, sources))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # all done, or interrupted: nothing more starts
