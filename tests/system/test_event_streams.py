"""Event streams cannot take a server's descriptors: the open files limit raised to the hard limit
at start, at most server.max_event_streams per process (and at most half the limit; more get a
503), each stream ended after server.event_stream_seconds, and a reader that stops reading
disconnected. On the real service (embedded: the streams do not depend on the backends)."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.harness import Service, wait_until
from thumbnailify.client.session import Client

pytestmark = pytest.mark.timeout(240)

# The service starts with a soft limit of 64 open files and may raise it to 256: half of that, 128,
# is its cap on streams (below the default server.max_event_streams, 512).
OPEN_FILES = (64, 256)
STREAM_CAP = 128
MORE_STREAMS_THAN_FILES = 300


def tiny_png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (index % 256, index // 256 % 256, 7)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service("embedded", tmp_path_factory.mktemp("streams"), workers=0, webhook_workers=1,
                      open_files=OPEN_FILES, THUMBNAILIFY_SERVER_EVENT_SEND_TIMEOUT="1")
    with service:
        yield service


def open_stream(service: Service, path: str = "/events", receive_buffer: int | None = None,
                read_head: bool = True) -> tuple[socket.socket, int]:
    """A raw connection asking for an event stream, and its HTTP status (0 when not read)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", service.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    if not read_head:
        return sock, 0
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection: {head!r}"
        head += chunk
    return sock, int(head.split(b" ", 2)[1])


def metric(service: Service, name: str) -> float:
    """A metric's value; 0 when there is none yet (then a later reading must show the change)."""
    found = re.search(rf"^{name} (\S+)$", service.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_every_process_takes_its_hard_open_files_limit(svc: Service) -> None:
    assert svc.process is not None
    for pid in (svc.process.pid, svc.server_pid(), *svc.worker_pids("webhook")):
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(r"^Max open files\s+256\s+256\s", limits, re.MULTILINE), limits
    assert f"(open files limit 256, at most {STREAM_CAP} event streams)" in svc.logs()


def test_more_streams_than_open_files_leave_the_rest_of_the_api_working(svc: Service) -> None:
    """More streams than the process has descriptors: the first STREAM_CAP are served, the others
    are a 503 with Retry-After and a JSON message, and meanwhile health, uploads, the page and the
    open streams work."""
    refused_before = metric(svc, "thumbnailify_event_streams_refused_total")
    served: list[socket.socket] = []
    try:
        for _ in range(MORE_STREAMS_THAN_FILES):
            sock, status = open_stream(svc)
            if status == 200:
                served.append(sock)
            else:
                assert status == 503
                sock.close()
        assert len(served) == STREAM_CAP
        refused = svc.get("/events")
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert refused.json() == {"message": "too many event streams open on this server, try again later"}
        assert svc.get("/health").status_code == 200
        assert svc.get("/").status_code == 200
        media_id = svc.upload(tiny_png(0), "image/png")
        assert svc.get(f"/images/{media_id}/events").status_code == 503  # the cap counts both kinds
        served[0].settimeout(10)
        seen = b""
        while media_id.encode() not in seen:  # an open stream still gets every change
            chunk = served[0].recv(65536)
            assert chunk
            seen += chunk
        assert metric(svc, "thumbnailify_event_streams") == STREAM_CAP
        assert metric(svc, "thumbnailify_event_streams_refused_total") - refused_before == (
            MORE_STREAMS_THAN_FILES - STREAM_CAP + 2)
    finally:
        for sock in served:
            sock.close()
    wait_until(lambda: metric(svc, "thumbnailify_event_streams") == 0, 30, "the streams closed")
    with svc.get("/events", stream=True) as again:
        assert again.status_code == 200  # slots free again


def upload_many(service: Service, files: int, first: int) -> list[str]:
    parts = [("file", (f"{first + i}.png", tiny_png(first + i), "image/png")) for i in range(files)]
    response = service.http.post(f"{service.url}/images", files=parts, timeout=60)
    assert response.status_code == 202, response.text
    return [item["media_id"] for item in response.json()["items"]]


def test_a_reader_that_stops_reading_is_disconnected(svc: Service) -> None:
    """A stream whose reader never reads, with many changes: its events cannot leave within
    server.event_send_timeout, so the server drops it (one stream fewer, a cut counted, no error
    logged), while a reader that keeps up gets every change. (The server bounds a stream's socket
    send buffer: left to the kernel's tuning, a few megabytes, all the changes could fit in it.)"""
    cut_before = metric(svc, "thumbnailify_event_streams_cut_total")
    keeping_up, status = open_stream(svc)
    assert status == 200
    received = bytearray()

    def read() -> None:
        keeping_up.settimeout(None)
        while chunk := keeping_up.recv(65536):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stalled, _ = open_stream(svc, receive_buffer=2048, read_head=False)
    try:
        wait_until(lambda: metric(svc, "thumbnailify_event_streams") == 2, 10, "both streams open")
        accepted: list[str] = []
        for batch in range(10):  # each change is a few hundred bytes: far more than the buffers on the way
            accepted += upload_many(svc, 100, 1 + batch * 100)
        wait_until(lambda: metric(svc, "thumbnailify_event_streams") == 1, 30, "the stalled stream dropped")
        assert metric(svc, "thumbnailify_event_streams_cut_total") - cut_before == 1
        assert "Traceback" not in svc.logs()  # dropping a stalled reader is routine, not an error
        wait_until(lambda: accepted[-1].encode() in received, 30, "the last change at the reader that keeps up")
        assert all(media_id.encode() in received for media_id in accepted)
        assert svc.get("/health").status_code == 200
    finally:
        stalled.close()
        keeping_up.shutdown(socket.SHUT_RDWR)
        keeping_up.close()
        reader.join(10)


def test_a_stream_ends_after_its_lifetime(tmp_path: Path) -> None:
    """Both kinds of stream end after server.event_stream_seconds, the media's one before its item
    is terminal: the client then reads the status and opens the stream again."""
    with Service("embedded", tmp_path, workers=0, video_workers=0,
                 THUMBNAILIFY_SERVER_EVENT_STREAM_SECONDS="2") as service:
        with service.http.get(f"{service.url}/events", stream=True, timeout=(5, 30)) as response:
            assert response.status_code == 200
            ends = time.monotonic() + 30  # a stream that never ends gets a keep-alive every 15 s
            for chunk in response.iter_content(None):
                assert time.monotonic() < ends, f"the stream goes on: {chunk!r}"
        media_id = service.upload(tiny_png(1), "image/png")
        events = list(Client(service.url).events(media_id))
        assert [(name, body["state"]) for name, body in events] == [("status", "Processing")]
        assert metric(service, "thumbnailify_event_streams") == 0
