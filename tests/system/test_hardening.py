"""The server under hostile or bursty clients, on the real services (issue "Hardening first").

Each test provokes one defect an earlier review reproduced and asserts what a client and the
operator see now: bursts wait instead of failing, compressed and padded bodies are refused
before they cost anything, slow uploads are cut off, early answers come before "100 Continue",
no internals leak, and nothing is left behind on the volume.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import signal
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from tests.harness import ALL_MODES, PrivateRedis, Service, wait_until

pytestmark = pytest.mark.timeout(240)


def small_png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


def raw_request(port: int, head: str | bytes, body: bytes = b"", read_timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client library fixing them up); the first response back."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall((head.encode() if isinstance(head, str) else head) + body)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def closed_by_server(sock: socket.socket, within: float = 5) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            continue
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


# -- 1. a burst of 1,000 clients is not an outage ---------------------------------------------
async def burst(url: str, clients: int, png: bytes, media_id: str) -> Counter:
    body = base64.b64encode(png)
    statuses: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def client(index: int) -> None:
            if index % 2:
                async with session.get(f"{url}/images/{media_id}") as response:
                    statuses[f"GET {response.status}"] += 1
            else:
                async with session.post(f"{url}/images", data=body, headers={"Content-Type": "image/png"}) as response:
                    statuses[f"POST {response.status}"] += 1
        await asyncio.gather(*(client(i) for i in range(clients)))
    return statuses


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_burst_of_1000_concurrent_clients_gets_no_5xx(mode: str, tmp_path: Path) -> None:
    with Service(mode, tmp_path, workers=0) as service:
        png = small_png()
        media_id = service.upload(png, "image/png")
        statuses = asyncio.run(burst(service.url, 1000, png, media_id))
        print(f"\nburst-{mode}: {dict(statuses)}")
        assert statuses == Counter({"GET 202": 500, "POST 202": 500}), statuses
        assert service.get("/images", params={"limit": 1000}).json()["items"].__len__() == 501


# -- the keyed service (2. compressed bodies and blank padding: tests/api/test_hardening.py) ---
@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Service:
    """Distributed, with an API key, a CORS origin, short upload timeouts and room for one upload."""
    service = Service(
        "distributed", tmp_path_factory.mktemp("keyed"),
        THUMBNAILIFY_AUTH_API_KEY="k3y",
        THUMBNAILIFY_SERVER_CORS_ORIGINS="https://app.example,http://127.0.0.1:9",
        THUMBNAILIFY_LIMITS_UPLOAD_IDLE_TIMEOUT="1.5",
        THUMBNAILIFY_LIMITS_UPLOAD_TIMEOUT="6",
        THUMBNAILIFY_LIMITS_UPLOAD_MEMORY="400KiB",
        THUMBNAILIFY_SERVER_KEEPALIVE_TIMEOUT="2",
    )
    service.http.headers["Authorization"] = "Bearer k3y"
    with service:
        yield service


# -- 3. slow uploads are cut off and wait for memory instead of growing the process -----------
def test_a_stalled_upload_is_cut_off_with_408(keyed: Service) -> None:
    body = base64.b64encode(small_png())
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=20) as sock:
        sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nContent-Type: image/png\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:20])
        started = time.monotonic()
        status, _, payload = read_response(sock)
        waited = time.monotonic() - started
        assert status == 408
        assert "stalled" in json.loads(payload)["message"]
        assert 1.0 < waited < 10, waited
        assert closed_by_server(sock)


def test_a_request_whose_headers_never_end_is_closed(keyed: Service) -> None:
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=20) as sock:
        sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Ty")
        started = time.monotonic()
        assert closed_by_server(sock, within=10)
        assert time.monotonic() - started < 6


def test_a_trickling_upload_hits_the_total_timeout(keyed: Service) -> None:
    body = base64.b64encode(small_png() + bytes(50_000))
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=30) as sock:
        sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nContent-Type: image/png\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        sock.settimeout(0.2)
        status = None
        for offset in range(0, len(body), 100):  # 100 bytes a second: never idle, never done
            try:
                sock.sendall(body[offset:offset + 100])
            except OSError:
                break
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                pass
        sock.settimeout(10)
        status, _, payload = read_response(sock)
        assert status == 408, payload
    assert list(keyed.media_dir("raw").iterdir()) == []


def test_uploads_past_the_memory_bound_wait_their_turn(keyed: Service) -> None:
    """upload_memory fits one upload: a second waits while the first stalls, then goes through."""
    body = base64.b64encode(small_png())
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=20) as stalled:
        stalled.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nContent-Type: image/png\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(0.3)  # the stalled upload holds the only slot now
        started = time.monotonic()
        second = keyed.post(small_png((10, 200, 10)), "image/png")
        assert second.status_code == 202, second.text
        assert time.monotonic() - started > 0.8  # it waited for the slot the stalled one held
        assert read_response(stalled)[0] == 408


# -- 4. Expect: 100-continue gets the final answer when the headers decide it ---------------------
@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Type: image/png\r\nContent-Length: 10000000000\r\n", 413),
    ("Content-Type: image/tiff\r\nContent-Length: 100\r\n", 415),
    ("Content-Type: image/png\r\nContent-Encoding: gzip\r\nContent-Length: 100\r\n", 415),
    ("Content-Length: 100\r\n", 400),
])
def test_expect_100_continue_is_answered_with_the_final_error(keyed: Service, headers: str, status: int) -> None:
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as sock:
        sock.sendall(f"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\n{headers}"
                     "Expect: 100-continue\r\n\r\n".encode())
        got, response_headers, payload = read_response(sock)
        assert got == status, payload
        assert response_headers["content-type"].startswith("application/json")
        assert closed_by_server(sock)  # closed, not drained: the body is never read


def test_expect_100_continue_without_a_key_is_401(keyed: Service) -> None:
    status, _, _ = raw_request(keyed.port, "POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                           "Content-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n")
    assert status == 401


def test_expect_100_continue_then_the_body(keyed: Service) -> None:
    body = base64.b64encode(small_png())
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as sock:
        sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nContent-Type: image/png\r\n"
                     + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert read_response(sock)[0] == 202


# -- 12. malformed requests (conditional requests, cursors, CORS: tests/api/test_hardening.py) ---
def test_malformed_requests_get_json_and_one_quiet_log_line(keyed: Service) -> None:
    before = keyed.logs()
    for head in (b"GET /images HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                 b"GET /images HTTP/1.1\r\nContent-Length: -4\r\n\r\n",
                 b"GET / HTTP/9.9\r\n\r\n"):
        status, headers, payload = raw_request(keyed.port, head)
        assert status == 400
        assert headers["content-type"].startswith("application/json")
        assert json.loads(payload)["message"].startswith("malformed request")
    new = keyed.logs()[len(before):]
    assert "Traceback" not in new and " ERROR " not in new
    assert new.count("malformed request from") == 3


# -- 10, 11. hostile headers and paths --------------------------------------------------------
def test_control_characters_cannot_forge_log_lines(keyed: Service) -> None:
    forged = "2026-01-01 00:00:00,000 INFO server[1] server.access: GET /admin status=200"
    path = "/images/%0A" + forged.replace(" ", "%20") + "%0D%0A%E2%80%A8x"
    raw_request(keyed.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\n\r\n")
    wait_until(lambda: "GET /admin" in keyed.logs(), 10, "the request's log line")
    lines = keyed.logs().splitlines()
    assert not any(line.startswith(forged[:10]) and "GET /admin" in line for line in lines)
    assert any("\\x0a" + forged in line for line in lines)


# -- 6, 7, 9. nothing orphaned, nothing leaked --------------------------------------------------
@pytest.mark.parametrize("mode", ALL_MODES)
def test_delete_during_a_files_fault_is_finished_by_its_retry(mode: str, tmp_path: Path) -> None:
    with Service(mode, tmp_path, workers=2, video_workers=1, webhook_workers=1) as service:
        media_id = service.upload(small_png(), "image/png")
        assert service.wait(media_id)["state"] == "Completed"
        assert service.files_of(media_id)
        thumbs = service.media_dir("thumbs")
        thumbs.rename(thumbs.with_name("thumbs-away"))
        thumbs.write_bytes(b"")  # a file where the folder was: every removal in it fails
        try:
            failed = service.delete(f"/images/{media_id}")
        finally:
            thumbs.unlink()
            thumbs.with_name("thumbs-away").rename(thumbs)
        assert failed.status_code == 503
        assert failed.json() == {"message": "files is unavailable, try again later"}  # no path in it
        assert "Not a directory" in service.logs()  # the detail is in the log
        retried = service.delete(f"/images/{media_id}")
        assert retried.status_code == 404
        assert service.files_of(media_id) == []


def test_outage_answers_name_the_backend_but_leak_nothing(tmp_path: Path) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        service = Service("distributed", tmp_path / "svc", THUMBNAILIFY_REDIS_URL=private.url)
        with service:
            private.stop()
            response = service.post(small_png(), "image/png")
            ready = service.get("/ready")
            private.start()
    finally:
        private.stop()
    assert response.status_code == 503
    assert response.json() == {"message": "redis is unavailable, try again later"}
    assert ready.status_code == 503
    text = ready.text
    assert "redis" in ready.json()["failing"]
    assert not re.search(r"127\.0\.0\.1|Error \d+|connecting|:\d{4,5}", text), text
    assert "Error 111" in service.logs() or "Connection refused" in service.logs()


def test_a_server_killed_mid_upload_leaves_no_file_under_a_final_name(tmp_path: Path) -> None:
    with Service("embedded", tmp_path, workers=0) as service:
        body = base64.b64encode(small_png() + bytes(3 << 20))
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
            raw = service.media_dir("raw")
            wait_until(lambda: any(p.stat().st_size > 1 << 20 for p in raw.iterdir()), 10, "the upload to spill")
            os.kill(service.server_pid(), signal.SIGKILL)
        left = [p.name for p in raw.iterdir()]
        assert left and all(p.startswith(".") and p.endswith(".tmp") for p in left), left
        assert not any(is_uuid(p) for p in left)


def is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False
