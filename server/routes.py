"""The whole URL map: uploads, media, live status, usage, the admin API, operations and the web page."""

from __future__ import annotations

from aiohttp import web

from thumbnailify.server import admin, images, limits, ops, page
from thumbnailify.server.events import streams
from thumbnailify.server.resumable import handlers as resumable
from thumbnailify.server.uploads import handler as uploads


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/images", uploads.create_image, expect_handler=uploads.defer_continue)
    router.add_get("/images", images.list_images)
    router.add_get("/images/{media_id}", images.get_image)
    router.add_delete("/images/{media_id}", images.delete_image)
    router.add_get("/images/{media_id}/thumbnail", images.get_thumbnail)
    router.add_get("/images/{media_id}/events", streams.media_events)
    router.add_get("/events", streams.all_events)
    for creation in ("/uploads/", "/uploads"):
        router.add_route("OPTIONS", creation, resumable.options)
        router.add_post(creation, resumable.create)
    one = "/uploads/{upload_id}"
    router.add_route("OPTIONS", one, resumable.options)
    router.add_route("HEAD", one, resumable.head)
    router.add_get(one, resumable.get, allow_head=False)
    router.add_patch(one, resumable.patch)
    router.add_delete(one, resumable.delete)
    router.add_post(one, resumable.overridden)
    router.add_get("/usage", limits.usage)
    router.add_post("/admin/keys", admin.create)
    router.add_get("/admin/keys", admin.list_clients)
    router.add_get("/admin/keys/{name}", admin.get_client)
    router.add_post("/admin/keys/{name}/revoke", admin.revoke)
    router.add_post("/admin/keys/{name}/rotate", admin.rotate)
    router.add_get("/health", ops.health)
    router.add_get("/ready", ops.ready)
    router.add_get("/metrics", ops.metrics)
    router.add_get("/openapi.json", ops.openapi)
    router.add_get("/", page.page)
    router.add_get("/static/{name}", page.static)
    router.add_get(f"/static/{page.MODULES}/{{name}}", page.module)
