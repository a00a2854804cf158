"""CORS for the origins in server.cors_origins: preflight answers and headers on every response.

Off unless origins are listed. The headers are added as a response is prepared, so errors and
streamed responses (server-sent events) carry them too.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from thumbnailify.server.http.middleware import Handler
from thumbnailify.server.resources import resources
from thumbnailify.server.resumable.protocol import REQUEST_HEADERS, RESPONSE_HEADERS

# PATCH and HEAD, and the tus headers, for resumable uploads (server/resumable/).
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS, PATCH, HEAD"
ALLOW_HEADERS = ", ".join(("Authorization", "Content-Type", "Idempotency-Key", *REQUEST_HEADERS))
# And a client's rate limit (server/limits.py), so a page can pace its uploads.
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "RateLimit")
EXPOSE_HEADERS = ", ".join(("Location", "Retry-After", "ETag", "Idempotent-Replayed", *RESPONSE_HEADERS, *RATE_HEADERS))
MAX_AGE = "600"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get(hdrs.ORIGIN)
    return origin if origin in resources(request).settings.server.cors_origin_set else None


@web.middleware
async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a browser's preflight OPTIONS for a listed origin (before auth: it carries no key)."""
    if (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        and _allowed_origin(request) is not None
    ):
        return web.Response(status=204, headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOW_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: MAX_AGE,
        })
    return await handler(request)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS
        response.headers.add(hdrs.VARY, hdrs.ORIGIN)
