"""Ctrl-C reaches the main thread, whatever the other threads wait on.

The kernel gives a process's SIGINT to any one of its threads that does not block it. Python runs
the handler (KeyboardInterrupt) in the main thread, once that thread runs again; a main thread
waiting on a lock for an upload thread's result is not woken by a signal another thread took. So a
run interrupted while an upload waited on the server went on until the server answered. Threads
started inside `threads_leave_interrupts_to_main()` block SIGINT, and the kernel hands it to the
main thread, whose wait it interrupts.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def threads_leave_interrupts_to_main() -> Iterator[None]:
    """Threads started in this block block SIGINT for good (they inherit the mask); the calling
    thread gets back its own mask after, and with it any SIGINT that came meanwhile."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
