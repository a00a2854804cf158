"""The aiohttp application factory: backends chosen by config, opened in a cleanup context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from thumbnailify.backends.loader import load_backend
from thumbnailify.server import limits, page, routes
from thumbnailify.server.backends import TABLE, Files, Store
from thumbnailify.server.background.maintenance import maintain
from thumbnailify.server.events import streams
from thumbnailify.server.events.hub import EventHub
from thumbnailify.server.http import auth, cors, middleware
from thumbnailify.server.http.protocol import READ_AHEAD
from thumbnailify.server.metrics import ServerMetrics
from thumbnailify.server.resources import IN_FLIGHT, RESOURCES, InFlight, Resources
from thumbnailify.server.tasks import cancel_until_done
from thumbnailify.server.uploads.intake import UploadSlots
from thumbnailify.settings import Settings


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[middleware.observe, middleware.errors, cors.preflight, auth.auth])
    app[IN_FLIGHT] = InFlight()
    app.cleanup_ctx.append(_backends(settings))
    app.cleanup_ctx.append(_background)
    app.on_response_prepare.append(cors.add_headers)
    app.on_response_prepare.append(middleware.nosniff)
    app.on_response_prepare.append(limits.add_rate_headers)
    page.setup(app)
    routes.add_routes(app)
    return app


def _backends(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:  # a cleanup context
    async def context(app: web.Application) -> AsyncIterator[None]:
        names = settings.backends
        files: Files = load_backend(TABLE, "files", names.files)(settings)
        store: Store = load_backend(TABLE, "store", names.store)(settings)
        res = Resources(
            settings=settings,
            store=store,
            publisher=load_backend(TABLE, "queue", names.queue)(settings),
            files=files,
            metrics=ServerMetrics(settings.auth.metric_clients),
            # What one upload in flight holds: the files backend's buffer and what aiohttp reads ahead.
            upload_slots=UploadSlots(settings.limits.upload_memory, files.upload_memory + READ_AHEAD),
            events=EventHub(streams.stream_limit(settings.server.max_event_streams), store.changes),
        )
        await res.files.open()
        await res.store.open()
        await res.publisher.open()
        app[RESOURCES] = res
        yield
        res.upload_slots.close()
        await res.publisher.close()
        await res.store.close()
        await res.files.close()

    return context


async def _background(app: web.Application) -> AsyncIterator[None]:
    """What runs beside serving: upkeep (recovery pass, retention sweep; never delaying start-up).
    The event hub's reader runs while streams are open; it ends here too."""
    res = app[RESOURCES]
    upkeep = asyncio.create_task(maintain(res))
    yield
    res.events.close()
    await res.events.stop()
    await cancel_until_done(upkeep)
