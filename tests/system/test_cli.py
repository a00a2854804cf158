"""`.venv/bin/thumbnailify` against the real service (with an API key), through a pipe and under a
pseudo-terminal: a folder tree of good and bad files, the thumbnails written, the exit codes."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest
from PIL import Image

from tests.conftest import PHOTOS
from tests.harness import ROOT, Service

pytestmark = pytest.mark.timeout(180)

CLI = Path(sys.executable).parent / "thumbnailify"  # the console script beside this Python
KEY = "cli-test-key"
ADMIN_KEY = "cli-admin-key"
NOT_AN_IMAGE = b"these are words, not a JPEG\n"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service("distributed", tmp_path_factory.mktemp("cli"), THUMBNAILIFY_AUTH_API_KEY=KEY,
                 THUMBNAILIFY_AUTH_ADMIN_KEY=ADMIN_KEY) as running:
        running.http.headers["Authorization"] = f"Bearer {KEY}"
        yield running


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Photos in nested folders, a text file named .jpg, a JPEG cut short, and files to skip."""
    root = tmp_path / "pictures"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(PHOTOS / "astronaut.jpg", root / "astronaut.jpg")
    shutil.copy(PHOTOS / "camera.png", root / "trip" / "camera.png")
    shutil.copy(PHOTOS / "coffee.jpg", root / "trip" / "day2" / "coffee.jpg")
    (root / "broken.jpg").write_bytes(NOT_AN_IMAGE)
    (root / "trip" / "cut.jpg").write_bytes((PHOTOS / "coffee.jpg").read_bytes()[:3000])
    (root / "notes.txt").write_text("not an accepted type: never uploaded")
    shutil.copy(PHOTOS / "astronaut.jpg", root / ".cache" / "hidden.jpg")
    return root


def environment(service: Service, **extra: str) -> dict[str, str]:
    """This tree's `client` package whichever tree the shared venv's editable install points at."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("THUMBNAILIFY_")}
    return env | {"PYTHONPATH": str(ROOT), "THUMBNAILIFY_URL": service.url, "THUMBNAILIFY_API_KEY": KEY} | extra


def run(service: Service, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120, check=False,
                          env=environment(service, **extra))


def run_in_terminal(service: Service, *args: str, columns: int = 110, rows: int = 40,
                    cwd: Path | None = None) -> tuple[int, bytes]:
    """Exit status and everything written to the terminal, the CLI's stdout and stderr a pty of
    that many columns and rows (as a terminal window's size is told: the pty's own, no COLUMNS)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = environment(service, TERM="xterm-256color", LC_ALL="C.UTF-8")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    process = subprocess.Popen([str(CLI), *args], stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True,
                               env=env, cwd=cwd)
    os.close(terminal)
    output = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, f"no output for 60 s:\n{output.decode(errors='replace')}"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other side is closed, the CLI has exited
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=30), output


def screen_lines(output: bytes, columns: int, rows: int = 40) -> list[str]:
    """What a person scrolling back through the terminal sees: the output played through a
    terminal emulator (pyte), scrollback and screen, each row as it was left."""
    screen = pyte.HistoryScreen(columns, rows, history=10_000, ratio=0.5)
    screen.set_mode(pyte.modes.LNM)  # the pty turns "\n" into "\r\n"; pyte sees the bytes as written
    pyte.ByteStream(screen).feed(output)
    history = ["".join(char.data for char in row.values()) for row in screen.history.top]
    return [row.rstrip() for row in history + list(screen.display)]


