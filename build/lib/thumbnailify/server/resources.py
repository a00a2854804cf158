"""What a request handler needs, opened once per process in the app's cleanup context."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from thumbnailify.server.backends import Files, Publisher, Store
from thumbnailify.server.events.hub import EventHub
from thumbnailify.server.metrics import ServerMetrics
from thumbnailify.server.uploads.intake import UploadSlots
from thumbnailify.settings import Settings


@dataclass
class Resources:
    settings: Settings
    store: Store
    publisher: Publisher
    files: Files
    metrics: ServerMetrics
    upload_slots: UploadSlots
    events: EventHub


class InFlight:
    """Requests being handled, so a shutdown can wait for them while it still reads their bodies."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self.idle.clear()

    def __exit__(self, *_exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


RESOURCES = web.AppKey("resources", Resources)
IN_FLIGHT = web.AppKey("in_flight", InFlight)


def resources(request: web.Request) -> Resources:
    return request.app[RESOURCES]
