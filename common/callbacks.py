"""Which completion-webhook URLs we will call: the SSRF rules, shared by the server (at POST) and
the delivering worker (again at send time, against DNS rebinding).

A URL must be absolute http(s), without user info, and its host must match
`webhooks.allowed_hosts`: an entry `host` allows that host on any port, `host:port` only that
port, and `*.example.com` any subdomain of example.com. Every address the host resolves to must
be public, unless the host is listed exactly (not through a wildcard): loopback, private,
link-local, shared (CGNAT), multicast, reserved and cloud-metadata addresses are refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

# Cloud metadata services answer on link-local or private addresses; named here so that the
# refusal names them, and so a listed host can never reach them either.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16")
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called; the message says why (for a 400)."""


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    scheme: str
    host: str  # lower-case, without brackets
    port: int
    listed_exactly: bool  # named in allowed_hosts itself, not through a wildcard


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    return tuple(entry.strip().lower() for entry in text.split(",") if entry.strip())


def check_url(url: str, allowed_hosts: tuple[str, ...]) -> CallbackTarget:
    """The URL's syntax and host against the allow-list (no DNS yet)."""
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise CallbackRefused("callback_url is too long or has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must name a host and no user or password")
    host = parts.hostname.lower().rstrip(".")
    port = port or (443 if parts.scheme == "https" else 80)
    exact = host in allowed_hosts or f"{_bracketed(host)}:{port}" in allowed_hosts
    wildcard = any(e.startswith("*.") and host.endswith(e[1:]) and host != e[2:] for e in allowed_hosts)
    if not (exact or wildcard):
        raise CallbackRefused(f"callback_url host {host!r} is not in webhooks.allowed_hosts")
    return CallbackTarget(url, parts.scheme, host, port, exact)


def check_addresses(target: CallbackTarget, addresses: list[str]) -> list[IpAddress]:
    """The resolved addresses we may connect to; refuses the URL if any is not allowed."""
    if not addresses:
        raise CallbackRefused(f"callback_url host {target.host!r} does not resolve")
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            raise CallbackRefused(f"callback_url host {target.host!r} resolves to a cloud metadata address")
        if (not address.is_global or address.is_multicast) and not target.listed_exactly:
            raise CallbackRefused(
                f"callback_url host {target.host!r} resolves to a non-public address ({address}); "
                "list the host itself in webhooks.allowed_hosts to allow it"
            )
        checked.append(address)
    return checked


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
