"""Resumable uploads with real tus clients this project did not write: tuspy (PyPI) and
tus-js-client (npm, run by Node), against the running service in each mode; connections cut
through a TCP proxy, a server process killed between PATCHes with another one continuing, and
one killed mid-PATCH whose restart continues the upload.

(CONTRACT third part: "Resumable uploads (tus 1.0)". The protocol's details and hostile requests
are in tests/api/test_resumable.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from scripts.seaweed import SeaweedFS
from tests.corpus import write_noisy_jpeg
from tests.harness import ROOT, S3_MODE, Service, wait_until
from tests.proxy import TcpProxy
from thumbnailify.server.resumable.receive import LEASE_MARGIN

pytestmark = pytest.mark.timeout(300)

CHUNK = 1024 * 1024
NODE = "/usr/bin/node"
NODE_MODULES = ROOT / "var" / "node" / "node_modules"
JS_CLIENT = Path(__file__).with_name("tus_upload.cjs")


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 MP JPEG as a phone takes (noise keeps it at several MB, as a real one is)."""
    path = write_noisy_jpeg(tmp_path_factory.mktemp("photo") / "IMG_0001.jpg")
    assert path.stat().st_size > 4 * CHUNK
    return path


@pytest.fixture(scope="session")
def tus_js_client() -> Path:
    """tus-js-client from the npm registry into var/node: `make node`, which `make test` runs too."""
    subprocess.run(["make", "-s", "node"], cwd=ROOT, check=True, timeout=240)
    return NODE_MODULES


def offset_of(url: str) -> int:
    return int(requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10).headers["Upload-Offset"])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uploader(endpoint: str, path: Path, url: str | None = None) -> Uploader:
    client = TusClient(endpoint)
    metadata = {"filename": path.name, "filetype": "image/jpeg"}
    if url is None:
        return client.uploader(str(path), chunk_size=CHUNK, metadata=metadata)
    return client.uploader(str(path), chunk_size=CHUNK, metadata=metadata, url=url)


def media_id_of(service: Service, upload_url: str) -> str:
    answer = requests.get(f"{service.url}/uploads/{upload_url.rpartition('/')[2]}", timeout=10).json()
    assert answer["offset"] == answer["length"], answer
    return str(answer["media_id"])


def assert_completed_as_sent(service: Service, media_id: str, path: Path) -> None:
    done = service.wait(media_id, timeout=120)
    assert done["state"] == "Completed", done
    record = service.record(media_id)
    assert record is not None and record["sha256"] == sha256_of(path)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service("embedded", tmp_path_factory.mktemp("embedded"), workers=1, video_workers=0) as service:
        yield service


def test_tuspy_resumes_after_the_connection_is_cut_at_30_60_and_90_percent(embedded: Service,
                                                                          phone_photo: Path) -> None:
    size = phone_photo.stat().st_size
    with TcpProxy(embedded.port) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}/uploads/"
        upload = uploader(endpoint, phone_photo)
        for cut_at in (0.3, 0.6, 0.9):
            while upload.offset < size * cut_at:
                upload.upload_chunk()
            proxy.cut()
            with pytest.raises((TusCommunicationError, requests.ConnectionError)):
                upload.upload_chunk()
            proxy.restore()
            stopped = upload.offset
            upload = uploader(endpoint, phone_photo, url=upload.url)  # a new run, from the server's offset
            assert upload.offset == stopped
        upload.upload()
    assert_completed_as_sent(embedded, media_id_of(embedded, upload.url), phone_photo)
    assert embedded.stored("resumable") == []


