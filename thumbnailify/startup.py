"""Start-up: errors that no restart can fix, and the open files limit every process raises.

Errors that no restart can fix are one line on stderr and exit code 2.

A wrong setting or a port another program holds would fail the same way on every restart, so a
process that meets one says what is wrong and which setting changes it, and exits with
EXIT_CANNOT_START; the supervisor then stops everything instead of restarting it in a loop.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from thumbnailify.backends.loader import UnknownBackend
from thumbnailify.settings import ConfigError

log = logging.getLogger(__name__)

EXIT_CANNOT_START = 2  # as for a command line usage error: the same start would fail again

# What a failed bind means for the person who started the service.
BIND_ERRORS = {
    errno.EADDRINUSE: "is already in use by another program",
    errno.EACCES: "needs privileges this user does not have (ports below 1024)",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}


class CannotStart(Exception):
    """A start-up error a restart cannot fix; the message is the whole story, on one line."""


@contextmanager
def cannot_start_exits(program: str) -> Iterator[None]:
    """Turn a start-up error into its one line and EXIT_CANNOT_START, never a traceback."""
    try:
        yield
    except (CannotStart, ConfigError, UnknownBackend) as exc:
        print(f"{program}: cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CANNOT_START)


def bind_error(host: str, port: int, exc: OSError) -> CannotStart | None:
    """The one-line reason a listening socket could not be bound, or None for another error."""
    reason = BIND_ERRORS.get(exc.errno or 0)
    if reason is None:
        return None
    return CannotStart(
        f"{host}:{port} {reason}; set server.port (THUMBNAILIFY_SERVER_PORT) or server.host "
        "(THUMBNAILIFY_SERVER_HOST) to another"
    )


def check_port_free(host: str, port: int, *, shared: bool = False) -> None:
    """Bind the server's address once, as the server will, before starting anything (`shared`:
    as one of several server processes, which share the port with SO_REUSEPORT)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotStart(f"server.host {host!r} does not resolve (THUMBNAILIFY_SERVER_HOST): {exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: TIME_WAIT is no conflict
        if shared:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            error = bind_error(host, port, exc)
            if error is None:
                raise
            raise error from exc


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit, and return it (for the
    process's start line).

    The common soft limit of 1,024 is a few hundred event streams plus the rest; every descriptor a
    process may open counts against it, and one past it fails an accept or a connect. The hard limit
    is what the administrator allows, so a service takes all of it (the children inherit it).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # an unlimited hard limit is past what the kernel allows
        log.warning("the open files limit stays %d (hard limit %d): %s", soft, hard, exc)
        return soft
    return hard
