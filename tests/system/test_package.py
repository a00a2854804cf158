"""The installable package: a wheel built from the checkout installs in a fresh venv, each extra
brings only what its part runs, and the entry points start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.timeout(600)

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


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)])
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("thumbnailify-*.whl")
    return found


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_installs_only_its_part(extra: str, wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    installed = run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "--constraint", str(ROOT / "requirements.txt"), f"{wheel}[{extra}]"])
    assert installed.returncode == 0, installed.stderr
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    assert not {"common", "server", "worker", "client", "tests", "bench", "scripts"} & {p.name for p in site.iterdir()}
    wanted, unwanted = EXTRAS[extra]
    for module in wanted:
        imported = run([str(python), "-c", f"import {module}"], cwd=tmp_path)
        assert imported.returncode == 0, f"{module}: {imported.stderr}"
    for module in unwanted:
        assert run([str(python), "-c", f"import {module}"], cwd=tmp_path).returncode != 0, f"{extra} brings {module}"
    command = run([str(venv / "bin" / COMMANDS[extra][0]), *COMMANDS[extra][1:]], cwd=tmp_path)
    assert command.returncode == 0 and "usage" in command.stdout, command.stderr
