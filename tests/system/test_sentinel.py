"""Redis through Sentinel (redis.sentinels): kill -9 the master under load; server and workers find
the new master by themselves, a 503 during the switch at most, nothing accepted is lost, and the
live event stream follows too (CONTRACT.md, second part, "Past one machine")."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.corpus import TINY_PNG
from tests.harness import Service, free_port, wait_until

pytestmark = pytest.mark.timeout(300)
MASTER = "thumbs"
# Sentinel passes over a replica whose link to the master has been down longer than 10x this
# (beyond the time the master is known down). A loaded machine can put a sentinel in TILT mode for
# 30 s, during which it notices nothing; after that, with 1 s, no replica would qualify ever again.
DOWN_AFTER_MS = 5000


class SentinelGroup:
    """A master, two replicas and three sentinels of the test's own, on spare ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis_ports = [free_port() for _ in range(3)]  # the first starts as master
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.pids: dict[int, int] = {}

    def _start(self, port: int, *args: str) -> None:
        pidfile = self.workdir / f"{port}.pid"
        subprocess.run(["redis-server", *args, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--pidfile", str(pidfile), "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                        "--logfile", str(self.workdir / f"{port}.log")], check=True)
        wait_until(lambda: pidfile.exists() and self.answers(port), 10, f"redis on {port}")
        self.pids[port] = int(pidfile.read_text())

    def start(self) -> SentinelGroup:
        master, *replicas = self.redis_ports
        self._start(master)
        for port in replicas:
            self._start(port, "--replicaof", "127.0.0.1", str(master))
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"sentinel monitor {MASTER} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            self._start(port, str(conf), "--sentinel")
        wait_until(lambda: all(self.sees_replicas(port) for port in self.sentinel_ports), 20, "sentinels to see it all")
        return self

    @staticmethod
    def answers(port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def sees_replicas(self, sentinel_port: int) -> bool:
        client = redis.Redis(port=sentinel_port, decode_responses=True)
        try:
            return len(client.sentinel_slaves(MASTER)) == 2 and len(client.sentinel_sentinels(MASTER)) == 2
        except redis.RedisError:
            return False
        finally:
            client.close()

    def calm(self) -> bool:
        """No sentinel in TILT mode (its timer ran late, so it distrusts what it saw)."""
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, decode_responses=True)
            try:
                if client.info("sentinel")["sentinel_tilt"]:
                    return False
            finally:
                client.close()
        return True

    def master_port(self) -> int:
        client = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        try:
            return int(client.sentinel_get_master_addr_by_name(MASTER)[1])
        finally:
            client.close()

    def kill_master(self) -> int:
        port = self.master_port()
        subprocess.run(["kill", "-9", str(self.pids.pop(port))], check=True)
        return port

    def stop(self) -> None:
        for pid in self.pids.values():
            subprocess.run(["kill", str(pid)], check=False)

    @property
    def env(self) -> dict[str, str]:
        return {
            "THUMBNAILIFY_REDIS_URL": "redis://127.0.0.1:1/0",  # unused: Sentinel names the master
            "THUMBNAILIFY_REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
            "THUMBNAILIFY_REDIS_SENTINEL_MASTER": MASTER,
            "THUMBNAILIFY_REDIS_WAIT_REPLICAS": "1",
        }


def watch_events(url: str, seen: list[dict], stop: threading.Event) -> None:
    """GET /events, again whenever it ends, keeping every status event."""
    while not stop.is_set():
        try:
            with requests.get(f"{url}/events", stream=True, timeout=(2, 20)) as response:
                for line in response.iter_lines(chunk_size=1, decode_unicode=True):  # each line as it comes
                    if line and line.startswith("data:"):
                        seen.append(json.loads(line[5:]))
                    if stop.is_set():
                        return
        except requests.RequestException:
            time.sleep(0.2)


@pytest.mark.long
def test_a_failover_under_load_loses_nothing_accepted(tmp_path: Path) -> None:
    group = SentinelGroup(tmp_path).start()
    service = Service("distributed", tmp_path / "service", workers=2, **group.env, video_workers=1, webhook_workers=1)
    events: list[dict] = []
    stop = threading.Event()
    try:
        with service:
            watcher = threading.Thread(target=watch_events, args=(service.url, events, stop), daemon=True)
            watcher.start()
            accepted: list[str] = []
            answers: list[int] = []
            killed_at = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                response = service.post(TINY_PNG, "image/png")
                answers.append(response.status_code)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    accepted.append(response.json()["media_id"])
                else:
                    assert response.json()["message"] == "redis is unavailable, try again later"
                    assert response.headers["Retry-After"]
                if killed_at is None and len(accepted) == 30:
                    wait_until(group.calm, 60, "no sentinel in TILT mode")
                    old_master = group.kill_master()
                    killed_at = len(answers)
                if killed_at is not None and answers[killed_at:].count(202) >= 30:
                    break
            assert killed_at is not None and answers[killed_at:].count(202) >= 30, answers
            assert group.master_port() != old_master
            failed = answers[killed_at:].count(503)
            for media_id in accepted:
                status = service.wait(media_id, timeout=60)
                assert status["state"] == "Completed", status

            def stream_sees_a_new_upload() -> bool:
                media_id = service.upload(TINY_PNG, "image/png")
                assert service.wait(media_id)["state"] == "Completed"
                time.sleep(0.2)
                return any(e["media_id"] == media_id and e["state"] == "Completed" for e in events)

            # Changes made while the server subscribes again are not streamed; later ones are.
            wait_until(stream_sees_a_new_upload, 30, "the event stream to follow the new master", interval=0)
            print(f"FAULT-FIGURES sentinel failover: {len(accepted)} accepted, {failed} answered 503 "
                  f"during the switch, all completed")
    finally:
        stop.set()
        service.stop(signal.SIGTERM)
        group.stop()
