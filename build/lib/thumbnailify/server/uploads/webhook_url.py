"""callback_url checked at POST time: the allow-list, then every address its host resolves to."""

from __future__ import annotations

import asyncio
import socket

from thumbnailify.server.http.errors import ApiError
from thumbnailify.settings import WebhookSettings
from thumbnailify.webhook_urls import CallbackRefused, check_addresses, check_url, parse_allowed_hosts

RESOLVE_SECONDS = 5.0


async def checked_callback(url: str | None, conf: WebhookSettings) -> str | None:
    """The URL to keep (in its ASCII form) when it may be called, else a 400 that says why (nothing
    is kept)."""
    if url is None:
        return None
    if not conf.secret:
        raise ApiError(400, "completion webhooks are not enabled on this server (webhooks.secret is not set)")
    try:
        target = check_url(url, parse_allowed_hosts(conf.allowed_hosts))
        try:
            async with asyncio.timeout(RESOLVE_SECONDS):
                found = await asyncio.get_running_loop().getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise CallbackRefused(f"callback_url host {target.host!r} does not resolve") from exc
        check_addresses(target, [info[4][0] for info in found])
    except CallbackRefused as exc:
        raise ApiError(400, str(exc)) from exc
    return target.url
