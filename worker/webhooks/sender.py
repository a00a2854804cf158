"""One signed webhook POST, made safe to aim at a URL a client chose.

The URL is checked against the allow-list again and its host resolved again right before the
call; the connection goes to an address that passed the check (pinned, so a DNS answer that
changes between the check and the connect cannot redirect it). Redirects are not followed, only
the status line and headers are read, and the whole attempt has a hard deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from thumbnailify.settings import WebhookSettings
from thumbnailify.webhook_urls import CallbackRefused, check_addresses, check_url, parse_allowed_hosts

SIGNATURE_HEADER = "Thumbnailify-Signature"
EVENT_ID_HEADER = "Thumbnailify-Event-Id"
USER_AGENT = "Thumbnailify-Webhooks/1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Stripe-style: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Attempt:
    status: int | None  # the receiver's HTTP status, None when there was no answer
    error: str  # why it did not count as delivered ("" when it did)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, event_id: str, conf: WebhookSettings) -> Attempt:
    try:
        target = check_url(url, parse_allowed_hosts(conf.allowed_hosts))
        try:
            found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CallbackRefused(f"host {target.host!r} does not resolve") from exc
        hosts = [str(info[4][0]) for info in found]  # an IP family's address: the host first
        address = str(check_addresses(target, hosts)[0])
    except CallbackRefused as exc:
        return Attempt(None, f"refused: {exc}")
    parts = urlsplit(target.url)  # ASCII, whatever an older record kept
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc.rpartition("@")[2],
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id,
        SIGNATURE_HEADER: signature(conf.secret, int(time.time()), body),
    }
    sock: socket.socket | None = None
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        if sock is not None:
            _shut(sock)

    # A receiver dribbling its answer a byte at a time would outlast every per-read timeout;
    # past the deadline the socket is shut from here and the read fails.
    deadline = threading.Timer(conf.timeout, expire)
    deadline.start()
    try:
        sock = socket.create_connection((address, target.port), timeout=conf.timeout)
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        connection = http.client.HTTPConnection(target.host, target.port, timeout=conf.timeout)
        connection.sock = sock
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        connection.close()  # the body is not read: only the status counts
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        # The deadline shut the socket, or a read's own timeout (the same length) came first.
        if expired.is_set() or isinstance(exc, TimeoutError):
            return Attempt(None, f"no answer within {conf.timeout:g}s")
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        deadline.cancel()
        if sock is not None:
            sock.close()
    return Attempt(status, "" if 200 <= status < 300 else f"answered {status}")


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
