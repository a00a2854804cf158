"""What a client may send: its rate of uploads (a token bucket in the state store, shared by every
server process) and its quota of items and bytes (counted by the store with each record).

The rate applies to what makes work (POST /images, a resumable upload's creation); reading,
polling and deleting are not limited. Answers carry the rate-limit headers of the IETF httpapi
draft: the contract's `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (draft 03 to
06), and `RateLimit-Policy` and `RateLimit` (the structured fields of draft 07 on).
"""

from __future__ import annotations

import math

from aiohttp import hdrs, web

from thumbnailify.clients import Client, Grant, Quota, QuotaExceeded
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.cors import RATE_HEADERS
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.resources import resources

POLICY = "uploads"  # the policy's name in the structured headers
SENT_RATE = web.RequestKey("sent_rate", dict)  # the rate-limit headers of this request's answer


def rate_headers(client: Client, grant: Grant) -> dict[str, str]:
    """For a bucket of `burst` tokens refilled at `rate` per second: what is left, and the seconds
    until the bucket is full again (Reset) or a token is there (Retry-After, on a 429)."""
    remaining = math.floor(grant.remaining)
    limit = math.floor(client.burst)
    reset = math.ceil((client.burst - grant.remaining) / client.rate)
    window = math.ceil(client.burst / client.rate)
    values = (str(limit), str(remaining), str(reset), f'"{POLICY}";q={limit};w={window}',
              f'"{POLICY}";r={remaining};t={reset}')
    return dict(zip(RATE_HEADERS, values, strict=True))


async def admit(request: web.Request) -> None:
    """Take one upload from the caller's bucket; 429 with Retry-After when it is empty. The
    headers go on the answer either way (add_rate_headers)."""
    client = caller(request)
    if not client.rate:
        return
    res = resources(request)
    grant = await res.store.take_token(client.name, client.rate, client.burst)
    headers = rate_headers(client, grant)
    request[SENT_RATE] = headers
    if not grant.allowed:
        res.metrics.refused(client.name, "rate")
        retry = max(1, math.ceil(grant.retry_after))
        raise ApiError(429, f"rate limit of {client.rate:g} uploads per second reached; retry in {retry} s",
                       headers | {hdrs.RETRY_AFTER: str(retry)})


def quota(client: Client) -> Quota | None:
    return Quota(client.quota_items, client.quota_bytes) if client.quota_items or client.quota_bytes else None


def over_quota(client: Client, exc: QuotaExceeded) -> ApiError:
    """The 413 for an upload the store refused (nothing of it was kept)."""
    unit = "items" if exc.quota == "items" else "bytes"
    return ApiError(413, f"client {client.name!r} is over its {exc.quota} quota ({exc.limit} {unit}); "
                         "delete some media or ask for a larger quota")


async def check_room(request: web.Request, length: int = 0) -> None:
    """Before a body is read: 413 when the caller's quota is full already, or would be by an
    upload of `length` bytes (when it is known: a resumable upload's). The store checks each
    record again, atomically, so a race between uploads cannot pass it."""
    client = caller(request)
    bound = quota(client)
    if bound is None:
        return
    res = resources(request)
    used = await res.store.usage(client.name)
    if bound.items and used.items >= bound.items:
        res.metrics.refused(client.name, "quota")
        raise over_quota(client, QuotaExceeded("items", bound.items))
    if bound.bytes and (used.bytes >= bound.bytes or used.bytes + length > bound.bytes):
        res.metrics.refused(client.name, "quota")
        raise over_quota(client, QuotaExceeded("bytes", bound.bytes))


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer to a rate-limited request says where the caller's bucket stands."""
    response.headers.update(request.get(SENT_RATE, {}))


async def usage(request: web.Request) -> web.Response:
    """GET /usage: the caller's items and bytes, and its quotas (null: none)."""
    client = caller(request)
    used = await resources(request).store.usage(client.name)
    return web.json_response({"client": client.name, "items": used.items, "bytes": used.bytes,
                              "quota_items": client.quota_items or None, "quota_bytes": client.quota_bytes or None})
