"""Run a set of child processes, restart any that dies, stop them all on SIGINT, SIGTERM or SIGHUP.

This is what `make run` and a multi-process server use on one machine; under docker compose or
Kubernetes each container runs one process and the orchestrator restarts it instead. Children die
with the supervisor even when it cannot stop them (SIGKILL, a crash): on Linux the kernel sends
each one SIGTERM when its parent ends (PR_SET_PDEATHSIG), so none is left holding the port or
taking jobs, and the next start finds the port free.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from thumbnailify.startup import EXIT_CANNOT_START

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
TEND_SECONDS = 0.2  # how often the children are looked at (a stop signal wakes the loop at once)
STABLE_AFTER = 60.0  # a child that ran this long before dying restarts without delay
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal was closed
PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> Callable[[], None] | None:
    """What a child runs before exec to get SIGTERM when `parent` ends (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the line above: nobody will tell us
            os._exit(1)  # (a signal would meet the parent's handlers, which stay until the exec)

    return arm


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0

    def start(self) -> None:
        arm = die_with(os.getpid())
        self.process = subprocess.Popen(self.argv, env=os.environ | self.env, preexec_fn=arm)  # noqa: PLW1509 (no threads here)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    def __init__(self, children: list[Child], grace_seconds: float = 60.0) -> None:
        self.children = children
        self.grace_seconds = grace_seconds
        self.stopping = False
        self.exit_code = 0

    def _stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("received %s, stopping children", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        # A signal writes a byte to this pipe, so the loop's wait ends as the signal comes rather than
        # at the end of the wait (a sleep resumes after the handler). Children do not inherit it.
        woken, wake = os.pipe()
        os.set_blocking(wake, False)
        previous = signal.set_wakeup_fd(wake)
        try:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._stop)
            for child in self.children:
                child.start()
            while not self.stopping:
                if select.select([woken], [], [], TEND_SECONDS)[0]:
                    os.read(woken, 512)
                for child in self.children:
                    self._tend(child)
            return self._shutdown()
        finally:
            signal.set_wakeup_fd(previous)
            os.close(woken)
            os.close(wake)

    def _tend(self, child: Child) -> None:
        now = time.monotonic()
        if child.process is None:
            if now >= child.restart_at:
                child.start()
            return
        code = child.process.poll()
        if code is None:
            return
        if code == EXIT_CANNOT_START:  # it said why; every restart would fail the same way
            log.error("%s cannot start; stopping everything", child.name)
            self.stopping = True
            self.exit_code = EXIT_CANNOT_START
            return
        child.failures = 0 if now - child.started > STABLE_AFTER else child.failures + 1
        delay = min(MAX_BACKOFF, 0.5 * 2 ** child.failures) if child.failures else 0.0
        log.warning("%s (pid %d) exited with %s; restarting in %.1fs", child.name, child.process.pid, code, delay)
        child.process = None
        child.restart_at = now + delay

    def _shutdown(self) -> int:
        alive = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for process in alive:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
        log.info("all children stopped")
        return self.exit_code
