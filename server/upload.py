"""Streaming base64 decoding of an upload: never holds the whole body, stops at the size limit."""

from __future__ import annotations

import binascii

# Line breaks (as `base64` CLI output has) and stray blanks are tolerated, nothing else.
WHITESPACE = b" \t\r\n"


class InvalidBase64(ValueError):
    pass


class TooLarge(ValueError):
    pass


class Base64Decoder:
    """Feed body chunks in, get decoded bytes out; strict alphabet and padding."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pending = b""
        self._padded = False

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk.translate(None, WHITESPACE)
        if not data:
            return b""
        if self._padded:
            raise InvalidBase64("data after the final '=' padding")
        whole = len(data) - len(data) % 4
        self._pending = data[whole:]
        block = data[:whole]
        if not block:
            return b""
        try:
            decoded = binascii.a2b_base64(block, strict_mode=True)
        except binascii.Error as exc:
            raise InvalidBase64(str(exc)) from exc
        self._padded = block.endswith(b"=")
        self.size += len(decoded)
        if self.size > self.max_bytes:
            raise TooLarge(f"decoded media is larger than {self.max_bytes} bytes")
        return decoded

    def finish(self) -> None:
        if self._pending:
            raise InvalidBase64("length is not a multiple of 4 (is the '=' padding missing?)")
