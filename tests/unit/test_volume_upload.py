"""The volume's upload from the server's side: bytes whole under the final name, written a batch
per call to the volume's writer threads (a large upload arrives in many small socket chunks),
nothing left behind by a discarded one."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from thumbnailify.backends.filesystem import aio
from thumbnailify.backends.filesystem.aio import FilesystemFiles, Upload
from thumbnailify.backends.filesystem.volume import Volume
from thumbnailify.media import new_media_id
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import load_settings

CHUNK = 16 * 1024  # what the server's socket reads hand the upload chain


@pytest.fixture
def writer() -> Iterator[Executor]:
    with ThreadPoolExecutor(1) as executor:
        yield executor


def count_thread_calls(monkeypatch: pytest.MonkeyPatch, writer: Executor) -> list[Callable[..., Any]]:
    calls: list[Callable[..., Any]] = []
    real = writer.submit

    def counted(func: Callable[..., Any], *args: Any) -> Any:
        calls.append(func)
        return real(func, *args)

    monkeypatch.setattr(writer, "submit", counted)
    return calls


async def write_in_chunks(upload: Upload, data: bytes) -> None:
    for start in range(0, len(data), CHUNK):
        await upload.write(data[start:start + CHUNK])


async def test_a_large_upload_is_written_whole_a_batch_per_thread_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Executor
) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    media_id = new_media_id()
    data = os.urandom(3_000_000)
    calls = count_thread_calls(monkeypatch, writer)
    upload = Upload(volume, media_id, writer)
    await write_in_chunks(upload, data)
    assert not volume.raw_path(media_id).exists()  # nothing under the final name before commit
    await upload.commit()
    assert volume.raw_path(media_id).read_bytes() == data
    assert len(calls) <= len(data) // Upload.BUFFER_BYTES + 1  # one call per chunk was ~180
    assert [path.name for path in volume.raw_dir.iterdir()] == [volume.raw_path(media_id).name]


async def test_a_small_upload_is_one_thread_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Executor
) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    media_id = new_media_id()
    data = os.urandom(100_000)
    calls = count_thread_calls(monkeypatch, writer)
    upload = Upload(volume, media_id, writer)
    await write_in_chunks(upload, data)
    await upload.commit()
    assert volume.raw_path(media_id).read_bytes() == data
    assert len(calls) == 1


async def test_a_discarded_upload_leaves_nothing(tmp_path: Path, writer: Executor) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    upload = Upload(volume, new_media_id(), writer)
    await write_in_chunks(upload, os.urandom(1_000_000))  # past the buffer: a temporary file exists
    assert list(volume.raw_dir.iterdir())
    await upload.discard()
    assert list(volume.raw_dir.iterdir()) == []


async def test_a_small_upload_that_cannot_be_renamed_leaves_no_temporary_file(tmp_path: Path, writer: Executor) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    media_id = new_media_id()
    volume.raw_path(media_id).mkdir()  # the rename into place fails: a folder holds the final name
    upload = Upload(volume, media_id, writer)
    await write_in_chunks(upload, os.urandom(100_000))
    with pytest.raises(BackendUnavailable):
        await upload.commit()
    assert [path.name for path in volume.raw_dir.iterdir()] == [media_id]  # only the folder put there


async def test_a_small_upload_is_written_with_the_usual_permissions(tmp_path: Path, writer: Executor) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    media_id = new_media_id()
    upload = Upload(volume, media_id, writer)
    await write_in_chunks(upload, b"x" * 1000)
    await upload.commit()
    umask = os.umask(0)
    os.umask(umask)
    assert volume.raw_path(media_id).stat().st_mode & 0o777 == 0o666 & ~umask


def test_temporary_names_never_repeat_and_are_swept_as_temporary(tmp_path: Path) -> None:
    volume = Volume(tmp_path)
    volume.prepare()
    final = volume.raw_path(new_media_id())
    names = [Volume.temp_path(final) for _ in range(1000)]
    assert len(set(names)) == len(names)
    for name in names[:3]:
        name.write_bytes(b"x")
    assert sorted(item.kind for item in volume.scan()) == ["temp"] * 3


async def test_the_volumes_uploads_are_written_by_its_own_few_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating and renaming files locks their folder: many threads doing it at once spin on the lock."""
    threads: set[str] = set()
    real = aio._write_and_rename

    def noted(*args: Any) -> None:
        threads.add(threading.current_thread().name)
        real(*args)

    monkeypatch.setattr(aio, "_write_and_rename", noted)
    files = FilesystemFiles(load_settings({"THUMBNAILIFY_FILES_ROOT": str(tmp_path / "media")}))
    await files.open()
    uploads = {new_media_id(): os.urandom(50_000) for _ in range(20)}

    async def send(media_id: str, data: bytes) -> None:
        upload = files.upload(media_id)
        await write_in_chunks(upload, data)
        await upload.commit()

    try:
        await asyncio.gather(*(send(media_id, data) for media_id, data in uploads.items()))
    finally:
        await files.close()
    assert threads and len(threads) <= aio.WRITER_THREADS
    assert all(name.startswith("volume-writer") for name in threads)
    assert all(files.volume.raw_path(media_id).read_bytes() == data for media_id, data in uploads.items())


def slowed(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The writer function `name` of the volume takes 0.2 s before it runs."""
    real = getattr(aio, name)

    def slow(*args: Any) -> Any:
        time.sleep(0.2)
        return real(*args)

    monkeypatch.setattr(aio, name, slow)


@pytest.mark.parametrize(("data", "slow"), [(os.urandom(100_000), "_write_and_rename"),
                                            (os.urandom(1_000_000), "_append")])
async def test_a_cancelled_upload_is_discarded_whole_though_its_write_goes_on_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, slow: str
) -> None:
    """A request cancelled (the server stopping) while its file is being written: the write ends in
    its thread, on one of two, and the discard on the other must not remove the file before the write
    renames it into place (a small upload) or creates it (a large one's first batch)."""
    volume = Volume(tmp_path)
    volume.prepare()
    slowed(monkeypatch, slow)
    with ThreadPoolExecutor(2) as writer:
        upload = Upload(volume, new_media_id(), writer)

        async def send() -> None:
            await write_in_chunks(upload, data)
            await upload.commit()

        sending = asyncio.create_task(send())
        await asyncio.sleep(0.05)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await upload.discard()
    assert list(volume.raw_dir.iterdir()) == []


async def test_an_upload_discarded_after_the_volume_closed_leaves_nothing(tmp_path: Path) -> None:
    files = FilesystemFiles(load_settings({"THUMBNAILIFY_FILES_ROOT": str(tmp_path / "media")}))
    await files.open()
    upload = files.upload(new_media_id())
    await write_in_chunks(upload, os.urandom(300_000))  # past the buffer: a temporary file exists
    await files.close()
    await upload.discard()
    assert list(files.volume.raw_dir.iterdir()) == []
