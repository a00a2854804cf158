"""The aiohttp application factory: backends chosen by config, opened in a cleanup context."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from common.config import Settings
from common.loader import load_backend
from server import images, middleware, ops
from server.backends import TABLE
from server.metrics import ServerMetrics
from server.recovery import run_recovery
from server.resources import IN_FLIGHT, RESOURCES, InFlight, Resources

RUN_RECOVERY = web.AppKey("run_recovery", bool)


def create_app(settings: Settings, run_recovery_pass: bool = True) -> web.Application:
    app = web.Application(middlewares=[middleware.observe, middleware.errors, middleware.auth])
    app[RUN_RECOVERY] = run_recovery_pass
    app[IN_FLIGHT] = InFlight()
    app.cleanup_ctx.append(_backends(settings))
    images.add_routes(app)
    ops.add_routes(app)
    return app


def _backends(settings: Settings):  # noqa: ANN202 - aiohttp's cleanup-context shape
    async def context(app: web.Application) -> AsyncIterator[None]:
        names = settings.backends
        res = Resources(
            settings=settings,
            store=load_backend(TABLE, "store", names.store)(settings),
            publisher=load_backend(TABLE, "queue", names.queue)(settings),
            files=load_backend(TABLE, "files", names.files)(settings),
            metrics=ServerMetrics(),
        )
        await res.files.open()
        await res.store.open()
        await res.publisher.open()
        app[RESOURCES] = res
        if app[RUN_RECOVERY]:
            await run_recovery(res)
        yield
        await res.publisher.close()
        await res.store.close()
        await res.files.close()

    return context
