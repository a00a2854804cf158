"""The launcher: its children end with it, however it ends; a start that cannot work stops at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.harness import ROOT, Service, service_env, wait_until
from thumbnailify.startup import EXIT_CANNOT_START
from thumbnailify.supervisor import Child, Supervisor

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


LAUNCHER, SERVER, WORKER = ["-m", "thumbnailify"], ["-m", "thumbnailify.server"], ["-m", "thumbnailify.worker"]
MISSPELT = ({"THUMBNAILIFY_BACKENDS_STORE": "redsi"}, "backends.store: unknown backend 'redsi'")
UNLOADABLE = ({"THUMBNAILIFY_BACKENDS_QUEUE": "nosuch.module:Queue"}, "backends.queue: cannot load")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_children_end_with_the_launcher(signum: int, tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Killed outright or hung up on, the launcher leaves no server (nor the multi-process server's
    own children) or worker behind, and a new launcher on the same port starts at once."""
    service = Service("embedded", tmp_path, workers=2, video_workers=1, webhook_workers=1,
                      THUMBNAILIFY_SERVER_PROCESSES="2")
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


def _start(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=os.environ | service_env("embedded", tmp_path) | env,
    )


@pytest.mark.parametrize("argv", [LAUNCHER, SERVER], ids=["launcher", "server"])
def test_a_port_in_use_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    """No traceback and no restart loop: which address, which setting changes it, exit code 2."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _start(argv, tmp_path, THUMBNAILIFY_SERVER_PORT=str(port))
    assert done.returncode == EXIT_CANNOT_START
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port} is already in use" in lines[0] and "THUMBNAILIFY_SERVER_PORT" in lines[0]


# Every entry point reads settings through the same function (its messages: tests/unit/test_config.py),
# so each process is started with the two kinds of refusal, one found in the settings and one only a
# backend's loading finds; the launcher, the command people run, with every kind.
@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [(LAUNCHER, *MISSPELT), (LAUNCHER, *UNLOADABLE),
     (LAUNCHER, {"THUMBNAILIFY_SERVER_PORT": "eighty"}, "THUMBNAILIFY_SERVER_PORT"),
     (LAUNCHER, {"THUMBNAILIFY_SREVER_PORT": "8081"}, "THUMBNAILIFY_SREVER_PORT: no such setting"),
     (LAUNCHER, {"THUMBNAILIFY_LIMITS_UPLOAD_MEMORY": "64MB"},
      "THUMBNAILIFY_LIMITS_UPLOAD_MEMORY sets limits.upload_memory"),
     (SERVER, *MISSPELT), (SERVER, *UNLOADABLE), (WORKER, *MISSPELT), (WORKER, *UNLOADABLE)],
    ids=["launcher-misspelt", "launcher-unloadable", "launcher-wrong-type", "launcher-unknown-variable",
         "launcher-byte-size", "server-misspelt", "server-unloadable", "worker-misspelt", "worker-unloadable"],
)
def test_bad_configuration_is_one_line_and_exit_2(argv: list[str], env: dict[str, str], named: str,
                                                   tmp_path: Path) -> None:
    """Refused before anything starts, or (a backend only its process can load) by the child whose
    exit stops the launcher: either way one line says why, and nothing restarts."""
    done = _start(argv, tmp_path, **env)
    assert done.returncode == EXIT_CANNOT_START, done.stderr
    said = [line for line in done.stderr.splitlines() if "cannot start:" in line]
    assert len(said) == 1 and named in said[0], done.stderr
    assert "Traceback" not in done.stderr and "restarting" not in done.stderr, done.stderr


def test_a_child_that_cannot_start_stops_the_supervisor() -> None:
    """A child exiting with EXIT_CANNOT_START is not restarted: the others are stopped and the
    supervisor ends with the same code (a child that crashes otherwise is restarted, as before)."""
    sleeper = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    failing = Child("failing", [sys.executable, "-c", f"import sys; sys.exit({EXIT_CANNOT_START})"])
    supervisor = Supervisor([sleeper, failing], grace_seconds=10)
    assert supervisor.run() == EXIT_CANNOT_START
    assert sleeper.process is not None and sleeper.process.poll() is not None
    assert failing.process is not None and failing.process.returncode == EXIT_CANNOT_START
