"""10,000 tus creations that never send a byte, in process: the bound `uploads.max_unfinished`
holds (503 with Retry-After past it, nothing else stored) and the expiry sweep takes them all,
after which creations are taken again."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from tests.api.conftest import ApiFactory
from thumbnailify.server.background.sweep import sweep
from thumbnailify.server.resources import RESOURCES
from thumbnailify.server.resumable import expiry

CREATIONS = 10_000
BOUND = 300
AT_ONCE = 100  # requests in flight together, as a flood from several connections


def creation_headers() -> dict[str, str]:
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                        for key, value in {"filename": "x.jpg", "filetype": "image/jpeg"}.items())
    return {"Tus-Resumable": "1.0.0", "Upload-Length": "1000000", "Upload-Metadata": metadata}


async def test_ten_thousand_empty_creations_are_bounded_then_swept(make_api: ApiFactory,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Every creation is the one client's (no keys): its own bound out of the way, the total is under test.
    api = await make_api(THUMBNAILIFY_UPLOADS_MAX_UNFINISHED=str(BOUND),
                         THUMBNAILIFY_UPLOADS_MAX_UNFINISHED_PER_CLIENT=str(CREATIONS))
    headers = creation_headers()
    statuses: list[int] = []
    retry_after: set[str] = set()
    for start in range(0, CREATIONS, AT_ONCE):
        replies = await asyncio.gather(*(api.request("POST", "/uploads/", headers=headers)
                                         for _ in range(min(AT_ONCE, CREATIONS - start))))
        statuses += [reply.status_code for reply in replies]
        retry_after |= {reply.headers.get("Retry-After", "") for reply in replies if reply.status_code == 503}
    assert statuses.count(201) == BOUND
    assert statuses.count(503) == CREATIONS - BOUND
    assert "" not in retry_after and all(int(value) > 0 for value in retry_after)
    assert len(api.stored("resumable")) <= BOUND  # the refused ones left nothing behind

    # Past uploads.resumable_hours (24 by default) the sweep takes every one of them.
    later = time.time() + 25 * 3600
    monkeypatch.setattr(expiry, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))

    async def renew() -> None:
        return None

    counts = await sweep(api.client.app[RESOURCES], renew)
    assert counts["resumable"] == BOUND
    assert api.stored("resumable") == []
    assert (await api.request("POST", "/uploads/", headers=headers)).status_code == 201
