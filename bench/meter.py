"""A TCP proxy that counts what passes through it: bytes each way, and for the protocols we speak
the operations themselves (AMQP 0-9-1 methods, Redis commands, S3 requests by kind), so a bench can
say what one job costs a shared service without asking the service (the shared RabbitMQ has no
per-client statistics, SeaweedFS none per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections import Counter

from tests.harness import free_port

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHODS = {
    (60, 40): "basic.publish", (60, 60): "basic.deliver", (60, 80): "basic.ack", (60, 120): "basic.nack",
    (60, 90): "basic.reject", (60, 70): "basic.get", (60, 71): "basic.get-ok", (50, 10): "queue.declare",
}
HTTP_REQUEST = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/1\.1\r\n")


def s3_kind(method: str, target: str) -> str:
    """What an S3 request does, from its request line."""
    query = target.partition("?")[2]
    if query.startswith("uploads"):
        return "CreateMultipartUpload"
    if "partNumber=" in query:
        return "UploadPart"
    if "uploadId=" in query:
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(method, method)
    if method == "POST" and query.startswith("delete"):
        return "DeleteObjects"
    if "list-type=" in query:
        return "ListObjects"
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, method)


class _AmqpFrames:
    """Counts method frames in one direction of an AMQP connection."""

    def __init__(self, counts: Counter[str], client_side: bool) -> None:
        self.counts = counts
        self.buffer = b""
        self.skip_header = client_side

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.skip_header:
            if len(self.buffer) < len(AMQP_HEADER):
                return
            self.buffer, self.skip_header = self.buffer[len(AMQP_HEADER):], False
        while len(self.buffer) >= 7:
            size = int.from_bytes(self.buffer[3:7], "big")
            if len(self.buffer) < 8 + size:
                return
            if self.buffer[0] == 1 and size >= 4:
                key = (int.from_bytes(self.buffer[7:9], "big"), int.from_bytes(self.buffer[9:11], "big"))
                self.counts[AMQP_METHODS.get(key, f"{key[0]}.{key[1]}")] += 1
            self.buffer = self.buffer[8 + size:]


class _HttpRequests:
    """Counts S3 requests in the client's direction (a request line may straddle two chunks)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.tail = b""

    def feed(self, data: bytes) -> None:
        text = self.tail + data
        for found in HTTP_REQUEST.finditer(text):
            if found.end() > len(self.tail):  # not one counted with the previous chunk
                self.counts[s3_kind(found[1].decode(), found[2].decode("latin-1"))] += 1
        self.tail = text[-300:]


class _RedisCommands:
    """Counts the commands a client sends (RESP arrays of bulk strings), by name."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while (command := self._next()) is not None:
            self.counts[command] += 1

    def _next(self) -> str | None:
        """The name of the next whole command, consumed from the buffer; None until one is whole."""
        end = self.buffer.find(b"\r\n")
        if not self.buffer.startswith(b"*") or end < 0:
            return None
        at, name = end + 2, ""
        for index in range(int(self.buffer[1:end])):
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(self.buffer[at + 1:line_end])
            if len(self.buffer) < line_end + 2 + size + 2:
                return None
            if index == 0:
                name = self.buffer[line_end + 2:line_end + 2 + size].decode().lower()
            at = line_end + 2 + size + 2
        self.buffer = self.buffer[at:]
        return name


class MeteringProxy:
    """127.0.0.1:<port> -> target, counting; protocol is "amqp", "redis", "http" or "" (bytes only)."""

    def __init__(self, target_port: int, protocol: str = "") -> None:
        self.target_port = target_port
        self.protocol = protocol
        self.port = free_port()
        self.bytes_up = 0
        self.bytes_down = 0
        self.operations: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> MeteringProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def reset(self) -> None:
        self.bytes_up = self.bytes_down = 0
        self.operations.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        up = down = None
        if self.protocol == "amqp":
            up, down = _AmqpFrames(self.operations, True), _AmqpFrames(self.operations, False)
        elif self.protocol == "http":
            up = _HttpRequests(self.operations)
        elif self.protocol == "redis":
            up = _RedisCommands(self.operations)
        await asyncio.gather(self._pipe(client_reader, server_writer, up, True),
                             self._pipe(server_reader, client_writer, down, False))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    parser: _AmqpFrames | _HttpRequests | _RedisCommands | None, upstream: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if upstream:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                if parser is not None:
                    parser.feed(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
