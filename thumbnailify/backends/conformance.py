"""Every backend class the loader's tables name, held to the protocol its side builds it as.

The server and the worker load their backends by name (thumbnailify.backends.loader), so nothing
else tells mypy which class must satisfy which protocol. Each function below says it: the class, built
as the loader's caller builds it, gives an object of that protocol; so a backend whose methods drift
from its protocol (or a protocol that gains a method one backend lacks) fails `make lint`, naming
the members in conflict.
tests/unit/test_conformance.py checks that every class in the tables is listed here.

Nothing here runs: the imports would pull in every backend's client library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from thumbnailify.backends.filesystem.aio import FilesystemFiles as AioFilesystemFiles
    from thumbnailify.backends.filesystem.sync import FilesystemFiles
    from thumbnailify.backends.nats.aio import NatsPublisher
    from thumbnailify.backends.nats.aio import NatsStore as AioNatsStore
    from thumbnailify.backends.nats.sync import NatsConsumer, NatsDeadLetters, NatsStore
    from thumbnailify.backends.rabbitmq.aio import RabbitMQPublisher
    from thumbnailify.backends.rabbitmq.sync import RabbitMQConsumer, RabbitMQDeadLetters
    from thumbnailify.backends.redis.aio import RedisStore as AioRedisStore
    from thumbnailify.backends.redis.sync import RedisStore
    from thumbnailify.backends.s3.aio import S3Files as AioS3Files
    from thumbnailify.backends.s3.sync import S3Files
    from thumbnailify.backends.sqlite.aio_queue import SQLitePublisher
    from thumbnailify.backends.sqlite.aio_store import SQLiteStore as AioSQLiteStore
    from thumbnailify.backends.sqlite.sync_queue import SQLiteConsumer, SQLiteDeadLetters
    from thumbnailify.backends.sqlite.sync_store import SQLiteStore
    from thumbnailify.server import backends as server
    from thumbnailify.settings import Settings
    from thumbnailify.worker import backends as worker
    from thumbnailify.worker.handlers import Handler
    from thumbnailify.worker.handlers.image import ThumbHandler
    from thumbnailify.worker.handlers.video import VideoHandler

    # The server (server/app.py): each built from the settings.
    def redis_store(settings: Settings) -> server.Store:
        return AioRedisStore(settings)

    def sqlite_store(settings: Settings) -> server.Store:
        return AioSQLiteStore(settings)

    def nats_store(settings: Settings) -> server.Store:
        return AioNatsStore(settings)

    def nats_publisher(settings: Settings) -> server.Publisher:
        return NatsPublisher(settings)

    def rabbitmq_publisher(settings: Settings) -> server.Publisher:
        return RabbitMQPublisher(settings)

    def sqlite_publisher(settings: Settings) -> server.Publisher:
        return SQLitePublisher(settings)

    def filesystem_files(settings: Settings) -> server.Files:
        return AioFilesystemFiles(settings)

    def s3_files(settings: Settings) -> server.Files:
        return AioS3Files(settings)

    # The worker (worker/__main__.py, worker/kinds.py, worker/replay.py).
    def redis_worker_store(settings: Settings) -> worker.Store:
        return RedisStore(settings)

    def sqlite_worker_store(settings: Settings) -> worker.Store:
        return SQLiteStore(settings)

    def nats_worker_store(settings: Settings) -> worker.Store:
        return NatsStore(settings)

    def nats_consumer(settings: Settings, kind: str) -> worker.Consumer:
        return NatsConsumer(settings, kind)

    def nats_dead_letters(settings: Settings, kind: str) -> worker.DeadLetters:
        return NatsDeadLetters(settings, kind)

    def rabbitmq_consumer(settings: Settings, kind: str) -> worker.Consumer:
        return RabbitMQConsumer(settings, kind)

    def sqlite_consumer(settings: Settings, kind: str) -> worker.Consumer:
        return SQLiteConsumer(settings, kind)

    def filesystem_worker_files(settings: Settings, scratch: Path) -> worker.Files:
        return FilesystemFiles(settings, scratch)

    def s3_worker_files(settings: Settings, scratch: Path) -> worker.Files:
        return S3Files(settings, scratch)

    def rabbitmq_dead_letters(settings: Settings, kind: str) -> worker.DeadLetters:
        return RabbitMQDeadLetters(settings, kind)

    def sqlite_dead_letters(settings: Settings, kind: str) -> worker.DeadLetters:
        return SQLiteDeadLetters(settings, kind)

    def image_handler(settings: Settings) -> Handler:
        return ThumbHandler.from_settings(settings)

    def video_handler(settings: Settings) -> Handler:
        return VideoHandler.from_settings(settings)