def test_tuspy_resumes_patches_cut_mid_body_at_30_60_and_90_percent(embedded: Service, phone_photo: Path) -> None:
    """Each PATCH carries the whole rest of the file, and the link drops while it is on the wire:
    the server keeps what arrived and the client goes on from there."""
    size = phone_photo.stat().st_size
    with TcpProxy(embedded.port) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}/uploads/"
        upload = uploader(endpoint, phone_photo)
        upload.chunk_size = size
        for cut_at in (0.3, 0.6, 0.9):
            before = upload.offset
            proxy.drop_after(int(size * cut_at) - before)
            with pytest.raises((TusCommunicationError, requests.ConnectionError)):
                upload.upload_chunk()
            wait_until(lambda: offset_of(upload.url) > before, 10, "the cut PATCH's bytes kept")  # noqa: B023
            upload = uploader(endpoint, phone_photo, url=upload.url)
            upload.chunk_size = size
            assert before < upload.offset <= size * cut_at, (before, upload.offset, size * cut_at)
        upload.upload()
    assert_completed_as_sent(embedded, media_id_of(embedded, upload.url), phone_photo)


def run_js_client(tus_js_client: Path, endpoint: str, path: Path, *extra: str) -> dict[str, object]:
    result = subprocess.run(
        [NODE, str(JS_CLIENT), endpoint, str(path), "image/jpeg", str(CHUNK), *extra],
        capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"NODE_PATH": str(tus_js_client)},
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def js_client_stops_and_resumes(tus_js_client: Path, service: Service, path: Path) -> str:
    endpoint = f"{service.url}/uploads/"
    half = path.stat().st_size // 2
    stopped = run_js_client(tus_js_client, endpoint, path, str(half))
    assert isinstance(stopped["offset"], int) and stopped["offset"] >= half
    head = requests.head(str(stopped["url"]), headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert int(head.headers["Upload-Offset"]) == stopped["offset"]
    done = run_js_client(tus_js_client, endpoint, path, "", str(stopped["url"]))
    assert done["url"] == stopped["url"]
    media_id = str(done["media_id"])
    assert media_id == media_id_of(service, str(done["url"]))
    return media_id


def test_tus_js_client_stops_and_resumes_on_the_embedded_service(embedded: Service, tus_js_client: Path,
                                                                 phone_photo: Path) -> None:
    media_id = js_client_stops_and_resumes(tus_js_client, embedded, phone_photo)
    assert_completed_as_sent(embedded, media_id, phone_photo)


@pytest.fixture(scope="module")
def distributed(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    """Two server processes on one Redis, RabbitMQ and bucket (as two machines behind a balancer):
    the first with no workers, the second with one."""
    first = Service(S3_MODE, tmp_path_factory.mktemp("first"), workers=0, video_workers=0,
                    **seaweed.settings_env())
    shared = {name: first.env[name] for name in
              ("THUMBNAILIFY_REDIS_PREFIX", "THUMBNAILIFY_RABBITMQ_QUEUE", "THUMBNAILIFY_S3_PREFIX")}
    second = Service(S3_MODE, tmp_path_factory.mktemp("second"), workers=1, video_workers=0,
                     **(seaweed.settings_env() | shared))
    with first, second:
        yield first, second


def test_tus_js_client_with_media_in_the_bucket(distributed: tuple[Service, Service], tus_js_client: Path,
                                                 phone_photo: Path) -> None:
    first, second = distributed
    media_id = js_client_stops_and_resumes(tus_js_client, first, phone_photo)
    assert_completed_as_sent(second, media_id, phone_photo)
    assert first.objects("resumable") == []  # the pieces went once the item had its upload


def test_two_server_processes_share_one_upload_lock_and_its_cut_off_bytes(
        distributed: tuple[Service, Service], phone_photo: Path) -> None:
    first, second = distributed
    data = phone_photo.read_bytes()
    tus = {"Tus-Resumable": "1.0.0"}
    created = requests.post(f"{first.url}/uploads/", timeout=10, headers=tus | {
        "Upload-Length": str(len(data)), "Upload-Metadata": "filetype aW1hZ2UvanBlZw=="})
    assert created.status_code == 201, created.text
    path = created.headers["Location"]
    with socket.create_connection(("127.0.0.1", first.port)) as held:  # a PATCH still sending on the first
        held.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                      f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:300_000])
        time.sleep(0.5)
        other = requests.patch(f"{second.url}{path}", data=data[:1000], timeout=10, headers=tus | {
            "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        assert other.status_code == 409, other.text
    # The held connection is gone with 300,000 bytes sent: the second process sees them.
    deadline = time.monotonic() + 10
    while (offset := int(requests.head(f"{second.url}{path}", headers=tus, timeout=10).headers["Upload-Offset"])) \
            != 300_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert offset == 300_000
    gone = requests.delete(f"{second.url}{path}", headers=tus, timeout=10)
    assert gone.status_code == 204
    assert requests.head(f"{first.url}{path}", headers=tus, timeout=10).status_code == 404
    assert [name for name in first.objects("resumable") if path.rpartition("/")[2] in name] == []


def test_a_server_killed_between_patches_and_another_continues(distributed: tuple[Service, Service],
                                                               phone_photo: Path) -> None:
    first, second = distributed
    size = phone_photo.stat().st_size
    upload = uploader(f"{first.url}/uploads/", phone_photo)
    while upload.offset < size * 0.4:
        upload.upload_chunk()
    stopped = upload.offset
    first.kill_all()  # the server process (and its launcher) gone, as a crashed machine
    resumed = uploader(f"{second.url}/uploads/", phone_photo, url=upload.url.replace(first.url, second.url))
    assert resumed.offset == stopped
    resumed.upload()
    assert_completed_as_sent(second, media_id_of(second, resumed.url), phone_photo)
    assert second.objects("resumable") == []


def lock_is_free(url: str, offset: int) -> bool:
    """An empty PATCH at the upload's offset: 204 once no PATCH holds the upload (else 409)."""
    answer = requests.patch(url, data=b"", timeout=10, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert answer.status_code in (204, 409), answer.text
    return answer.status_code == 204


@pytest.mark.long
def test_a_server_killed_mid_patch_restarts_and_the_upload_resumes_on_the_new_process(
        tmp_path: Path, phone_photo: Path) -> None:
    """Killed (SIGKILL, the whole service) while a PATCH is on the wire, with part of its bytes on
    the volume past the offset the store names: the new process answers that offset, the dead
    one's lock runs out (upload_idle_timeout + LEASE_MARGIN), the next PATCH cuts the dead one's tail
    off before it writes, and tuspy ends the upload with the original's bytes."""
    data = phone_photo.read_bytes()
    idle = 2.0
    with Service("embedded", tmp_path / "service", workers=1,
                 THUMBNAILIFY_LIMITS_UPLOAD_IDLE_TIMEOUT=str(idle)) as service:
        upload = uploader(f"{service.url}/uploads/", phone_photo)
        upload.upload_chunk()
        stored = upload.offset
        path = upload.url.removeprefix(service.url)
        partial = service.media_dir("resumable") / path.rpartition("/")[2]
        with socket.create_connection(("127.0.0.1", service.port)) as held:
            held.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                          f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {stored}\r\n"
                          f"Content-Length: {len(data) - stored}\r\n\r\n").encode() + data[stored:stored + 2 * CHUNK])
            wait_until(lambda: partial.stat().st_size > stored + CHUNK, 10, "the PATCH's bytes on the volume")
            service.kill_all()
        assert partial.stat().st_size > stored  # a tail the store does not count
        service.start()
        assert offset_of(upload.url) == stored
        wait_until(lambda: lock_is_free(upload.url, stored), idle + LEASE_MARGIN + 10, "the dead PATCH's lock gone")
        resumed = uploader(f"{service.url}/uploads/", phone_photo, url=upload.url)
        assert resumed.offset == stored
        resumed.upload_chunk()
        assert partial.stat().st_size == resumed.offset  # the dead PATCH's tail cut off before writing
        resumed.upload()
        assert_completed_as_sent(service, media_id_of(service, resumed.url), phone_photo)
        assert service.stored("resumable") == []
