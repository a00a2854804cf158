"""The retention sweep in process, on NATS: an item past retention.media_days is found through the
list index (its keys' creation times) and removed as a DELETE removes it, its files, index entries
and perceptual hash with it; a younger one keeps everything. A volume failing under the sweep ends
its round as the volume unavailable (maintenance goes on). The sweep in the other modes, with
planted files and a running service: tests/system/test_retention.py.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.api.conftest import Api, ApiFactory
from tests.harness import NATS_MODE
from thumbnailify.server.background.sweep import sweep
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.resources import RESOURCES

DAY = 86400.0


@pytest.fixture
def api_mode() -> str:
    return NATS_MODE


async def created_at(api: Api, media_id: str) -> float:
    """The item's creation time as its store orders it (the score of its list entry)."""
    rows = await api.client.app[RESOURCES].store.page(1000, None, None)
    return next(score for found, score, _ in rows if found == media_id)


async def no_renewal() -> None:
    return None


async def test_an_item_past_media_days_is_removed_with_its_files_and_index_entries(
        make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    api = await make_api()
    old = await api.upload(photos["coffee.jpg"], "image/jpeg")
    assert (await api.wait(old))["state"] == "Completed"
    new = await api.upload(photos["astronaut.jpg"], "image/jpeg")
    assert (await api.wait(new))["state"] == "Completed"
    res = api.client.app[RESOURCES]
    hashes = await res.store.perceptual_hashes()
    assert old in hashes and new in hashes
    for media_id in (old, new):
        assert api.indexed(media_id) and api.files_of(media_id)
    # A media_days whose cutoff falls between the two uploads: the sweep compares creation times only.
    between = (await created_at(api, old) + await created_at(api, new)) / 2
    retention = res.settings.retention.model_copy(update={"media_days": (time.time() - between) / DAY})
    counts = await sweep(dataclasses.replace(res, settings=res.settings.model_copy(update={"retention": retention})),
                         no_renewal)
    assert counts["media"] == 1
    assert (await api.get(f"/images/{old}")).status_code == 404
    assert api.record(old) is None and not api.indexed(old) and api.files_of(old) == []
    assert old not in await res.store.perceptual_hashes()
    assert [found for found, _, _ in await res.store.page(10, None, None)] == [new]
    assert api.record(new) is not None and api.indexed(new)
    assert (await api.thumbnail(new))[0]
    assert await sweep(res, no_renewal) == {"resumable": 0}  # media_days 0 (forever): nothing more goes


async def test_a_volume_failing_under_the_sweep_is_unavailable_not_a_crash(make_api: ApiFactory) -> None:
    """An error of the volume while the sweep lists it (here a file where the thumbnails' folder
    was) is the volume unavailable, which the maintenance loop logs and retries; any other error
    would end the loop, and with it every later sweep and recovery pass of this server."""
    api = await make_api()
    thumbs = api.media_dir("thumbs")
    thumbs.mkdir(parents=True, exist_ok=True)
    thumbs.rmdir()
    thumbs.write_bytes(b"")
    res = api.client.app[RESOURCES]
    with pytest.raises(BackendUnavailable) as raised:
        await sweep(res, no_renewal)
    assert raised.value.backend == "files"
    thumbs.unlink()
    thumbs.mkdir()
    assert await sweep(res, no_renewal) == {"resumable": 0}
