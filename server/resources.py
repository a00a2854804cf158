"""What a request handler needs, opened once per process in the app's cleanup context."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from common.config import Settings
from server.backends import Publisher, Store
from server.files import FilesystemFiles
from server.metrics import ServerMetrics


@dataclass
class Resources:
    settings: Settings
    store: Store
    publisher: Publisher
    files: FilesystemFiles
    metrics: ServerMetrics


RESOURCES = web.AppKey("resources", Resources)


def resources(request: web.Request) -> Resources:
    return request.app[RESOURCES]
