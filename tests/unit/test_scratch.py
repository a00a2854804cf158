"""Workers' ImageMagick scratch folders: a worker starting while another sweeps the same base (it
ended with FileNotFoundError and a restart when both swept one ended worker's folder)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from thumbnailify.worker import scratch
from thumbnailify.worker.scratch import PREFIX, ScratchDir


def ended_worker_folder(base: Path) -> Path:
    folder = base / f"{PREFIX}ended"
    (folder / "nested").mkdir(parents=True)
    (folder / "magick-1").write_bytes(b"x" * 1000)
    (folder / "nested" / "magick-2").write_bytes(b"y" * 24)
    return folder


def test_a_sweep_holds_an_ended_workers_folder_until_it_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So a second worker sweeping at the same moment skips it instead of walking what is removed."""
    ended = ended_worker_folder(tmp_path)
    remove = scratch.shutil.rmtree
    held_while_removed = []

    def watched_rmtree(path: Path, ignore_errors: bool = False) -> None:
        other = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held_while_removed.append(False)
        except BlockingIOError:
            held_while_removed.append(True)
        finally:
            os.close(other)
        remove(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(scratch.shutil, "rmtree", watched_rmtree)
    assert ScratchDir(tmp_path).sweep() == 1024
    assert held_while_removed == [True]
    assert not ended.exists()


def test_files_removed_while_a_folder_is_sized_count_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = ended_worker_folder(tmp_path)
    walk: Callable[..., Iterator[tuple[str, list[str], list[str]]]] = os.walk

    def walk_then_remove(top: str | Path) -> Iterator[tuple[str, list[str], list[str]]]:
        for root, folders, files in walk(top):
            for name in files:
                if name == "magick-1":
                    os.unlink(os.path.join(root, name))  # another sweep got there first
            yield root, folders, files

    monkeypatch.setattr(scratch.os, "walk", walk_then_remove)
    assert scratch._size(ended) == 24


def test_a_live_workers_folder_is_kept(tmp_path: Path) -> None:
    live = tmp_path / f"{PREFIX}live"
    live.mkdir()
    (live / "magick-3").write_bytes(b"z" * 7)
    lock = os.open(live, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert ScratchDir(tmp_path).sweep() == 0
        assert (live / "magick-3").exists()
    finally:
        os.close(lock)
