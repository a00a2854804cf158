"""Operations endpoints: liveness, readiness of every backend, metrics, the OpenAPI spec."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from pathlib import Path

import yaml
from aiohttp import web

from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.media import BY_FORMAT
from thumbnailify.server.backends import Backend
from thumbnailify.server.http.auth import caller
from thumbnailify.server.http.errors import ApiError, BackendUnavailable
from thumbnailify.server.resources import resources
from thumbnailify.settings import YAML_LOADER

log = logging.getLogger(__name__)

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


async def health(request: web.Request) -> web.Response:
    """Up; and the thumbnail sizes this server makes (names are not secret), so a client can
    check a size before uploading and the page can pick its largest for the viewer; with each size's
    media type when it names a format (null: the source's kind decides)."""
    boxes = resources(request).settings.thumbnail.boxes()
    return web.json_response({
        "status": "ok",
        "sizes": {box.name: [box.width, box.height] for box in boxes},
        "thumbnail_types": {box.name: BY_FORMAT[box.format].name if box.format else None for box in boxes},
    })


async def ready(request: web.Request) -> web.Response:
    res = resources(request)
    backends: tuple[Backend, ...] = (res.store, res.publisher, res.files)
    results = await asyncio.gather(*(b.ping() for b in backends), return_exceptions=True)
    failing = {}
    for backend, result in zip(backends, results, strict=True):
        if isinstance(result, BackendUnavailable):
            log.warning("not ready: %s unavailable: %s", result.backend, result.detail)
            failing[backend.name] = result.message
        elif isinstance(result, BaseException):
            raise result
    if failing:
        names = ", ".join(sorted(failing))
        return web.json_response(
            {"message": f"not ready: {names}", "failing": failing}, status=503,
            headers={"Retry-After": str(BackendUnavailable.RETRY_AFTER_SECONDS)},
        )
    return web.json_response({"status": "ready", "backends": [b.name for b in backends]})


async def metrics(request: web.Request) -> web.Response:
    """The operator's: they name clients and what each sends, so a client's own key gets a 403
    (the `default` client's, auth.api_key or an open service, reads them)."""
    if caller(request).name != DEFAULT_CLIENT:
        raise ApiError(403, "metrics are the operator's: scrape them with auth.api_key")
    res = resources(request)
    res.metrics.event_streams.set(res.events.streams)
    # On an outage the depth keeps its last reading; /ready reports the outage.
    with contextlib.suppress(BackendUnavailable):
        res.metrics.queue_depth.set(await res.publisher.depth())
    return web.Response(body=res.metrics.render(), headers={"Content-Type": res.metrics.content_type})


async def openapi(_request: web.Request) -> web.Response:
    return web.Response(body=openapi_json(), content_type="application/json")


@functools.cache
def openapi_json() -> bytes:
    """The spec as JSON, parsed on its first request and once per process: a server that is never
    asked for it never parses it (each start and each app of the tests saves the parse)."""
    return json.dumps(yaml.load(OPENAPI_FILE.read_text(), Loader=YAML_LOADER)).encode()
