"""A completion webhook in process, on NATS: the photo worker publishes the webhook job on the log,
the webhook worker's failed attempt is put aside with a delayed nak (the webhook consumer counts no
deliveries: the callback counts its own attempts), and the next one delivers the signed event. The
whole contract in the other modes, with kills, timeouts and slow receivers: tests/system/test_webhooks.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from tests.api.conftest import ApiFactory, InProcessWorker
from tests.harness import NATS_MODE

SECRET = "whsec_in_process"
DELIVERY_SECONDS = 20.0


@pytest.fixture
def api_mode() -> str:
    return NATS_MODE


@dataclass
class Receiver:
    """Answers the first `failures` POSTs with 500, then 200; keeps each request's headers and body."""

    server: TestServer | None = None
    failures: int = 0
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def hook(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if len(self.seen) <= self.failures else 200)

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/hooks/thumbnailify?x=1"


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/thumbnailify", found.hook)
    found.server = await aiohttp_server(app, host="127.0.0.1")
    return found


def verified(headers: dict[str, str], body: bytes) -> dict:
    """The event, its signature checked as a receiver should: over "<t>.<raw body>"."""
    timestamp, signature = (part.split("=", 1)[1] for part in headers["Thumbnailify-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(time.time() - int(timestamp)) < 120
    event = json.loads(body)
    assert event["id"] == headers["Thumbnailify-Event-Id"]
    return event


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (90, 60), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_webhook_is_retried_then_delivered_signed(make_api: ApiFactory, receiver: Receiver) -> None:
    receiver.failures = 1
    api = await make_api(THUMBNAILIFY_WEBHOOKS_SECRET=SECRET, THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS=receiver.host,
                         THUMBNAILIFY_WEBHOOKS_RETRY_BASE_DELAY="0.2", THUMBNAILIFY_WEBHOOKS_MAX_ATTEMPTS="3")
    hooks = InProcessWorker(api.settings, "webhook")
    try:
        response = await api.post(png(), "image/png", params={"callback_url": receiver.url})
        assert response.status_code == 202, response.text
        media_id = response.json()["media_id"]
        assert (await api.wait(media_id))["state"] == "Completed"
        deadline = asyncio.get_running_loop().time() + DELIVERY_SECONDS
        while len(receiver.seen) < 2 and asyncio.get_running_loop().time() < deadline:
            await hooks.drain()
        status = (await api.get(f"/images/{media_id}")).json()
        assert status["callback"] == {"url": receiver.url, "state": "delivered", "attempts": 2, "last_status": 200}
        events = [verified(headers, body) for headers, body in receiver.seen]
        assert len(events) == 2 and events[0] == events[1]  # a retry is the same event, one id to dedupe on
        assert events[0]["event"] == "media.completed"
        assert events[0]["media"]["media_id"] == media_id and events[0]["media"]["state"] == "Completed"
        assert await hooks.drain() == 0  # acked: not handed out again
        assert status["state"] == "Completed"  # the failed attempt never touched the media
    finally:
        await hooks.close()
