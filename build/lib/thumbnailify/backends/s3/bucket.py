"""The bucket both sides keep media in (obstore): one client configuration for server and worker.

Names are the volume layout (thumbnailify.backends.filesystem.layout) under `s3.prefix`. obstore's own retries are kept
short: an endpoint that refuses connections, accepts none within `s3.connect_timeout` or does not
answer within `s3.timeout` is an outage, which the server turns into a 503 and a worker retries
with its own back-off. Connecting has a bound of its own, well under `s3.timeout`: a connection
takes milliseconds to a working endpoint, and an upload must not wait a whole request time (twice,
with the one retry) to learn that the endpoint is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from obstore.exceptions import BaseError
from obstore.store import S3Store

from thumbnailify.settings import S3Settings

# Faults of the bucket: obstore's errors, and a missing object where one must be (an OSError).
FAULTS: tuple[type[BaseException], ...] = (BaseError, OSError)
# Multipart uploads: the smallest part S3 takes (all but the last), and parts in flight at once.
PART_BYTES = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 1


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing gives it, for the retention sweep."""

    name: str  # in the layout of thumbnailify.backends.filesystem.layout, e.g. raw/<id>
    modified: datetime
    size: int


def open_bucket(conf: S3Settings) -> S3Store:
    options: dict[str, object] = {
        "timeout": timedelta(seconds=conf.timeout),
        "connect_timeout": timedelta(seconds=min(conf.connect_timeout, conf.timeout)),
        "allow_http": conf.endpoint_url.startswith("http://"),
    }
    config: dict[str, str] = {"region": conf.region}
    if conf.endpoint_url:
        config["endpoint"] = conf.endpoint_url
    if conf.access_key:  # else the usual AWS sources: environment, web identity, instance role
        config |= {"access_key_id": conf.access_key, "secret_access_key": conf.secret_key}
    return S3Store(
        conf.bucket,
        prefix=conf.prefix.strip("/") or None,
        config=config,  # type: ignore[arg-type]
        client_options=options,  # type: ignore[arg-type]
        retry_config={"max_retries": 1, "retry_timeout": timedelta(seconds=conf.timeout),
                      "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1)}},
    )


def describe(exc: BaseException) -> str:
    """obstore's message, first line (the rest is a debug dump); for logs only, it names the endpoint."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
