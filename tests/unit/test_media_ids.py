"""Media ids: canonical random UUID4 text, and nothing else accepted as one (an id becomes a path)."""

from __future__ import annotations

import uuid

import pytest

from thumbnailify.media import is_media_id, new_media_id


def test_new_ids_are_canonical_random_uuid4s() -> None:
    ids = [new_media_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for media_id in ids:
        parsed = uuid.UUID(media_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, media_id)
        assert is_media_id(media_id)


@pytest.mark.parametrize("text", [
    "", "../../etc/passwd", "0" * 36, str(uuid.uuid1()), str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}",
    f"urn:uuid:{uuid.uuid4()}", f"{uuid.uuid4()}\n", uuid.uuid4().hex, f" {uuid.uuid4()}",
    str(uuid.UUID(bytes=bytes(16), version=4)).replace("-8", "-c"),  # version 4 bits, not the RFC 4122 variant
])
def test_anything_but_a_canonical_uuid4_is_not_an_id(text: str) -> None:
    assert not is_media_id(text)
