"""`metadata` in the status body, embedded, on Redis + RabbitMQ and on NATS: a phone's photo tells its
upright size, format, camera and time, and never its place (GPS is neither returned nor kept in
any thumbnail); alpha, colour profile and an animation's frames; null for an Error and for a record
of an earlier release."""

from __future__ import annotations

import io
import json

import jsonschema
import piexif
import pillow_heif
import pytest
import yaml
from PIL import Image, ImageCms
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.api.conftest import Api
from tests.api.test_sizes import forget_fields
from tests.corpus import animated_gif
from tests.harness import NATS_MODE
from thumbnailify.server.ops import OPENAPI_FILE

GPS = {
    piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2411, 100)),
    piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (729, 100)),
    piexif.GPSIFD.GPSAltitude: (3500, 100), piexif.GPSIFD.GPSDateStamp: b"2026:07:14",
}
CAMERA = {piexif.ImageIFD.Make: b"Apple", piexif.ImageIFD.Model: b"iPhone 15 Pro"}
WHEN = {piexif.ExifIFD.DateTimeOriginal: b"2026:07:14 15:32:10", piexif.ExifIFD.OffsetTimeOriginal: b"+02:00"}
PLACE_WORDS = ("gps", "latitude", "longitude", "48/1", "2411", "729/100", "altitude")


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def phone_exif(orientation: int = 6) -> bytes:
    return piexif.dump({"0th": CAMERA | {piexif.ImageIFD.Orientation: orientation}, "Exif": WHEN, "GPS": GPS})


def phone_jpeg(photos: dict[str, bytes]) -> bytes:
    """A photo as a phone held upright saves it: pixels sideways, EXIF orientation 6, GPS."""
    picture = Image.open(io.BytesIO(photos["coffee.jpg"])).convert("RGB").rotate(90, expand=True)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, exif=phone_exif())
    return out.getvalue()


def assert_no_place(status: dict, thumbnail: bytes) -> None:
    text = json.dumps(status).lower()
    assert not any(word in text for word in PLACE_WORDS), text
    assert b"GPS" not in thumbnail and b"Exif" not in thumbnail
    assert not Image.open(io.BytesIO(thumbnail)).getexif()


async def test_a_phones_photo_tells_its_camera_and_time_but_never_its_place(api: Api,
                                                                            photos: dict[str, bytes]) -> None:
    data = phone_jpeg(photos)
    stored_w, stored_h = Image.open(io.BytesIO(data)).size
    media_id = await api.upload(data, "image/jpeg")
    status = await api.wait(media_id)
    assert status["state"] == "Completed", status
    assert status["metadata"] == {
        "width": stored_h, "height": stored_w,  # upright: EXIF orientation 6 turns it
        "format": "JPEG", "frames": None, "duration": None, "has_alpha": False, "color_profile": None,
        "captured_at": "2026-07-14T15:32:10+02:00", "camera_make": "Apple", "camera_model": "iPhone 15 Pro",
    }
    thumbnail, _ = await api.thumbnail(media_id)
    assert_no_place(status, thumbnail)
    listed = (await api.get("/images")).json()["items"][0]
    assert listed["metadata"] == status["metadata"]


async def test_a_phones_heic_tells_its_camera_and_time_but_never_its_place(api: Api,
                                                                           photos: dict[str, bytes]) -> None:
    picture = Image.open(io.BytesIO(photos["coffee.jpg"])).convert("RGB")
    heif = pillow_heif.from_pillow(picture)
    out = io.BytesIO()
    heif.save(out, format="HEIF", quality=80, exif=phone_exif(orientation=1))
    media_id = await api.upload(out.getvalue(), "image/heic")
    status = await api.wait(media_id)
    assert status["state"] == "Completed", status
    about = status["metadata"]
    assert (about["width"], about["height"]) == picture.size and about["format"] == "HEIC"
    assert about["captured_at"] == "2026-07-14T15:32:10+02:00"
    assert (about["camera_make"], about["camera_model"]) == ("Apple", "iPhone 15 Pro")
    thumbnail, _ = await api.thumbnail(media_id)
    assert_no_place(status, thumbnail)


async def test_alpha_and_the_colour_profiles_name(api: Api) -> None:
    profile = ImageCms.ImageCmsProfile("/usr/share/color/icc/colord/AdobeRGB1998.icc")
    picture = Image.new("RGBA", (120, 80), (200, 40, 40, 128))
    out = io.BytesIO()
    picture.save(out, "PNG", icc_profile=profile.tobytes())
    media_id = await api.upload(out.getvalue(), "image/png")
    about = (await api.wait(media_id))["metadata"]
    assert about["has_alpha"] is True and about["format"] == "PNG"
    assert about["color_profile"] == ImageCms.getProfileDescription(profile).strip()
    assert (about["width"], about["height"]) == (120, 80) and about["captured_at"] is None


async def test_an_animation_counts_every_frame(make_api: object) -> None:
    api = await make_api(THUMBNAILIFY_THUMBNAIL_MAX_FRAMES="2")  # type: ignore[operator]
    media_id = await api.upload(animated_gif(), "image/gif")
    about = (await api.wait(media_id))["metadata"]
    assert about["frames"] == 5 and about["format"] == "GIF" and about["duration"] is None
    assert (about["width"], about["height"]) == (200, 150)


async def test_none_for_an_error_or_a_record_of_an_earlier_release(api: Api, photos: dict[str, bytes]) -> None:
    failed = await api.upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png")
    assert (await api.wait(failed))["metadata"] is None
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")
    assert (await api.wait(media_id))["metadata"]["format"] == "JPEG"
    forget_fields(api, media_id, "metadata")
    status = (await api.get(f"/images/{media_id}")).json()
    assert status["state"] == "Completed" and status["metadata"] is None


def spec_validator(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator of the schema at `pointer` in server/openapi.yaml (its $refs resolved there)."""
    spec = yaml.safe_load(OPENAPI_FILE.read_text())
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"spec#{pointer}"}, registry=registry)


async def test_the_bodies_are_what_the_spec_says(api: Api, photos: dict[str, bytes]) -> None:
    """The new fields against server/openapi.yaml (schemathesis checks the rest in tests/system)."""
    done = await api.upload(phone_jpeg(photos), "image/jpeg")
    twin = await api.upload(jpeg_again(photos["coffee.jpg"]), "image/jpeg")
    failed = await api.upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png")
    await api.drain()
    status = spec_validator("/components/schemas/Status")
    for media_id in (done, twin, failed):
        status.validate((await api.get(f"/images/{media_id}")).json())
    found = await api.get("/images", params={"similar_to": done, "distance": "16"})
    spec_validator("/paths/~1images/get/responses/200/content/application~1json/schema").validate(found.json())
    assert found.json()["items"], found.json()


def jpeg_again(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=50)
    return out.getvalue()
