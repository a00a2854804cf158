"""The client library (client/): retries a 503 after its Retry-After with the same Idempotency-Key,
a bounded number of times; waits for a result across a server restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import PHOTOS
from tests.harness import ROOT, Service
from thumbnailify.client import calls
from thumbnailify.client.session import ATTEMPTS, ApiError, Client

pytestmark = pytest.mark.timeout(120)

ACCEPTED = {"media_id": "0b6cbd5c-3c47-4a1e-9a53-5ea1c1e3b0a4", "state": "Processing", "message": "Accepted"}


class ScriptedServer:
    """Answers POST /images from a script of (status, headers, body), recording each request."""

    def __init__(self, answers: list[tuple[int, dict[str, str], dict]]) -> None:
        self.answers = answers
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                scripted.requests.append((time.monotonic(), dict(self.headers), body))
                status, headers, answer = scripted.answers[min(len(scripted.requests), len(scripted.answers)) - 1]
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in (headers | {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def photo() -> Path:
    return PHOTOS / "astronaut.jpg"


def test_a_503_is_retried_after_its_retry_after_with_the_same_idempotency_key(photo: Path) -> None:
    busy = (503, {"Retry-After": "1"}, {"message": "redis is unavailable, try again later"})
    with ScriptedServer([busy, (202, {}, ACCEPTED)]) as server:
        assert Client(server.url, "k").upload(photo) == ACCEPTED
    (first_at, first, first_body), (second_at, second, second_body) = server.requests
    assert second_at - first_at >= 0.9  # waited as told (the lower bound only: never a speed limit)
    assert first["Idempotency-Key"] == second["Idempotency-Key"] and first["Idempotency-Key"]
    assert first_body == second_body == photo.read_bytes()  # the file again from its start, raw bytes
    assert first["Content-Type"] == "image/jpeg" and first["Authorization"] == "Bearer k"


def test_retries_are_bounded_and_the_last_answer_is_the_error(photo: Path) -> None:
    busy = (503, {"Retry-After": "0"}, {"message": "rabbitmq is unavailable, try again later"})
    with ScriptedServer([busy]) as server, pytest.raises(ApiError) as raised:
        Client(server.url).upload(photo)
    assert len(server.requests) == ATTEMPTS
    assert (raised.value.status, raised.value.message) == (503, "rabbitmq is unavailable, try again later")


def test_a_refusal_is_not_retried(photo: Path) -> None:
    with ScriptedServer([(415, {}, {"message": "the body is not image/jpeg"})]) as server, \
            pytest.raises(ApiError) as raised:
        Client(server.url).upload(photo)
    assert len(server.requests) == 1
    assert str(raised.value) == "415 the body is not image/jpeg"


def test_request_building() -> None:
    upload = calls.upload(b"\xff\xd8\xff", "image/jpeg", idempotency_key="key-1", binary=False)
    assert (upload.method, upload.target, upload.body) == ("POST", "/images", b"/9j/")
    assert upload.headers == {"Content-Type": "image/jpeg", "Idempotency-Key": "key-1"}
    assert calls.upload(b"x", "image/png", idempotency_key=None).target == "/images?encoding=binary"
    assert calls.thumbnail("m", "large").target == "/images/m/thumbnail?encoding=binary&size=large"
    assert calls.listing(10, "c/=", "Error").target == "/images?limit=10&cursor=c%2F%3D&state=Error"
    assert calls.status("../x").path == "/images/..%2Fx"


@pytest.fixture
def idle_service(tmp_path: Path) -> Iterator[Service]:
    with Service("embedded", tmp_path, workers=0) as service:
        yield service


def test_wait_follows_the_result_across_a_server_restart(idle_service: Service, photo: Path) -> None:
    """No worker at first: the job waits; the server is gone for a while, then restarts with one; the
    wait still ends Completed."""
    client = Client(idle_service.url, attempts=2)
    media_id = client.upload(photo)["media_id"]
    outcome: dict = {}
    waiter = threading.Thread(target=lambda: outcome.update(client.wait(media_id, timeout=60)))
    waiter.start()
    time.sleep(0.5)  # the waiter is on the event stream
    idle_service.stop()
    time.sleep(2)  # out of reach for longer than one call's retries (Client(attempts=2)) take
    idle_service.workers = 1
    idle_service.start()
    waiter.join(90)
    assert outcome["state"] == "Completed", outcome
    data, content_type = client.thumbnail(media_id)
    assert content_type == "image/jpeg" and data.startswith(b"\xff\xd8")


def test_the_readmes_python_example_runs_as_written(tmp_path: Path) -> None:
    """The README's Python example ("Using it from your own app"), run by a fresh interpreter in a
    folder holding photo.jpg, against the service at its URL: it writes the thumbnail."""
    found = re.search(r"\*\*Python\.\*\*.*?```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert found, "README.md has no Python example"
    shutil.copy(PHOTOS / "coffee.jpg", tmp_path / "photo.jpg")
    with Service("embedded", tmp_path / "service") as service:
        example = found[1].replace('"http://127.0.0.1:8080"', json.dumps(service.url))
        assert example != found[1], "the example names no http://127.0.0.1:8080"
        env = {key: value for key, value in os.environ.items() if not key.startswith("THUMBNAILIFY_")}
        done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False, env=env | {"PYTHONPATH": str(ROOT)})
        assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
        [item] = service.get("/images").json()["items"]
        data, media_type = service.thumbnail(item["media_id"])
        assert media_type == "image/jpeg" and (tmp_path / "thumb.jpg").read_bytes() == data
