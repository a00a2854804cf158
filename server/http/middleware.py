"""Cross-cutting request handling: metrics and the access log, JSON errors (auth: server/http/auth.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import ClientPayloadError, hdrs, web

from thumbnailify.record import UnreadableRecord
from thumbnailify.server.http.errors import ApiError, BackendUnavailable
from thumbnailify.server.resources import IN_FLIGHT, resources

log = logging.getLogger("server.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_LEFT = 499  # logged when the client closed the connection before its answer (nginx's code)
# A handler may put fields here (media_id, bytes, ...) for the request's one access-log line.
LOG_EXTRA = web.RequestKey("log_extra", dict)


# After an early error, what is left of the body is read (and dropped) up to this much, so a
# client still sending a normal-sized body gets to read the answer; past it the connection is
# closed (server/http/protocol.py) rather than drained.
DRAIN_BYTES = 4 * 1024 * 1024
DRAIN_SECONDS = 3.0
# A client that is not sending is not waited for longer (at 0.25 s, answers were lost on a loaded machine).
DRAIN_IDLE_SECONDS = 1.0
# Set once "100 Continue" was sent; before that a client sends no body, so there is none to drain.
CONTINUED = web.RequestKey("continued", bool)
NOSNIFF = ("X-Content-Type-Options", "nosniff")


async def nosniff(_request: web.Request, response: web.StreamResponse) -> None:
    """Every answer is only what its Content-Type says: a browser never takes a thumbnail or an
    error body for a page or a script."""
    response.headers[NOSNIFF[0]] = NOSNIFF[1]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


async def _drain_a_little(request: web.Request) -> None:
    waiting_for_continue = request.headers.get(hdrs.EXPECT, "").lower() == "100-continue" and not request.get(
        CONTINUED
    )
    if waiting_for_continue or request.content.at_eof():
        return
    drained = 0
    deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
    try:
        while drained <= DRAIN_BYTES:
            async with asyncio.timeout_at(min(deadline, asyncio.get_running_loop().time() + DRAIN_IDLE_SECONDS)):
                chunk = await request.content.readany()
            if not chunk:
                return
            drained += len(chunk)
    except (TimeoutError, OSError, ClientPayloadError):
        return


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as {"message": ...} JSON; aiohttp's own 404/405/413 included."""
    try:
        return await handler(request)
    except BackendUnavailable as exc:
        log.warning("%s unavailable: %s", exc.backend, exc.detail, extra={"path": request.path})
        response = error_response(exc.status, exc.message, exc.headers)
    except ApiError as exc:
        response = error_response(exc.status, exc.message, exc.headers)
    except UnreadableRecord as exc:  # our data, not the client's request: a 500 that says what is wrong
        log.error("unreadable record: %s", exc, extra={"path": request.path})
        response = error_response(500, f"this media's record cannot be read: {exc}")
    except ConnectionResetError:
        raise  # the client left; there is no one to answer
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k != hdrs.CONTENT_TYPE}
        headers.pop(hdrs.CONTENT_LENGTH, None)
        response = error_response(exc.status, exc.reason, headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        response = error_response(500, "internal error; it has been logged")
    await _drain_a_little(request)
    return response


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time each request by route pattern (not raw path, which holds ids)."""
    started = time.perf_counter()
    status = CLIENT_LEFT
    try:
        with request.app[IN_FLIGHT]:
            response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        metrics = resources(request).metrics
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route, request.method).observe(elapsed)
        log.info(
            "%s %s", request.method, request.path,
            extra={"status": status, "ms": round(elapsed * 1000, 2), "route": route, **request.get(LOG_EXTRA, {})},
        )
