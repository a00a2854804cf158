"""Ctrl-C is the main thread's: the CLI's own threads block SIGINT, so the kernel gives it to the
main thread, whose wait for an upload it interrupts (a SIGINT another thread took left the run
waiting on the server)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from thumbnailify.client.batch import Batch, Result, Source
from thumbnailify.client.interrupts import threads_leave_interrupts_to_main


def blocked() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, set()))


def test_threads_started_in_the_block_block_sigint_and_the_caller_gets_its_mask_back() -> None:
    before = blocked()
    seen: list[set[int]] = []
    with threads_leave_interrupts_to_main():
        thread = threading.Thread(target=lambda: seen.append(blocked()))
        thread.start()
    thread.join()
    assert signal.SIGINT in seen[0]
    assert blocked() == before and signal.SIGINT not in before


def test_every_upload_thread_of_a_batch_leaves_sigint_to_the_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    masks: list[set[int]] = []

    def one(self: Batch, source: Source) -> Result:
        masks.append(blocked())
        return Result(source.path, "Completed", "")

    monkeypatch.setattr(Batch, "one", one)
    batch: Any = Batch(client=None, reporter=None)  # type: ignore[arg-type]  # run() reaches neither
    sources = [Source(Path(f"photo-{index}.jpg"), Path(f"photo-{index}")) for index in range(8)]
    assert len(batch.run(sources, jobs=4)) == 8
    assert len(masks) == 8 and all(signal.SIGINT in mask for mask in masks)
    assert signal.SIGINT not in blocked()
