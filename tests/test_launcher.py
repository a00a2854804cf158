"""The launcher's children end with it (issue 15, item 17), however it ends."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.harness import Service, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_children_end_with_the_launcher(signum: int, tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Killed outright or hung up on, the launcher leaves no server (nor the multi-process server's
    own children) or worker behind, and a new launcher on the same port starts at once."""
    service = Service("embedded", tmp_path, workers=2, THUMBNAILIFY_SERVER_PROCESSES="2")
    service.start()
    launcher = service.process
    assert launcher is not None
    def living() -> list[psutil.Process]:
        return [p for p in psutil.Process(launcher.pid).children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]

    # server supervisor, its 2 servers, 2 photo, 1 video and 1 webhook worker
    wait_until(lambda: len(living()) == 7, 20, "the launcher's 7 processes")
    family = living()
    try:
        os.kill(launcher.pid, signum)
        code = launcher.wait(60)
        service.process = None
        _, alive = psutil.wait_procs(family, timeout=30)
        assert alive == [], [p.pid for p in alive]
        assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 0)
        service.start()  # same port; fails if an orphan still holds it
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id)["state"] == "Completed"
    finally:
        for orphan in family:
            if orphan.is_running():
                orphan.kill()
        service.stop()
