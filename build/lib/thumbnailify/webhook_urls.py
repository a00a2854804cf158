"""Which completion-webhook URLs we will call: the SSRF rules, shared by the server (at POST) and
the delivering worker (again at send time, against DNS rebinding).

A URL must be absolute http(s), without user info, and its host must match
`webhooks.allowed_hosts`: an entry `host` allows that host on any port, `host:port` only that
port, and `*.example.com` any subdomain of example.com. Every address the host resolves to must
be public, unless the host is listed exactly (not through a wildcard): loopback, private,
link-local, shared (CGNAT), multicast, reserved and cloud-metadata addresses are refused. An IPv6
address that carries an IPv4 one (mapped, translated, compatible, NAT64, 6to4, Teredo) is judged
by that IPv4 address too, and site-local IPv6 is refused like private.

A URL that passes is returned in its ASCII form (IDNA host, percent-encoded path and query), the
only form the sender can put on the wire.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

MAX_URL_LENGTH = 2048

# Cloud metadata services answer on link-local or private addresses; named here so that the
# refusal names them, and so a listed host can never reach them either.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16")
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose last 32 bits are an IPv4 address (RFC 4291 compatible, RFC 2765 translated,
# RFC 6052 well-known NAT64); `ipv4_mapped`, `sixtofour` and `teredo` cover the others.
EMBEDDING_PREFIXES = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# `::` and `::1` sit in ::/96 but carry no IPv4 address; they are judged as themselves.
NOT_EMBEDDING = frozenset(ipaddress.IPv6Address(a) for a in ("::", "::1"))
# Not public whatever they carry: local-use NAT64 (RFC 8215), deprecated site-local (RFC 3879).
NON_PUBLIC_IPV6 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))

# What RFC 3986 lets stand in a path, query or fragment besides unreserved characters and %XX.
PATH_SAFE = "/:@!$&'()*+,;="
QUERY_SAFE = PATH_SAFE + "?"
PERCENT_ESCAPE = re.compile("(%[0-9A-Fa-f]{2})")


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
    """The entries, lower-case, internationalised names in the IDNA form URLs are matched in."""
    entries = (entry.strip().lower() for entry in text.split(",") if entry.strip())
    return tuple(entry if entry.isascii() else _ascii_host(entry) for entry in entries)


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
    host = _ascii_host(parts.hostname.lower().rstrip("."))
    port = port or (443 if parts.scheme == "https" else 80)
    exact = any(entry in allowed_hosts for entry in (host, _bracketed(host), f"{_bracketed(host)}:{port}"))
    wildcard = any(e.startswith("*.") and host.endswith(e[1:]) and host != e[2:] for e in allowed_hosts)
    if not (exact or wildcard):
        raise CallbackRefused(f"callback_url host {host!r} is not in webhooks.allowed_hosts")
    ascii_url = _ascii_url(parts, host)
    if len(ascii_url) > MAX_URL_LENGTH:
        raise CallbackRefused("callback_url is too long once percent-encoded")
    return CallbackTarget(ascii_url, parts.scheme, host, port, exact)


def check_addresses(target: CallbackTarget, addresses: list[str]) -> list[IpAddress]:
    """The resolved addresses we may connect to; refuses the URL if any is not allowed."""
    if not addresses:
        raise CallbackRefused(f"callback_url host {target.host!r} does not resolve")
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        for judged in (address, *embedded_ipv4(address)):
            _check_address(target, judged)
        checked.append(address)
    return checked


def embedded_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 one carries, which is where a packet to it may end up."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
             for network in EMBEDDING_PREFIXES if address in network and address not in NOT_EMBEDDING]
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # the server's address and the client's (unXORed)
    return found


def _check_address(target: CallbackTarget, address: IpAddress) -> None:
    if address in METADATA_ADDRESSES:
        raise CallbackRefused(f"callback_url host {target.host!r} resolves to a cloud metadata address")
    public = address.is_global and not address.is_multicast and not any(address in n for n in NON_PUBLIC_IPV6)
    if not public and not target.listed_exactly:
        raise CallbackRefused(
            f"callback_url host {target.host!r} resolves to a non-public address ({address}); "
            "list the host itself in webhooks.allowed_hosts to allow it"
        )


def _ascii_host(host: str) -> str:
    """An internationalised host name in its IDNA (punycode) form, the one DNS knows."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise CallbackRefused(f"callback_url host {host!r} is not a valid internationalised domain name") from exc


def _ascii_url(parts: SplitResult, host: str) -> str:
    """The URL with its host in IDNA form and its path, query and fragment percent-encoded as
    UTF-8 (RFC 3986), %XX escapes already there kept as they are."""
    netloc = _bracketed(host) + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, _escaped(parts.path, PATH_SAFE), _escaped(parts.query, QUERY_SAFE),
                       _escaped(parts.fragment, QUERY_SAFE)))


def _escaped(text: str, safe: str) -> str:
    pieces = PERCENT_ESCAPE.split(text)  # odd indexes are the escapes themselves
    return "".join(piece if index % 2 else quote(piece, safe=safe) for index, piece in enumerate(pieces))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
