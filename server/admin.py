"""The admin API, /admin/keys: clients and their keys (auth.admin_key; server/http/auth.py).

A key is shown once, in the answer that made it (create, rotate); the store keeps its SHA-256.
Names are never reused: a revoked client stays listed (its items keep their owner).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from thumbnailify.clients import DEFAULT_CLIENT, Client, key_hash, new_key, valid_name
from thumbnailify.lanes import Priority
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.metrics import OTHER
from thumbnailify.server.resources import resources
from thumbnailify.state import now

RESERVED = frozenset({DEFAULT_CLIENT, OTHER})  # auth.api_key's client; the metrics' label for the rest
MAX_QUOTA = 2**62  # past any real store, and still an integer in every store and in Lua


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise ApiError(400, "the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUOTA:
        raise ApiError(400, f"{name} must be a whole number from 0 (no quota) to {MAX_QUOTA}")
    return value


def _rate(body: dict[str, Any]) -> float:
    value = body.get("rate") or 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1e6:
        raise ApiError(400, "rate must be a number of uploads per second from 0 (no limit) to 1000000")
    return float(value)


def _priority(body: dict[str, Any]) -> Priority:
    value = body.get("priority") or Priority.NORMAL
    if value not in tuple(Priority):
        raise ApiError(400, "priority must be one of " + ", ".join(Priority))
    return Priority(value)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not valid_name(name):
        raise ApiError(404, "no such client")
    return name


async def create(request: web.Request) -> web.Response:
    """POST /admin/keys {"name", "quota_bytes", "quota_items", "rate", "priority"}: 201 with the key."""
    body = await _json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not valid_name(name):
        raise ApiError(400, "name must be 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    if name in RESERVED:
        raise ApiError(400, f"{name!r} is reserved")
    client = Client(name, now(), quota_bytes=_count(body, "quota_bytes"), quota_items=_count(body, "quota_items"),
                    rate=_rate(body), priority=_priority(body))
    key = new_key()
    if not await resources(request).store.add_client(client, key_hash(key)):
        raise ApiError(409, f"a client named {name!r} exists (names are not reused, even once revoked)")
    return web.json_response(client.public() | {"key": key}, status=201,
                             headers={"Location": f"/admin/keys/{name}", "Cache-Control": "no-store"})


async def list_clients(request: web.Request) -> web.Response:
    clients = await resources(request).store.list_clients()
    return web.json_response({"items": [client.public() for client in clients]})


async def get_client(request: web.Request) -> web.Response:
    store = resources(request).store
    client = await store.get_client(_name(request))
    if client is None:
        raise ApiError(404, "no such client")
    used = await store.usage(client.name)
    return web.json_response(client.public() | {"items": used.items, "bytes": used.bytes})


async def revoke(request: web.Request) -> web.Response:
    """POST /admin/keys/{name}/revoke: every key of the client stops working at once."""
    if not await resources(request).store.revoke_client(_name(request)):
        raise ApiError(404, "no such client")
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    """POST /admin/keys/{name}/rotate {"grace_seconds"?}: a new key; the old one works that much
    longer (default auth.rotate_grace_seconds)."""
    res = resources(request)
    body = await _json_object(request)
    grace = body.get("grace_seconds", res.settings.auth.rotate_grace_seconds)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= 365 * 86400:
        raise ApiError(400, "grace_seconds must be a number of seconds from 0 to a year")
    name = _name(request)
    key = new_key()
    if not await res.store.rotate_key(name, key_hash(key), float(grace)):
        raise ApiError(404, "no such client, or it is revoked")
    return web.json_response({"name": name, "key": key, "grace_seconds": grace},
                             headers={"Cache-Control": "no-store"})
