"""A format per size (`thumbnail.sizes` entries `name=WxH:format`) in process, embedded, on Redis +
RabbitMQ and on NATS: each size made in its format from one decode, served with its Content-Type, stored under
its extension, an animation kept where the format holds one, and the hostile cases (transparency
to JPEG, a 1x1 picture, a long animation).

CONTRACT.md, "Describing an item": `thumbnail.sizes` entries `name=WxH` or `name=WxH:format` (`jpeg`,
`png`, `webp`, `avif`, `gif`); without a format, as before (the source's kind).
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from PIL import Image, ImageSequence, ImageStat

from tests.api.conftest import Api, ApiFactory, Reply
from tests.corpus import ANIM_COLOURS, animated_gif, fit_size
from tests.harness import NATS_MODE
from thumbnailify.client import cli

SIZES = "default=100x100,card=400x400:webp,hero=1200x1200:avif,flat=64x64:png"
FORMATS = {"default": ("image/jpeg", "JPEG", "jpg"), "card": ("image/webp", "WEBP", "webp"),
           "hero": ("image/avif", "AVIF", "avif"), "flat": ("image/png", "PNG", "png")}
ALL_FORMATS = "default=100x100,j=100x100:jpeg,p=100x100:png,w=100x100:webp,a=100x100:avif,g=100x100:gif"


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def binary(service: Api, media_id: str, size: str) -> Reply:
    reply = await service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary", "size": size})
    assert reply.status_code == 200, reply.text
    return reply


def frames_of(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as image:
        return [frame.convert("RGBA") for frame in ImageSequence.Iterator(image)]


def durations(data: bytes) -> list[int]:
    """Each frame's time on screen in ms, as the file says."""
    with Image.open(io.BytesIO(data)) as image:
        shown = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()  # WebP and AVIF set a frame's duration as they decode it
            shown.append(image.info.get("duration"))
        return shown


def mean(image: Image.Image) -> list[float]:
    return ImageStat.Stat(image.convert("RGB")).mean


def close(got: list[float], want: tuple[int, ...], tolerance: float = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(got, want, strict=False))


async def test_each_size_in_its_own_format(make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)
    source = Image.open(io.BytesIO(photos["coffee.jpg"])).convert("RGB")
    media_id = await service.upload(photos["coffee.jpg"], "image/jpeg")
    status = await service.wait(media_id)
    assert status["state"] == "Completed", status
    assert status["thumbnail_types"] == {name: kind for name, (kind, _, _) in FORMATS.items()}
    boxes = {"default": 100, "card": 400, "hero": 1200, "flat": 64}
    assert status["sizes"] == {name: list(fit_size(*source.size, box)) for name, box in boxes.items()}
    for name, (kind, pillow_format, _) in FORMATS.items():
        reply = await binary(service, media_id, name)
        assert reply.headers["Content-Type"] == kind
        with Image.open(io.BytesIO(reply.content)) as image:
            assert image.format == pillow_format
            assert list(image.size) == status["sizes"][name]
            assert close(mean(image), tuple(round(v) for v in mean(source))), (name, mean(image))
        encoded = await service.get(f"/images/{media_id}/thumbnail", params={"size": name})
        assert encoded.headers["Content-Type"] == kind and base64.b64decode(encoded.content) == reply.content
    default = await service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
    assert default.headers["Content-Type"] == "image/jpeg"
    folder = service.media_dir("thumbs") / media_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.{ext}" for n, (_, _, ext) in FORMATS.items())
    assert (await service.delete(f"/images/{media_id}")).status_code == 204
    assert service.files_of(media_id) == []


@pytest.mark.parametrize("api_mode", ["embedded"])  # settings only: no backend is involved
async def test_health_names_each_size_type(make_api: ApiFactory) -> None:
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)
    body = (await service.get("/health")).json()
    assert body["thumbnail_types"] == {"default": None, "card": "image/webp", "hero": "image/avif",
                                       "flat": "image/png"}
    assert list(body["sizes"]) == list(FORMATS)


async def test_a_size_without_format_follows_the_source(make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    """The first size names no format: a PNG's is a PNG, a JPEG's a JPEG; the others stay theirs."""
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)
    media_id = await service.upload(photos["chelsea.png"], "image/png")
    status = await service.wait(media_id)
    assert status["thumbnail_types"]["default"] == "image/png" and status["thumbnail_types"]["card"] == "image/webp"
    assert (await binary(service, media_id, "default")).headers["Content-Type"] == "image/png"
    assert service.record(media_id)["thumbnail_type"] == "image/png"  # the first size's, as before


async def test_an_animation_keeps_its_frames_where_the_format_holds_them(make_api: ApiFactory) -> None:
    """WebP and AVIF keep every frame, in order and for as long; JPEG and PNG take the first."""
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=ALL_FORMATS)
    media_id = await service.upload(animated_gif(), "image/gif")
    status = await service.wait(media_id)
    assert status["state"] == "Completed", status
    expected_frames = {"default": 5, "g": 5, "w": 5, "a": 5, "j": 1, "p": 1}
    for name, count in expected_frames.items():
        data = (await binary(service, media_id, name)).content
        frames = frames_of(data)
        assert len(frames) == count, name
        if count > 1:
            assert durations(data) == [100] * count, name  # the GIF's 100 ms a frame
        assert all(frame.size == fit_size(200, 150) for frame in frames)
        for frame, colour in zip(frames, ANIM_COLOURS, strict=False):
            centre = frame.crop((30, 20, 90, 60))
            assert close(mean(centre), colour), (name, mean(centre), colour)


