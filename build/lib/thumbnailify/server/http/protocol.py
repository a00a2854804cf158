"""How aiohttp's HTTP protocol layer is set up for us, below the application.

- Request bodies are never inflated (`auto_decompress=False`): an upload that names a
  Content-Encoding is refused with 415 before any of it is read (a gzip bomb costs nothing).
- After an early answer (413, 415, 401 ...) the connection is closed instead of draining
  whatever body the client still sends (`lingering_time=0`), past the little the error
  middleware reads so that a client sending a normal body still gets to read the answer.
- aiohttp reads at most READ_BUFFER ahead of a body nobody reads yet before it pauses the
  connection (its default lets ~700 KB in per connection): idle or waiting uploads cost little.
- A connection that sends no complete request within server.keepalive_timeout (idle keep-alive,
  or headers still arriving) is closed; aiohttp's default is an hour.
- A request aiohttp cannot even parse gets a JSON error like every other, and one INFO log
  line instead of an ERROR with a traceback: malformed requests are the client's problem.
- A handler may ask to hear of its connection's loss (`on_connection_lost`): aiohttp does not
  cancel handlers then, and a stream waiting for something to send would only notice at its
  next write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from thumbnailify.logs import escape
from thumbnailify.server.http.middleware import error_response

log = logging.getLogger("server.access")

READ_BUFFER = 16 * 1024  # flow control pauses a connection at a few times this
READ_AHEAD = 96 * 1024  # what that lets in, measured with aiohttp 3.14 (the rest waits in the kernel)
LostCallback = Callable[[BaseException | None], None]
PROTOCOL_OPTIONS: dict[str, Any] = {"auto_decompress": False, "lingering_time": 0, "read_bufsize": READ_BUFFER}


class JsonErrorsProtocol(RequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost_callbacks: set[LostCallback] = set()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        callbacks, self.lost_callbacks = self.lost_callbacks, set()
        for callback in callbacks:
            callback(exc)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; cannot send an error instead")
        if status >= 500:
            log.error("error handling request", exc_info=exc)
            response = error_response(status, "internal error; it has been logged")
        else:
            reason = message or (str(exc) if exc else "") or "cannot parse the request"
            log.info("malformed request from %s: %s", request.remote, escape(reason), extra={"status": status})
            response = error_response(status, f"malformed request: {reason}")
        response.force_close()
        return response


class JsonErrorsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorsProtocol(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """aiohttp's AppRunner serving through JsonErrorsServer, with PROTOCOL_OPTIONS."""

    def __init__(self, app: web.Application, keepalive_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **PROTOCOL_OPTIONS, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorsServer  # same state, our protocol factory
        return server


@contextlib.contextmanager
def on_connection_lost(request: web.Request, callback: LostCallback) -> Iterator[None]:
    """Call `callback` with the reason (None: the client closed it) if the request's connection is
    lost while inside this block."""
    protocol = request.protocol
    if not isinstance(protocol, JsonErrorsProtocol):  # a test client's own server
        yield
        return
    if protocol.transport is None:
        callback(None)
    protocol.lost_callbacks.add(callback)
    try:
        yield
    finally:
        protocol.lost_callbacks.discard(callback)
