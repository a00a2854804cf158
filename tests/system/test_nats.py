"""The NATS family against real processes: an outage of NATS cut through the TCP proxy during
uploads, and a restart of a private nats-server in the middle of a batch; no 202 is lost, and an
item's whole history can be rebuilt from the log alone."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.harness import (
    NATS_MODE,
    NATS_PORT,
    PrivateNats,
    Service,
    distinct_jpeg,
    nats_history,
    on_nats,
    report,
    wait_until,
)
from tests.proxy import TcpProxy
from tests.system.test_outages import outage

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]
BATCH = 300


def test_nats_outage_during_uploads(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """NATS unreachable (behind a proxy that drops and refuses connections), then back. (nats-py
    holds requests through a short outage and sends them on reconnecting: with a 1 s timeout, the
    3 s outage is answered 503.)"""
    url = "nats://127.0.0.1:{}"
    with TcpProxy(NATS_PORT) as proxy, Service(NATS_MODE, tmp_path, THUMBNAILIFY_NATS_SERVERS=url.format(proxy.port),
                                               THUMBNAILIFY_NATS_TIMEOUT="1", workers=2) as service:
        outage(service, photos["coffee.jpg"], (proxy.cut, proxy.restore), "nats", "nats-outage")


def test_a_nats_restart_mid_batch_loses_no_upload(tmp_path: Path, photos: dict[str, bytes]) -> None:
    private = PrivateNats(tmp_path / "nats")
    private.start()
    try:
        with Service(NATS_MODE, tmp_path / "svc", THUMBNAILIFY_NATS_SERVERS=private.url, workers=2) as service:
            session = requests.Session()

            def post(index: int) -> tuple[int, str | None]:
                body = base64.b64encode(distinct_jpeg(photos["coffee.jpg"], index))
                for _ in range(60):  # a client retrying its 503s, as the contract asks
                    try:
                        response = session.post(f"{service.url}/images", data=body,
                                                headers={"Content-Type": "image/jpeg"}, timeout=30)
                    except requests.RequestException:
                        continue
                    if response.status_code == 202:
                        return 202, response.json()["media_id"]
                    assert response.status_code == 503, response.text
                    time.sleep(0.5)
                return 503, None

            with ThreadPoolExecutor(8) as pool:
                posted = [pool.submit(post, index) for index in range(BATCH)]
                time.sleep(2.0)  # uploads and jobs under way
                private.stop()
                private.start()
                results = [future.result() for future in posted]
            accepted = [media_id for status, media_id in results if status == 202 and media_id]
            finals = [service.wait(media_id, timeout=120)["state"] for media_id in accepted]
            report("nats-restart", posts=BATCH, accepted=len(accepted), completed=finals.count("Completed"))
            assert len(accepted) == BATCH and finals == ["Completed"] * BATCH
            # The log alone tells an item's story: accepted, its job, taken, completed.
            events = on_nats(service.env, lambda js, stream: nats_history(js, stream, accepted[0]))
            assert [event for event, _ in events][:1] == ["accepted"]
            assert any(event.startswith("queued.image") for event, _ in events)  # in the lane or its light part
            assert events[-1][0] == "completed" and events[-1][1]["state"] == "Completed"
    finally:
        private.stop()


def _healthy(service: Service) -> bool:
    try:
        return service.get("/health").status_code == 200
    except requests.RequestException:
        return False


def test_a_service_started_before_nats_is_ready_once_it_answers(tmp_path: Path, photos: dict[str, bytes]) -> None:
    private = PrivateNats(tmp_path / "nats")
    service = Service(NATS_MODE, tmp_path / "svc", THUMBNAILIFY_NATS_SERVERS=private.url, THUMBNAILIFY_NATS_TIMEOUT="1")
    service.start(wait=False)
    try:
        wait_until(lambda: _healthy(service), 30, "the server to answer")
        ready = service.get("/ready")
        assert ready.status_code == 503 and "nats" in ready.json()["failing"], ready.text
        assert service.post(photos["coffee.jpg"], "image/jpeg").status_code == 503
        private.start()
        service.wait_ready(60, (0, 0))
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id)["state"] == "Completed"
    finally:
        service.stop()
        service.cleanup()
        private.stop()
