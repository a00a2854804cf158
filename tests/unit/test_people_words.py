"""Words a person reads: sizes, why the server could not be reached, what the CLI refuses to send."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, run_sizes
from thumbnailify.client.batch import collect
from thumbnailify.client.report import size_text as cli_size
from thumbnailify.client.session import unreachable
from thumbnailify.settings import default_settings, load_settings
from thumbnailify.units import size_text

URL = "http://127.0.0.1:8080"


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 bytes"), (1023, "1023 bytes"), (1024, "1 KB"), (1536, "1.5 KB"), (20 * 1024 * 1024, "20 MB"),
    (int(2.25 * 1024 ** 3), "2.2 GB"), (5 * 1024 ** 4, "5120 GB"),
])
def test_sizes_read_as_file_managers_show_them(count: int, text: str) -> None:
    assert size_text(count) == text
    assert cli_size(count) == text  # the CLI says a size as the server and the page do


def test_the_page_says_each_size_as_the_server_and_the_cli_do(tmp_path: Path) -> None:
    """words.js's bytesText under Node against units.size_text: the table above, the ties a
    double holds exactly (x.25, x.75 of a unit) and sizes of every magnitude."""
    rng = random.Random(21)
    counts = [0, 1, 1023, 1024, 1280, 1536, 1792, 10 * 1024 + 256, 1023 * 1024 + 256, 1024 ** 2 + 256 * 1024,
              int(2.25 * 1024 ** 3), 5 * 1024 ** 4]
    counts += [rng.randrange(1, 1 << exponent) for exponent in range(10, 44, 2) for _ in range(40)]
    module = tmp_path / "words.mjs"  # an ES module by its name, so Node loads it as the browser does
    shutil.copy(ROOT / "server" / "static" / "modules" / "words.js", module)
    script = f"import {{ bytesText }} from {json.dumps(str(module))};\n" \
             f"console.log(JSON.stringify({json.dumps(counts)}.map(bytesText)));"
    done = subprocess.run(["/usr/bin/node", "--input-type=module", "-e", script], capture_output=True, text=True,
                          timeout=60, check=True)
    page = json.loads(done.stdout)
    assert [(count, text) for count, text in zip(counts, page, strict=True) if text != size_text(count)] == []


def test_make_run_has_a_size_for_the_pages_tiles_and_larger_view_after_the_apis_default() -> None:
    boxes = load_settings({"THUMBNAILIFY_THUMBNAIL_SIZES": run_sizes()}).thumbnail.boxes()
    assert (boxes[0].name, boxes[0].width, boxes[0].height) == ("default", 100, 100)  # the API's default, first
    # A tile is drawn 200 CSS pixels wide, 400 device pixels on a phone's screen; the larger view wider.
    assert max(min(box.width, box.height) for box in boxes) >= 800
    assert [box.name for box in default_settings().thumbnail.boxes()] == ["default"]  # the service's own: one


@pytest.mark.parametrize(("error", "text"), [
    (requests.ConnectionError("HTTPConnectionPool: [Errno 111] Connection refused"),
     f"connection refused — is the server running at {URL}?"),
    (requests.exceptions.ConnectTimeout("timed out"), f"no answer from {URL} — is that the right address, and is the "
                                                      "server up?"),
    (requests.ConnectionError("Failed to resolve 'nas' ([Errno -2] Name or service not known)"),
     f"cannot find the host of {URL} — check the address"),
    (requests.exceptions.SSLError("wrong version number"), f"the TLS connection to {URL} failed — does the server "
                                                           "take https?"),
    (requests.exceptions.ChunkedEncodingError("broken"), f"cannot reach {URL} (ChunkedEncodingError) — is the "
                                                         "server running there?"),
])
def test_an_unreachable_server_is_said_in_words_that_say_what_to_check(error: requests.RequestException,
                                                                       text: str) -> None:
    assert unreachable(URL, error) == text


def test_a_file_of_another_type_named_on_the_command_line_is_refused_before_sending(tmp_path: Path) -> None:
    (tmp_path / "photo.JPG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("words")
    (tmp_path / "README").write_text("words")
    sources, refused = collect([tmp_path / "photo.JPG", tmp_path / "notes.txt", tmp_path / "README",
                                tmp_path / "missing.png"])
    assert [source.path.name for source in sources] == ["photo.JPG"]
    assert [(result.path.name, result.state) for result in refused] == [
        ("notes.txt", "Failed"), ("README", "Failed"), ("missing.png", "Failed")]
    assert refused[0].message.startswith("not sent: a .txt file isn't a photo or video this service takes (.jpg ")
    assert refused[1].message.startswith("not sent: a file without an extension isn't a photo or video")
    assert refused[2].message == "no such file or folder"
