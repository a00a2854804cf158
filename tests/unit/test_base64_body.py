"""The base64 body decoder against the standard library's, over every way a body can be cut into
chunks: what the socket gives is arbitrary, so a quad, its padding or a line break can straddle
two chunks."""

from __future__ import annotations

import base64
import binascii
import random

import pytest

from thumbnailify.server.uploads.bodies import Base64Decoder, InvalidBase64


def decoded(chunks: list[bytes]) -> bytes:
    decoder = Base64Decoder()
    out = b"".join(decoder.feed(chunk) for chunk in chunks)
    decoder.finish()
    return out


def cut(text: bytes, rng: random.Random) -> list[bytes]:
    """`text` in chunks of random lengths, from empty to longer than a few quads."""
    chunks, start = [], 0
    while start < len(text):
        end = start + rng.choice([0, 1, 2, 3, 4, 5, 7, 64, 1001])
        chunks.append(text[start:end])
        start = end
    return chunks


def strict(text: bytes) -> bytes | None:
    """What the standard library makes of the whole text (blanks removed), or None if it refuses it."""
    try:
        return base64.b64decode(text.translate(None, b" \t\r\n"), validate=True)
    except binascii.Error:
        return None


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 100, 3000])
def test_any_cut_of_a_valid_body_decodes_to_its_bytes(size: int) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    for text in (base64.b64encode(data), base64.encodebytes(data), base64.b64encode(data).replace(b"A", b"A\r\n")):
        for _ in range(200):
            assert decoded(cut(text, rng)) == data


@pytest.mark.parametrize("text", [
    b"QUI=QUJD", b"QQ==QQ==", b"QUJDRA", b"QUJ*", b"QU=D", b"=QUJ", b"QUJDRA=", b"QQ===",
    b"QUI=\nQUJD", b"QQ==\n\n=",
])
def test_any_cut_of_a_broken_body_is_refused(text: bytes) -> None:
    assert strict(text) is None or text.endswith(b"=")  # the standard library lets excess padding by
    rng = random.Random(text)
    for _ in range(200):
        with pytest.raises(InvalidBase64):
            decoded(cut(text, rng))


def test_the_reason_names_what_is_wrong() -> None:
    with pytest.raises(InvalidBase64, match="after the final '=' padding"):
        decoded([b"QUI=", b"QUJD"])
    with pytest.raises(InvalidBase64, match="multiple of 4"):
        decoded([b"QUJDR"])
    with pytest.raises(InvalidBase64, match="standard alphabet"):
        decoded([b"QU", b"J*"])