async def test_a_long_animation_to_webp_within_the_frame_cap(make_api: ApiFactory) -> None:
    """120 frames in, `thumbnail.max_frames` (100) out, each still its own picture."""
    colours = [(i * 2, 255 - i * 2, (i * 37) % 256) for i in range(120)]
    frames = [Image.new("RGB", (64, 48), colour) for colour in colours]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:], duration=30, loop=0)
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES="default=100x100:webp,still=32x32:jpeg")
    media_id = await service.upload(data.getvalue(), "image/gif")
    status = await service.wait(media_id)
    assert status["state"] == "Completed", status
    webp = frames_of((await binary(service, media_id, "default")).content)
    assert len(webp) == 100 and webp[0].size == (64, 48)
    for index in (0, 50, 99):
        assert close(mean(webp[index]), colours[index]), (index, mean(webp[index]))
    still = frames_of((await binary(service, media_id, "still")).content)
    assert len(still) == 1 and still[0].size == (32, 24) and close(mean(still[0]), colours[0])


async def test_transparency_to_jpeg_is_laid_on_white(make_api: ApiFactory) -> None:
    """JPEG has no alpha: a transparent pixel becomes white, a half-transparent red pink; PNG, WebP
    and AVIF keep the alpha."""
    picture = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (100, 0, 200, 50))
    picture.paste((255, 0, 0, 128), (100, 50, 200, 100))
    data = io.BytesIO()
    picture.save(data, "PNG")
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=ALL_FORMATS)
    media_id = await service.upload(data.getvalue(), "image/png")
    assert (await service.wait(media_id))["state"] == "Completed"
    jpeg = frames_of((await binary(service, media_id, "j")).content)[0]
    assert close(list(jpeg.getpixel((20, 25))), (255, 255, 255, 255), 4)  # transparent: white
    assert close(list(jpeg.getpixel((80, 10))), (255, 0, 0, 255), 16)  # opaque red: red
    assert close(list(jpeg.getpixel((80, 40))), (255, 128, 128, 255), 16)  # half red over white: pink
    for name in ("p", "w", "a"):
        kept = frames_of((await binary(service, media_id, name)).content)[0]
        assert kept.getpixel((20, 25))[3] == 0 and kept.getpixel((80, 10))[3] == 255, name
    gif = frames_of((await binary(service, media_id, "g")).content)[0]
    assert gif.getpixel((20, 25))[3] == 0  # GIF's transparency is on or off


async def test_one_pixel_in_every_format(make_api: ApiFactory) -> None:
    data = io.BytesIO()
    Image.new("RGB", (1, 1), (0, 128, 255)).save(data, "PNG")
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=ALL_FORMATS)
    media_id = await service.upload(data.getvalue(), "image/png")
    status = await service.wait(media_id)
    assert status["state"] == "Completed", status
    assert all(size == [1, 1] for size in status["sizes"].values()), status["sizes"]
    formats = {"default": "PNG", "j": "JPEG", "p": "PNG", "w": "WEBP", "a": "AVIF", "g": "GIF"}
    for name, pillow_format in formats.items():
        reply = await binary(service, media_id, name)
        with Image.open(io.BytesIO(reply.content)) as image:
            assert (image.format, image.size) == (pillow_format, (1, 1))
            assert close(list(image.convert("RGB").getpixel((0, 0))), (0, 128, 255), 12), name


@pytest.mark.parametrize("api_mode", ["embedded", "s3"])
async def test_an_identical_upload_reuses_each_format(make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    """The second upload of the same bytes copies every size under its own extension."""
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)
    first = await service.upload(photos["astronaut.jpg"], "image/jpeg")
    assert (await service.wait(first))["state"] == "Completed"
    second = await service.upload(photos["astronaut.jpg"], "image/jpeg")
    status = await service.wait(second)
    assert "reused from identical upload" in status["message"], status
    assert status["thumbnail_types"] == {name: kind for name, (kind, _, _) in FORMATS.items()}
    assert (await service.delete(f"/images/{first}")).status_code == 204
    for name, (kind, _, _) in FORMATS.items():
        copied = await binary(service, second, name)
        assert copied.headers["Content-Type"] == kind
        with Image.open(io.BytesIO(copied.content)) as image:
            assert image.format == FORMATS[name][1], name


@pytest.mark.parametrize("api_mode", ["embedded"])
async def test_the_command_line_writes_a_size_with_its_extension(make_api: ApiFactory, photos: dict[str, bytes],
                                                                tmp_path: Path) -> None:
    """`thumbnailify upload --size card` writes `<stem>.webp`: the extension of the size's type."""
    service = await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    (folder / "coffee.jpg").write_bytes(photos["coffee.jpg"])
    argv = ["upload", str(folder), "--out", str(out), "--size", "card", "--url", service.url.rstrip("/")]
    run = asyncio.ensure_future(asyncio.to_thread(cli.main, argv))
    while not run.done():  # the command waits for its result while the worker runs here
        await service.drain()
        await asyncio.sleep(0.05)
    assert run.result() == 0
    assert [path.name for path in out.iterdir()] == ["coffee.webp"]
    with Image.open(out / "coffee.webp") as image:
        assert (image.format, image.size) == ("WEBP", (400, 267))
