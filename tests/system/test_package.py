"""The installable package: a wheel built from the checkout installs in a fresh venv, each extra
brings only what its part runs, and the entry points start.

The wheel is built once. Each extra's dependencies are resolved from the wheel's own metadata over
the pinned set (requirements.txt, installed in the test venv), and exactly that closure is linked
into a fresh venv beside the wheel: imports and commands then run with nothing else on the path,
as after `pip install thumbnailify[<extra>]`, without downloading and unpacking the same
distributions three times (one real install of the light [client] extra checks pip itself).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.harness import ROOT

pytestmark = pytest.mark.timeout(300)

# What each extra must bring, and what it must not (the server never decodes: no Wand, no PyAV).
EXTRAS = {
    "client": (["thumbnailify.client.cli", "requests", "rich"], ["wand", "av", "aiohttp", "pika", "redis"]),
    "server": (["thumbnailify.server.app", "aiohttp", "redis"], ["wand", "av", "pika", "rich"]),
    "worker": (["thumbnailify.worker.jobs", "thumbnailify.worker.handlers.video", "wand", "av", "pika"],
               ["aiohttp", "rich"]),
}
COMMANDS = {
    "client": ["thumbnailify", "--help"],
    "server": ["thumbnailify-server", "--help"],
    "worker": ["thumbnailify-worker", "--help"],
}
NOT_OURS = {"common", "server", "worker", "client", "tests", "bench", "scripts"}


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=240, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the files git tracks, as a clean clone or a Docker build has them: a
    checkout's own build/ and egg-info (setuptools reuses their file lists) would hide a package or
    a file that pyproject leaves out."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)])
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("thumbnailify-*.whl")
    return found


def requirements_of(wheel: Path, extras: set[str]) -> list[Requirement]:
    """The wheel's own Requires-Dist for these extras (read from the wheel, not from the checkout)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(name).decode().splitlines()
    wanted = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in wanted if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)]


def closure(wheel: Path, extra: str) -> set[str]:
    """Every distribution `pip install <wheel>[extra]` brings, resolved over the pinned, installed set."""
    found: set[str] = set()
    todo = list(requirements_of(wheel, {extra}))
    while todo:
        requirement = todo.pop()
        if canonicalize_name(requirement.name) == "thumbnailify":
            todo += requirements_of(wheel, requirement.extras)
            continue
        name = canonicalize_name(requirement.name)
        dist = metadata.distribution(name)  # a pinned dependency missing from the venv fails here
        assert dist.version in requirement.specifier or not requirement.specifier, (requirement, dist.version)
        if name in found:
            continue
        found.add(name)
        for line in dist.requires or []:
            nested = Requirement(line)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                todo.append(nested)
    return found


def link_into(site: Path, names: set[str]) -> None:
    """Each distribution's top-level files and its dist-info, linked into the venv's site-packages."""
    for name in names:
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = site / top
            source = Path(str(dist.locate_file(top)))
            if not target.exists() and source.exists() and not top.endswith(".pth"):
                target.symlink_to(source)


def fresh_venv(path: Path) -> tuple[Path, Path]:
    assert run([sys.executable, "-m", "venv", "--without-pip", str(path)]).returncode == 0
    python = path / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    return python, site


# Where each top-level folder of the checkout lands in the installed namespace.
INSTALLED_AS = {"thumbnailify": "thumbnailify", "server": "thumbnailify/server", "worker": "thumbnailify/worker",
                "client": "thumbnailify/client"}


def test_the_wheel_holds_every_module_and_every_file_the_page_loads(wheel: Path) -> None:
    """A package folder or a page module left out of pyproject's lists is missing only once installed
    (from a wheel, or in the Docker images), never in the checkout."""
    tracked = run(["git", "ls-files", *INSTALLED_AS], cwd=ROOT).stdout.split()
    wanted = {
        f"{INSTALLED_AS[path.split('/', 1)[0]]}/{path.split('/', 1)[1]}" for path in tracked
        if path.endswith(".py") or path.startswith("server/static/")
    }
    with zipfile.ZipFile(wheel) as archive:
        missing = sorted(wanted - set(archive.namelist()))
    assert not missing, missing


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_installs_only_its_part(extra: str, wheel: Path, tmp_path: Path) -> None:
    python, site = fresh_venv(tmp_path / "venv")
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                     "--disable-pip-version-check", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    link_into(site, closure(wheel, extra))
    assert not NOT_OURS & {p.name for p in site.iterdir()}
    where = run([str(python), "-c", "import thumbnailify; print(thumbnailify.__file__)"], cwd=tmp_path)
    assert where.stdout.startswith(str(site)), where  # the wheel's copy, not the checkout's
    wanted, unwanted = EXTRAS[extra]
    for module in wanted:
        imported = run([str(python), "-c", f"import {module}"], cwd=tmp_path)
        assert imported.returncode == 0, f"{module}: {imported.stderr}"
    for module in unwanted:
        assert run([str(python), "-c", f"import {module}"], cwd=tmp_path).returncode != 0, f"{extra} brings {module}"
    command = run([str(tmp_path / "venv" / "bin" / COMMANDS[extra][0]), *COMMANDS[extra][1:]], cwd=tmp_path)
    assert command.returncode == 0 and "usage" in command.stdout, command.stderr


def test_pip_installs_the_wheel_with_an_extra_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    """pip itself, resolving the lightest extra against the pinned set, into a venv with nothing else."""
    python, site = fresh_venv(tmp_path / "venv")
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                     "--disable-pip-version-check", "--constraint", str(ROOT / "requirements.txt"), f"{wheel}[client]"])
    assert installed.returncode == 0, installed.stderr
    assert closure(wheel, "client") <= {canonicalize_name(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
    command = run([str(tmp_path / "venv" / "bin" / "thumbnailify"), "--help"], cwd=tmp_path)
    assert command.returncode == 0 and "usage" in command.stdout, command.stderr
