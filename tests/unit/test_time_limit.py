"""A job's hard time limit (worker.jobs.time_limit) is armed on a worker's main thread only: the
timer is process-wide, so a job run on another thread (tests/api's in-process worker) must neither
replace nor cancel an alarm someone else set."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from thumbnailify.worker.jobs import time_limit

SENTINEL = 1000.0  # seconds: far beyond the test, and restored before it could fire


@pytest.fixture
def armed() -> Iterator[None]:
    """An alarm of our own for the test's length; whatever was armed before (pytest-timeout's) comes back."""
    previous = signal.setitimer(signal.ITIMER_REAL, SENTINEL)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous)


def remaining() -> float:
    return signal.getitimer(signal.ITIMER_REAL)[0]


def test_the_main_thread_arms_the_limit_and_disarms_it(armed: None) -> None:
    with time_limit(5):
        assert 4 < remaining() <= 5
    assert remaining() == 0


def test_another_thread_leaves_the_process_alarm_alone(armed: None) -> None:
    seen: list[float] = []

    def job() -> None:
        with time_limit(5):
            seen.append(remaining())

    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    assert seen and seen[0] > SENTINEL - 60
    assert remaining() > SENTINEL - 60
