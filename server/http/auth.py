"""Who is calling: the admin, a client by its key, or (with no keys configured) the default client.

- No `auth.api_key` and no `auth.admin_key`: the service is open and every caller is the client
  `default`, as before there were clients.
- Otherwise every request but /health, /ready and the web page needs `Authorization: Bearer
  <key>`: `auth.api_key` is the client `default`; any other key is looked up by its SHA-256 in
  the store (a revoked client's keys, and a rotated-out key past its grace period, are unknown).
- `/admin/...` takes `auth.admin_key` only (a key given when none is set is a 404: there is no
  admin API); the admin key is no client's and opens nothing else.

Keys are compared as bytes in constant time (the configured ones) or looked up by hash (the
stored ones: the hash, not the key, is what a timing could reveal, and it is of 256 random bits).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import hdrs, web

from thumbnailify.clients import DEFAULT_CLIENT, MAX_KEY_LENGTH, Client, key_hash
from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.resources import resources

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health", "/ready", "/"})
# The web page's script, style and icon (server/page.py): no data; the page asks for the key.
OPEN_PREFIX = "/static/"
ADMIN_PREFIX = "/admin/"
CALLER = web.RequestKey("caller", Client)
# The client of auth.api_key and of no-auth mode: no quota, no rate limit (it is the operator's).
DEFAULT = Client(DEFAULT_CLIENT, datetime(1970, 1, 1, tzinfo=UTC))
WRONG_KEY = "missing or wrong API key"


def caller(request: web.Request) -> Client:
    """The client making the request (the auth middleware has set it on every non-open route)."""
    found: Client = request.get(CALLER, DEFAULT)
    return found


def _bearer(request: web.Request) -> bytes:
    """The Bearer token as bytes (a header that is not UTF-8 is just a wrong key); 401 without one."""
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not given or len(given) > MAX_KEY_LENGTH:
        raise ApiError(401, WRONG_KEY, {hdrs.WWW_AUTHENTICATE: "Bearer"})
    return given


def _configured(given: bytes, key: str) -> bool:
    return bool(key) and hmac.compare_digest(given, key.encode())


async def identify(request: web.Request) -> Client | None:
    """The caller, or None on an open path or the admin's own; 401 for a missing, malformed,
    unknown or revoked key."""
    conf = resources(request).settings.auth
    path = request.path
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
        return None
    if path.startswith(ADMIN_PREFIX):
        given = _bearer(request)  # 401 without one, as the spec says of every admin route
        if not conf.admin_key:
            raise ApiError(404, "there is no admin API: auth.admin_key is not set")
        if not _configured(given, conf.admin_key):
            raise ApiError(401, "missing or wrong admin key", {hdrs.WWW_AUTHENTICATE: "Bearer"})
        return None
    if not conf.enabled:
        return DEFAULT
    given = _bearer(request)
    if _configured(given, conf.api_key):
        return DEFAULT
    found = await resources(request).store.client_by_key(key_hash(given.decode("utf-8", "surrogateescape")))
    if found is None:
        raise ApiError(401, WRONG_KEY, {hdrs.WWW_AUTHENTICATE: "Bearer"})
    return found


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    found = await identify(request)
    if found is not None:
        request[CALLER] = found
    return await handler(request)
