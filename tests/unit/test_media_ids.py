"""Media ids: canonical random UUID4 text, and nothing else accepted as one (an id becomes a path)."""

from __future__ import annotations

import os
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


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_media_id()  # a batch is read and mostly left over
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next ids, to the parent, and never back into pytest
        try:
            os.close(read_end)
            os.write(write_end, " ".join(new_media_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        childs = pipe.read().split()
    os.waitpid(child, 0)
    parents = [new_media_id() for _ in range(10)]
    assert len(childs) == 10 and not set(childs) & set(parents)


SAMPLE = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a3b"  # a canonical UUID4: fixed, so test ids agree across workers


def test_the_sample_is_an_id() -> None:
    assert is_media_id(SAMPLE)


@pytest.mark.parametrize("text", [
    "", "../../etc/passwd", "0" * 36, "ea78faf2-ef12-11f1-8260-02fc00000001", SAMPLE.upper(), "{" + SAMPLE + "}",
    f"urn:uuid:{SAMPLE}", f"{SAMPLE}\n", SAMPLE.replace("-", ""), f" {SAMPLE}",
    SAMPLE.replace("-8b2a-", "-cb2a-"),  # version 4 bits, not the RFC 4122 variant
    SAMPLE.replace("-4e6f-", "-1e6f-"),  # version 1
])
def test_anything_but_a_canonical_uuid4_is_not_an_id(text: str) -> None:
    assert not is_media_id(text)
