"""Locust load for Thumbnailify.

    .venv/bin/locust -f stress/locustfile.py --host http://127.0.0.1:8080            # web UI
    .venv/bin/locust -f stress/locustfile.py --headless -u 20 -r 5 -t 1m --host ...  # CI-style
    .venv/bin/locust -f stress/locustfile.py IngestOnlyUser --headless -u 64 -r 64 -t 20s --host ...

ThumbnailUser walks a client's whole flow: upload, poll until done, fetch the thumbnail, delete.
IngestOnlyUser (weight 0: only when named or picked with --class-picker) posts one fixed ~100 KB
JPEG back to back, for the ingest benchmark. THUMBNAILIFY_API_KEY, when set, is sent as a Bearer
token; BENCH_PAYLOAD may name the JPEG IngestOnlyUser posts.

The requests are built by the client library (`client.calls`, the same the `thumbnailify` command
sends) and sent with locust's own HTTP client, so its statistics and gevent concurrency apply.
"""

from __future__ import annotations

import io
import os
import random
import sys
import time
from pathlib import Path

from locust import FastHttpUser, between, constant, task
from locust.contrib.fasthttp import ResponseContextManager
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from thumbnailify.client import calls

PHOTOS_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "photos"
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
POLL_INTERVAL = 0.1  # seconds between status polls: often enough to see a ~100 ms job finish
MAX_POLLS = 300  # ~30 s of polling, then the flow counts as failed
INGEST_TARGET_BYTES = 100_000


def _load_photos() -> list[tuple[str, bytes, str]]:
    """(name, bytes, Content-Type) of every test photo, read once for all users."""
    photos = []
    for path in sorted(PHOTOS_DIR.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        if content_type is not None:
            photos.append((path.name, path.read_bytes(), content_type))
    if not photos:
        raise RuntimeError(f"no .jpg/.png photos in {PHOTOS_DIR}")
    return photos


def _synthetic_photo(seed: int = 2024) -> bytes:
    """A deterministic photo-like ~100 KB JPEG: what a 12 MP shot looks like downscaled.

    Gradients give smooth sky-like areas, blurred shapes the edges, and fine noise the sensor
    grain, so the JPEG has realistic entropy instead of compressing to nearly nothing.
    """
    rng = random.Random(seed)
    size = (1200, 900)  # 4:3, a 12 MP frame downscaled
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = red.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(30, 300), rng.randrange(30, 300)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + w, y + h), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(3))
    amplitude = 10
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    noise = noise.point([v * 2 * amplitude // 255 for v in range(256)] * 3)
    image = ImageChops.add(image, noise, 1.0, -amplitude)
    # Pick the JPEG quality whose output is closest to the target size (deterministic search).
    best = b""
    for quality in range(95, 10, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        best = buffer.getvalue()
        if len(best) <= INGEST_TARGET_BYTES * 1.1:
            break
    return best


def _ingest_call() -> calls.Call:
    """The benchmark's upload, built once: base64 and no Idempotency-Key, as its baseline was measured."""
    path = os.environ.get("BENCH_PAYLOAD")
    data = Path(path).read_bytes() if path else _synthetic_photo()
    return calls.upload(data, "image/jpeg", idempotency_key=None, binary=False)


PHOTOS = _load_photos()
INGEST_CALL = _ingest_call()


class ApiUser(FastHttpUser):
    """Sends the client library's calls with locust's client, with the key when one is set."""

    abstract = True

    def on_start(self) -> None:
        self.auth = calls.bearer(os.environ.get("THUMBNAILIFY_API_KEY"))

    def send(self, call: calls.Call) -> ResponseContextManager:
        return self.client.request(call.method, call.target, name=call.name, data=call.body,
                                   headers=self.auth | call.headers, catch_response=True)


class ThumbnailUser(ApiUser):
    """A client's whole flow: POST a photo, poll its state, GET the thumbnail, DELETE it."""

    wait_time = between(0.5, 2)

    @task
    def thumbnail_flow(self) -> None:
        started = time.perf_counter()
        error: Exception | None = None
        try:
            self._flow()
        except FlowFailed as exc:
            error = exc
        # One extra entry per flow, so the report shows how long (and how often failing) the
        # upload -> thumbnail path takes as a user sees it, beside the single requests.
        self.environment.events.request.fire(
            request_type="FLOW",
            name="upload -> thumbnail -> delete",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            response=None,
            context={},
            exception=error,
        )

    def _flow(self) -> None:
        name, body, content_type = random.choice(PHOTOS)
        upload = calls.upload(body, content_type, idempotency_key=calls.new_idempotency_key())
        with self.send(upload) as response:
            if response.status_code != 202:
                response.failure(f"{name}: {response.status_code} {response.text[:200]}")
                raise FlowFailed(f"upload refused with {response.status_code}")
            media_id = response.json()["media_id"]
        state = self._wait(media_id)
        if state == "Completed":
            with self.send(calls.thumbnail(media_id)) as response:
                if response.status_code != 200:
                    response.failure(f"{response.status_code} {response.text[:200]}")
        with self.send(calls.delete(media_id)) as response:
            if response.status_code != 204:
                response.failure(f"{response.status_code} {response.text[:200]}")
        if state != "Completed":
            raise FlowFailed(f"{name} ended {state}")

    def _wait(self, media_id: str) -> str:
        """Poll until Completed or Error; the last poll fails when the job never finishes.

        Polling, not the event stream: each poll is a request locust can time and count.
        """
        for attempt in range(MAX_POLLS):
            with self.send(calls.status(media_id)) as response:
                if response.status_code not in (200, 202, 413, 415, 422):
                    response.failure(f"{response.status_code} {response.text[:200]}")
                    raise FlowFailed(f"status poll answered {response.status_code}")
                state = response.json().get("state")
                if state in calls.TERMINAL:
                    return state
                if attempt == MAX_POLLS - 1:
                    response.failure(f"still {state} after {MAX_POLLS} polls")
                    raise FlowFailed("never finished")
                response.success()  # 202 while Processing is the expected answer
            time.sleep(POLL_INTERVAL)  # gevent-patched: yields to the other users
        raise FlowFailed("never finished")


class IngestOnlyUser(ApiUser):
    """Uploads only, back to back: how many jobs per second the server can take in."""

    # Never mixed into a default run. Locust drops weight-0 classes even when they are named, so
    # the weight is 1 exactly when the command line names this class or lets the UI pick classes.
    weight = 1 if {"IngestOnlyUser", "--class-picker"} & set(sys.argv[1:]) else 0
    wait_time = constant(0)

    @task
    def upload(self) -> None:
        with self.send(INGEST_CALL) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code} {response.text[:200]}")


class FlowFailed(Exception):
    """The upload -> thumbnail flow did not end Completed."""
