"""Placeholders (ThumbHash, BlurHash) in the status body of every Completed item, in process,
embedded, on Redis + RabbitMQ and on NATS: the reference decoders (npm `thumbhash`, `blurhash`, under Node)
paint them in the thumbnail's colours; an Error has none, nor has a record of an earlier release."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import Api
from tests.api.test_sizes import forget_fields
from tests.corpus import animated_gif
from tests.harness import NATS_MODE
from tests.unit.test_fingerprints import linear_mean, reference_packages
from thumbnailify.worker.fingerprints import SAMPLE_SIDE

ROOT = Path(__file__).resolve().parents[2]
NODE = "/usr/bin/node"
SCRIPT = ROOT / "tests" / "unit" / "placeholders.mjs"
MEAN_DISTANCE = 16  # of a decoded placeholder's mean colour from the thumbnail's, 0..255 per channel


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def reference() -> Path:
    return reference_packages()


def decoded_means(reference: Path, thumbnail: Image.Image, placeholder: dict[str, str]) -> dict[str, np.ndarray]:
    """The mean colours the reference decoders paint (BlurHash's averaged in linear light)."""
    thumbnail.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    rgba = np.asarray(thumbnail.convert("RGBA"))
    item = {"width": rgba.shape[1], "height": rgba.shape[0], "rgba": base64.b64encode(rgba.tobytes()).decode()}
    done = subprocess.run([NODE, str(SCRIPT), str(reference)], input=json.dumps({"items": [item | placeholder]}),
                          capture_output=True, text=True, check=True, timeout=60)
    out = json.loads(done.stdout)[0]
    return {"thumbhash": np.array(out["thumbhash_mean"]), "blurhash": np.array(out["blurhash_mean"])}


@pytest.mark.parametrize("name", ["coffee.jpg", "chelsea.png"])
async def test_a_completed_photo_has_placeholders_in_its_colours(api: Api, photos: dict[str, bytes], name: str,
                                                                 reference: Path) -> None:
    media_id = await api.upload(photos[name], "image/jpeg" if name.endswith("jpg") else "image/png")
    status = await api.wait(media_id)
    assert status["state"] == "Completed", status
    placeholder = status["placeholder"]
    assert set(placeholder) == {"thumbhash", "blurhash"}
    assert len(placeholder["blurhash"]) == 28
    assert 5 <= len(base64.b64decode(placeholder["thumbhash"], validate=True)) <= 30
    data, _ = await api.thumbnail(media_id)
    thumbnail = Image.open(io.BytesIO(data)).convert("RGBA")
    want = np.asarray(thumbnail)[..., :3].reshape(-1, 3).mean(axis=0)
    means = decoded_means(reference, thumbnail, placeholder)
    assert np.abs(means["thumbhash"] - want).max() < MEAN_DISTANCE, (means, want)
    linear = linear_mean(np.asarray(thumbnail)[..., :3])
    assert np.abs(means["blurhash"] - linear).max() < MEAN_DISTANCE, (means, linear)
    listed = (await api.get("/images")).json()["items"]
    assert listed[0]["placeholder"] == placeholder


async def test_an_animation_has_the_first_frames_placeholder(api: Api, reference: Path) -> None:
    gif = animated_gif()
    media_id = await api.upload(gif, "image/gif")
    status = await api.wait(media_id)
    assert status["state"] == "Completed", status
    first = Image.open(io.BytesIO(gif)).convert("RGB")
    want = np.asarray(first).reshape(-1, 3).mean(axis=0)
    means = decoded_means(reference, first.convert("RGBA"), status["placeholder"])
    assert np.abs(means["thumbhash"] - want).max() < MEAN_DISTANCE, (means, want)


async def test_an_error_has_no_placeholder(api: Api) -> None:
    media_id = await api.upload(b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg")
    status = await api.wait(media_id)
    assert status["state"] == "Error", status
    assert status["placeholder"] is None
    assert status["phash"] is None


async def test_processing_has_none_yet(api: Api, photos: dict[str, bytes]) -> None:
    response = await api.post(photos["coffee.jpg"], "image/jpeg")
    assert response.json().get("placeholder") is None
    status = (await api.get(f"/images/{response.json()['media_id']}")).json()
    assert status["state"] == "Processing"
    assert status["placeholder"] is None


async def test_a_record_of_an_earlier_release_reads_with_null(api: Api, photos: dict[str, bytes]) -> None:
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")
    assert (await api.wait(media_id))["placeholder"] is not None
    forget_fields(api, media_id, "thumbhash", "blurhash", "phash")
    status = (await api.get(f"/images/{media_id}")).json()
    assert status["state"] == "Completed"
    assert status["placeholder"] is None
    assert status["phash"] is None


async def test_an_identical_upload_reuses_its_twins_placeholder(api: Api, photos: dict[str, bytes]) -> None:
    first = await api.upload(photos["coffee.jpg"], "image/jpeg")
    made = await api.wait(first)
    second = await api.upload(photos["coffee.jpg"], "image/jpeg")
    reused = await api.wait(second)
    assert "reused" in reused["message"]
    assert reused["placeholder"] == made["placeholder"]
    assert reused["phash"] == made["phash"]
