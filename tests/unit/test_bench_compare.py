"""The pure parts of bench.compare: which launcher a checkout needs, the ratio/median table, and
the unique wrk bodies (the figures themselves are the bench's, never a test's)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from bench.compare import (
    BASE64_RATE,
    BASE64_VS_BARE,
    DRAIN_RATE,
    DRAIN_VS_PILLOW,
    P50_MS,
    P50_VS_PILLOW,
    PILLOW_MS,
    Figure,
    Target,
    checkout_dir,
    derive,
    linked_site_dirs,
    medians,
    table_rows,
)
from bench.support import Launcher, detect_launcher, wrk_body

PYTHON = "/opt/python"


def fake_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_an_old_checkout_runs_its_top_level_packages_from_its_folder(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, {"common/launch.py": "", "worker/__main__.py": 'parser.add_argument("--kind")'})
    assert detect_launcher(root, PYTHON) == Launcher(
        root, PYTHON, "common.launch", "server", ("-m", "worker", "--kind", "image"), installed=False)


def test_an_old_checkout_from_before_worker_kinds_starts_its_worker_without_kind(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, {"common/launch.py": "", "worker/__main__.py": "run()"})
    launcher = detect_launcher(root, PYTHON)
    assert launcher.worker == ("-m", "worker")
    assert launcher.argv(launcher.launch, "--workers", "2") == [PYTHON, "-m", "common.launch", "--workers", "2"]


def test_a_new_checkout_runs_the_installed_package(tmp_path: Path) -> None:
    # Both layouts in one tree (the middle of the move): the package wins.
    root = fake_tree(tmp_path, {"thumbnailify/__main__.py": "", "common/launch.py": "", "worker/__main__.py": ""})
    launcher = detect_launcher(root, PYTHON)
    assert launcher == Launcher(root, PYTHON, "thumbnailify", "thumbnailify.server",
                                ("-m", "thumbnailify.worker", "--kind", "image"), installed=True)
    assert launcher.argv(launcher.server) == [PYTHON, "-m", "thumbnailify.server"]


def test_a_folder_of_neither_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither layout"):
        detect_launcher(fake_tree(tmp_path, {"server/__main__.py": ""}), PYTHON)


@pytest.mark.parametrize(("cmdline", "photo"), [
    (["python", "-m", "thumbnailify.worker", "--kind", "image"], True),
    (["python", "-m", "worker", "--kind", "image"], True),
    (["python", "-m", "thumbnailify.worker", "--kind", "video"], False),
    (["python", "-m", "thumbnailify.server"], False),
    (["python", "-m", "thumbnailify"], False),
])
def test_photo_workers_are_told_from_the_other_processes(tmp_path: Path, cmdline: list[str], photo: bool) -> None:
    launcher = detect_launcher(fake_tree(tmp_path, {"thumbnailify/__main__.py": ""}), PYTHON)
    assert launcher.is_photo_worker(cmdline) is photo


def test_an_old_bare_worker_is_a_photo_worker(tmp_path: Path) -> None:
    launcher = detect_launcher(fake_tree(tmp_path, {"common/launch.py": "", "worker/__main__.py": ""}), PYTHON)
    assert launcher.is_photo_worker(["python", "-m", "worker"])
    assert not launcher.is_photo_worker(["python", "-m", "server"])


def test_a_revision_names_one_folder_under_var() -> None:
    assert checkout_dir("origin/main~2").name == "origin_main_2"
    assert checkout_dir("d90d5ff").name == "d90d5ff"


def test_the_table_shows_medians_their_ratio_and_the_target_checked_on_now() -> None:
    rounds = [
        {"before": {"p50": 100.0, "base": 10.0}, "now": {"p50": 150.0, "base": 10.0}},
        {"before": {"p50": 120.0, "base": 30.0}, "now": {"p50": 130.0, "base": 30.0}},
        {"before": {"p50": 80.0, "base": 20.0}, "now": {"p50": None, "base": 20.0}},
    ]
    spec = [Figure("p50", 1, Target(at_least=False, bound=130)), Figure("base", 0, shared=True)]
    assert table_rows(spec, medians(rounds), with_targets=True) == [
        ["p50", "100.0", "140.0", "1.40", "<= 130", "NO"],  # now: the median of the two measured
        ["base", "20", "20", "", "", ""],
    ]


def test_a_figure_missing_on_a_side_is_shown_as_not_available() -> None:
    rounds = [{"before": {"rate": None}, "now": {"rate": 2.0}}, {"before": {"rate": None}, "now": {"rate": 4.0}}]
    spec = [Figure("rate", 2, Target(at_least=True, bound=1.7)), Figure("absent", 1, Target(True, 1.0))]
    assert table_rows(spec, medians(rounds), with_targets=True) == [
        ["rate", "n/a", "3.00", "n/a", ">= 1.7", "yes"],
        ["absent", "n/a", "n/a", "n/a", ">= 1", "n/a"],
    ]
    assert table_rows(spec[:1], medians(rounds), with_targets=False) == [["rate", "n/a", "3.00", "n/a"]]


def test_ratios_to_the_rounds_baselines() -> None:
    derived = derive({P50_MS: 90.0, DRAIN_RATE: 30.0, BASE64_RATE: None}, {PILLOW_MS: 60.0})
    assert derived[P50_VS_PILLOW] == pytest.approx(1.5)
    assert derived[DRAIN_VS_PILLOW] == pytest.approx(1.8)  # 30 jobs/s against 1000/60 img/s
    assert derived[BASE64_VS_BARE] is None  # no figure, no baseline: nothing to divide


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("form", ["binary", "base64"])
def test_every_wrk_body_is_a_jpeg_with_a_comment_of_its_own(form: str) -> None:
    body = wrk_body(jpeg(), form)
    decoded = [body.with_number(n) if form == "binary" else base64.b64decode(body.with_number(n), validate=True)
               for n in (1, 2)]
    assert decoded[0] != decoded[1]
    for data in decoded:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (32, 24)
            assert len(image.info["comment"]) == 12


def test_the_before_venv_also_links_the_folders_a_pth_file_names(tmp_path: Path) -> None:
    """A worktree venv gets its dependencies from another venv through a .pth line: the before
    checkout's venv needs that folder too (its services failed on a missing uvloop), but never the
    editable install's import hook, which would load this checkout's code in the other one."""
    site, deps = tmp_path / "site", tmp_path / "deps"
    site.mkdir()
    deps.mkdir()
    (site / "deps.pth").write_text(f"{deps}\n# a comment\n{tmp_path / 'gone'}\n")
    (site / "__editable__.thumbnailify.pth").write_text("import __editable___thumbnailify_finder; x.install()\n")
    assert linked_site_dirs([str(site)]) == [str(site), str(deps)]
