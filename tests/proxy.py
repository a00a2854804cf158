"""A TCP proxy in front of a real service, to provoke its faults without touching the service.

`cut()` is an outage as clients see it (every connection dropped, new ones refused), `restore()`
ends it; `stall(seconds)` holds the next reply from the service (or the next one starting with
given bytes) that long (a slow network or a paused server), so a client's timeout fires while
the service itself did the work. The shared Redis and RabbitMQ keep running for every other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.harness import free_port

DROP_LINGER = 0.5


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalls: list[tuple[float, bytes]] = []
        self._drop_after: int | None = None  # bytes still to pass to the service before every connection drops

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        async def start() -> None:
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self._call(start())

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        self._call(stop())

    def stall(self, seconds: float, starting: bytes = b"") -> None:
        """Hold the next chunk the service sends back (that starts with `starting`) for `seconds`,
        then pass it on."""
        async def add() -> None:
            self._stalls.append((seconds, starting))
        self._call(add())

    def drop_after(self, upstream_bytes: int) -> None:
        """Pass this many more bytes to the service, then drop every open connection (mid-request,
        as a lost mobile link does); new connections are still taken. The drop comes DROP_LINGER
        after the last byte: the bytes have arrived, as on a real link, before it died."""
        async def arm() -> None:
            self._drop_after = upstream_bytes
        self._call(arm())

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer, stallable=False),
                self._pipe(server_reader, client_writer, stallable=True),
            )
        finally:
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stallable: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if stallable and self._stalls and data.startswith(self._stalls[0][1]):
                    await asyncio.sleep(self._stalls.pop(0)[0])
                if not stallable and self._drop_after is not None and len(data) >= self._drop_after:
                    writer.write(data[:self._drop_after])
                    await writer.drain()
                    self._drop_after = None
                    await asyncio.sleep(DROP_LINGER)
                    self._drop_all()
                    break
                if not stallable and self._drop_after is not None:
                    self._drop_after -= len(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