def many_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` small photos, each of its own colour and size (no two have the same bytes, nor two
    sets of another seed)."""
    paths = []
    for index in range(count):
        path = folder / ("more" if index % 4 == 0 else "") / f"IMG_{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (index * 11 % 256, seed % 256, 220 - index * 7)
        Image.new("RGB", (160 + index, 120 + index), colour).save(path, quality=90)
        paths.append(path)
    return paths


def expected_refusal(service: Service) -> str:
    response = service.post(NOT_AN_IMAGE, "image/jpeg", raw=True, params={"encoding": "binary"})
    assert response.status_code == 415
    return response.json()["message"]


def test_upload_through_a_pipe_writes_thumbnails_and_names_each_failure(service: Service, tree: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "thumbs"
    result = run(service, "upload", str(tree), "--out", str(out), "--jobs", "3")
    print(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not ANSI.search(result.stdout.encode()) and "\r" not in result.stdout  # no animation in a pipe

    written = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert written == ["astronaut.jpg", "trip/camera.png", "trip/day2/coffee.jpg"]
    lines = result.stdout.splitlines()
    # One line per file as it finishes: "<state> <path> -> <thumbnail>" or "<state> <path>: <message>".
    by_file = {line[10:].split(" -> ")[0].split(": ")[0]: line for line in lines[:5]}
    assert set(by_file) == {str(tree / name) for name in
                            ("astronaut.jpg", "trip/camera.png", "trip/day2/coffee.jpg", "broken.jpg", "trip/cut.jpg")}
    assert by_file[str(tree / "broken.jpg")] == f"Failed    {tree / 'broken.jpg'}: 415 {expected_refusal(service)}"

    # The summary: every file with its state and media_id; the thumbnails equal the server's.
    rows = {row[0]: row for row in (re.split(r"\s*\|\s*", line.strip("| ")) for line in lines[5:])
            if row and row[0].startswith(str(tree))}
    assert {name: row[1] for name, row in rows.items()} == {
        str(tree / "astronaut.jpg"): "Completed", str(tree / "trip/camera.png"): "Completed",
        str(tree / "trip/day2/coffee.jpg"): "Completed", str(tree / "broken.jpg"): "Failed",
        str(tree / "trip/cut.jpg"): "Error",
    }
    cut = rows[str(tree / "trip/cut.jpg")]
    assert cut[4] == service.wait(cut[2])["message"]
    assert f"{tree / 'trip/cut.jpg'}: {cut[4]}" in by_file[str(tree / "trip/cut.jpg")]
    for source in ("astronaut.jpg", "trip/camera.png", "trip/day2/coffee.jpg"):
        row = rows[str(tree / source)]
        assert row[3] == str(out / source)
        data, _ = service.thumbnail(row[2])
        assert (out / source).read_bytes() == data
    assert lines[-1] == "5 files: 3 completed, 2 failed"


def test_upload_on_a_terminal_draws_progress(service: Service, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "thumbs"
    status, output = run_in_terminal(service, "upload", str(tree / "trip"), str(tree / "astronaut.jpg"),
                                     "--out", str(out))
    text = ANSI.sub(b"", output).decode()
    print(text)
    assert status == 1, text
    assert b"\x1b[?25l" in output  # the live display hid the cursor to redraw its bars in place
    assert "All files" in text and "━" in text
    assert "✓" in text and "✗" in text
    assert "4 files: 3 completed, 1 failed" in text
    assert sorted(path.name for path in out.rglob("*") if path.is_file()) == ["astronaut.jpg", "camera.png",
                                                                               "coffee.jpg"]


def test_upload_of_good_files_exits_0_and_the_other_commands(service: Service, tmp_path: Path) -> None:
    photo = tmp_path / "rocket.jpg"
    shutil.copy(PHOTOS / "rocket_portrait.jpg", photo)
    result = run(service, "upload", str(photo), "--url", service.url, "--api-key", KEY, THUMBNAILIFY_URL="",
                 THUMBNAILIFY_API_KEY="")
    assert result.returncode == 0, result.stdout + result.stderr
    media_id = re.search(r"\| Completed \| ([0-9a-f-]{36}) \|", result.stdout).group(1)

    status = run(service, "status", media_id)
    assert status.returncode == 0
    assert '"state": "Completed"' in status.stdout and media_id in status.stdout

    listed = run(service, "list", "--state", "Completed")
    assert listed.returncode == 0
    fields = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith(media_id))
    assert (fields[0], fields[1], fields[-1]) == (media_id, "Completed", "rocket.jpg")  # whole id, the file's name

    deleted = run(service, "delete", media_id)
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted {media_id}\n")
    again = run(service, "delete", media_id)
    assert again.returncode == 1
    assert again.stderr == f"thumbnailify: {media_id}: 404 no such media\n"
    missing = run(service, "status", media_id)
    assert (missing.returncode, missing.stderr) == (1, "thumbnailify: 404 no such media\n")

    no_key = run(service, "list", THUMBNAILIFY_API_KEY="")
    assert (no_key.returncode, no_key.stderr) == (1, "thumbnailify: 401 missing or wrong API key\n")


def test_keys_are_made_listed_rotated_and_revoked_through_the_admin_api(service: Service) -> None:
    no_admin = run(service, "keys", "list")
    assert no_admin.returncode == 2 and "--admin-key" in no_admin.stderr
    wrong = run(service, "keys", "list", THUMBNAILIFY_ADMIN_KEY=KEY)
    assert (wrong.returncode, wrong.stderr) == (1, "thumbnailify: 401 missing or wrong admin key\n")
    made = run(service, "keys", "create", "--name", "cli-client", "--quota-items", "5", "--quota-bytes", "8M",
               "--rate", "2/s", "--priority", "bulk", THUMBNAILIFY_ADMIN_KEY=ADMIN_KEY)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tfy_") and "shown only this once" in made.stderr
    usage = run(service, "usage", THUMBNAILIFY_API_KEY=key)
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout) == {"client": "cli-client", "items": 0, "bytes": 0, "quota_items": 5,
                                        "quota_bytes": 8 << 20}
    listed = run(service, "keys", "list", "--admin-key", ADMIN_KEY)
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["cli-client"]
    assert key not in listed.stdout
    rotated = run(service, "keys", "rotate", "cli-client", "--grace", "0", THUMBNAILIFY_ADMIN_KEY=ADMIN_KEY)
    assert rotated.returncode == 0, rotated.stderr
    assert run(service, "usage", THUMBNAILIFY_API_KEY=key).returncode == 1  # no grace: the old key is done
    new = rotated.stdout.strip()
    assert run(service, "usage", THUMBNAILIFY_API_KEY=new).returncode == 0
    assert run(service, "keys", "revoke", "cli-client", THUMBNAILIFY_ADMIN_KEY=ADMIN_KEY).returncode == 0
    revoked = run(service, "usage", THUMBNAILIFY_API_KEY=new)
    assert (revoked.returncode, revoked.stderr) == (1, "thumbnailify: 401 missing or wrong API key\n")
    bad = run(service, "keys", "create", "--name", "cli-client", "--rate", "fast", THUMBNAILIFY_ADMIN_KEY=ADMIN_KEY)
    assert bad.returncode == 2 and "not a rate" in bad.stderr


def test_thumbnail_files_are_named_by_their_type(service: Service, tmp_path: Path) -> None:
    """<stem>.<extension of the thumbnail's type>; two files with one name get -2."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(PHOTOS / "chelsea.png", tmp_path / "a" / "cat.png")
    shutil.copy(PHOTOS / "chelsea.png", tmp_path / "b" / "cat.png")
    out = tmp_path / "out"
    result = run(service, "upload", str(tmp_path / "a" / "cat.png"), str(tmp_path / "b" / "cat.png"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["cat-2.png", "cat.png"]
    assert Image.open(io.BytesIO((out / "cat.png").read_bytes())).format == "PNG"


@pytest.mark.parametrize("columns", [80, 120])
def test_every_result_line_stays_once_on_a_terminal(service: Service, tmp_path: Path, columns: int) -> None:
    """20 files and a text file named on the command line, 4 at once: each file's line is in the
    scrollback exactly once, no progress bar is left behind, no line is wider than the terminal."""
    photos = many_photos(tmp_path / "shots", 20, seed=columns)
    (tmp_path / "shots" / "notes.txt").write_text("a text file")
    status, output = run_in_terminal(service, "upload", "shots", "shots/notes.txt", "--jobs", "4",
                                     columns=columns, cwd=tmp_path)
    lines = screen_lines(output, columns)
    print("\n".join(lines))
    assert status == 1
    for photo in photos:
        relative = str(photo.relative_to(tmp_path))
        assert [line for line in lines if line.startswith("✓ ")].count(f"✓ {relative}") == 1, relative
    refusal = [line for line in lines if line.startswith("✗ shots/notes.txt: not sent")]
    assert len(refusal) == 1
    assert not [line for line in lines if "━" in line or "processing" in line or "starting" in line]
    summary = lines[lines.index("21 files: 20 completed, 1 failed") + 1:]
    assert summary[:2] == ["Failed:", summary[1]] and summary[1].startswith("  shots/notes.txt: not sent")
    assert len(summary[1]) <= columns and all(line == "" for line in summary[2:])


@pytest.mark.parametrize("columns", [80, 120])
def test_list_on_a_terminal_shows_whole_ids_and_file_names(service: Service, tmp_path: Path, columns: int) -> None:
    photo = tmp_path / f"holiday-{columns}.png"
    Image.new("RGB", (50, 40), (columns, 10, 10)).save(photo)
    assert run(service, "upload", str(photo)).returncode == 0
    media_id = next(item["media_id"] for item in service.get("/images").json()["items"]
                    if item.get("filename") == photo.name)
    status, output = run_in_terminal(service, "list", "--name", f"holiday-{columns}", columns=columns)
    lines = screen_lines(output, columns)
    print("\n".join(lines))
    assert status == 0
    row = next(line for line in lines if media_id in line)
    assert row.split()[:2] == [media_id, "Completed"] and row.endswith(photo.name)
    assert all(len(line) <= columns for line in lines)


def test_clear_errors_before_anything_is_sent(service: Service, tmp_path: Path) -> None:
    before = len(service.get("/images", params={"limit": 1000}).json()["items"])
    text = tmp_path / "readme.txt"
    text.write_text("words")
    refused = run(service, "upload", str(text))
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"Failed    {text}: not sent: a .txt file isn't a photo or video")

    photo = tmp_path / "photo.png"
    Image.new("RGB", (30, 20), (1, 2, 3)).save(photo)
    wrong_size = run(service, "upload", str(photo), "--size", "huge")
    assert wrong_size.returncode == 2
    assert wrong_size.stderr == "thumbnailify: this server makes no size 'huge'; it makes default (nothing was sent)\n"
    assert len(service.get("/images", params={"limit": 1000}).json()["items"]) == before

    no_scheme = run(service, "list", "--url", service.url.removeprefix("http://"))
    assert no_scheme.returncode == 2
    assert f"the URL needs http:// (or https://): try --url {service.url}" in no_scheme.stderr

    started = time.monotonic()
    nobody = run(service, "list", THUMBNAILIFY_URL="http://127.0.0.1:9")
    assert time.monotonic() - started < 5
    assert (nobody.returncode, nobody.stderr) == (
        1, "thumbnailify: connection refused — is the server running at http://127.0.0.1:9?\n")

    # --url and --api-key before the command as well as after it
    listed = run(service, "--url", service.url, "--api-key", KEY, "list", "--limit", "1", THUMBNAILIFY_URL="",
                 THUMBNAILIFY_API_KEY="")
    assert listed.returncode == 0 and listed.stdout.count("\t") >= 5


def test_a_second_upload_of_a_folder_sends_nothing_again(service: Service, tmp_path: Path) -> None:
    photos = many_photos(tmp_path / "album", 5, seed=1)
    first = run(service, "upload", str(tmp_path / "album"), "--out", str(tmp_path / "one"))
    assert first.returncode == 0, first.stdout + first.stderr
    count = len(service.get("/images", params={"limit": 1000}).json()["items"])
    second = run(service, "upload", str(tmp_path / "album"), "--out", str(tmp_path / "two"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(service.get("/images", params={"limit": 1000}).json()["items"]) == count
    lines = second.stdout.splitlines()
    assert [line.endswith(": already on the server: not sent again") for line in lines[:5]] == [True] * 5
    assert lines[-1] == "5 files: 5 completed, 0 failed; 5 already on the server, not sent again"
    for photo in photos:  # the thumbnails are written all the same
        name = photo.relative_to(tmp_path / "album")
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    forced = run(service, "upload", str(photos[0]), "--no-skip-existing")
    assert forced.returncode == 0
    assert len(service.get("/images", params={"limit": 1000}).json()["items"]) == count + 1
