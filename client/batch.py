"""Uploading many files at once: which files, each one's way to a thumbnail on disk, the results."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thumbnailify.client import media, resumable
from thumbnailify.client.interrupts import threads_leave_interrupts_to_main
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
    existing: bool = False  # already on the server (the same bytes): nothing was sent

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
    """The files to upload (folders walked), and a failed result for each path that does not exist
    or, named on the command line, is not of a type the service takes (never sent)."""
    sources: list[Source] = []
    refused: list[Result] = []
    for given in paths:
        if given.is_dir():
            sources += [Source(path, path.relative_to(given).with_suffix("")) for path in _walk(given)]
        elif not given.is_file():
            refused.append(Result(given, "Failed", "no such file or folder"))
        elif not media.accepted(given):
            kind = f"a {given.suffix.lower()} file" if given.suffix else "a file without an extension"
            refused.append(Result(given, "Failed", f"not sent: {kind} isn't a photo or video this service takes "
                                                   f"({' '.join(media.BY_EXTENSION)})"))
        else:
            sources.append(Source(given, Path(given.stem)))
    return sources, refused


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
    skip_existing: bool = True
    chunk_bytes: int = resumable.DEFAULT_CHUNK_BYTES  # files larger go by tus, in PATCHes of this size
    unfinished: resumable.UnfinishedUploads | None = None  # where tus uploads are noted, to be continued

    def _send(self, source: Source) -> str:
        def sent(done: int, total: int) -> None:
            self.reporter.sent(source, done, total)
        if source.path.stat().st_size <= self.chunk_bytes:
            return str(self.client.upload(source.path, progress=sent)["media_id"])
        return resumable.send(self.client, source.path, media.media_type(source.path), chunk_bytes=self.chunk_bytes,
                              unfinished=self.unfinished, progress=sent)

    def _existing(self, source: Source) -> str | None:
        """The id of an item on the server with this file's bytes that is or will be Completed."""
        for item in self.client.copies(file_sha256(source.path)):
            if item["state"] in ("Completed", "Processing"):
                return str(item["media_id"])
        return None

    def one(self, source: Source) -> Result:
        self.reporter.started(source)
        media_id = ""
        try:
            existing = self._existing(source) if self.skip_existing else None
            media_id = self._send(source) if existing is None else existing
            self.reporter.processing(source, media_id)
            final = self.client.wait(media_id, self.timeout)
            written = None
            if final["state"] == "Completed" and self.writer is not None:
                data, content_type = self.client.thumbnail(media_id, self.size)
                written = self.writer.write(source.out_stem, media.thumbnail_extension(content_type), data)
            message = final.get("message", "")
            if existing and final["state"] == "Completed":
                message = "already on the server: not sent again"
            result = Result(source.path, final["state"], message, media_id, written, existing is not None)
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
            with threads_leave_interrupts_to_main():
                results = pool.map(self.one, sources)  # submits every file: the threads start here
            return list(results)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # all done, or interrupted: nothing more starts
