"""A normal (non-editable) ``pip install .`` works away from the checkout: the model catalogue ships as package data,
paths fall back to the current directory, and nothing is written into the repository.

The package is built from a copy of the source tree (pip builds in place, which would leave ``build/`` and
``*.egg-info`` in the checkout) and installed with ``--no-deps`` into a fresh virtual environment.  That environment
sees the test interpreter's site-packages (torch, timm, ...) through a ``.pth`` file, which adds the folder to
``sys.path`` without running the ``.pth`` files inside it, so the checkout's editable install stays invisible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``bin/`` of a fresh virtual environment with lieq installed non-editably from a copy of the checkout."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "lieq", src / "lieq", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "outer_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation",
         str(src)],
        check=True,
        cwd=base,
    )  # fmt: skip
    return env_dir / "bin"


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIEQ_") and k != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_non_editable_install_runs_from_another_directory(installed, tmp_path):
    before = _snapshot(REPO / "data")
    work = tmp_path / "work"
    work.mkdir()

    where = _run([str(installed / "python"), "-c", "import lieq, lieq.paths as p; print(lieq.__file__); "
                  "print(p.repo_root()); print(p.results_root()); print(p.CATALOGUE.is_file())"], work)  # fmt: skip
    assert where.returncode == 0, where.stderr
    module, repo, store, catalogue = where.stdout.split()
    assert Path(module).is_relative_to(installed.parent) and not Path(module).is_relative_to(REPO), module
    assert repo == "None" and Path(store) == work / "lieq-results" and catalogue == "True"

    listing = _run([str(installed / "lieq"), "sweep", "e2e", "--models", "embedded", "--list"], work)
    assert listing.returncode == 0, listing.stderr
    for i in range(3):
        assert f"tf_efficientnet_lite{i}.in1k" in listing.stdout, listing.stdout

    out = work / "lee.csv"
    model = ["--model", "test_resnet.r160_in1k", "--weights", "random"]
    images = ["--images", "embedded", "--n-images", "1", "--generators", "translate_x,rotate"]
    e2e = _run([str(installed / "lieq"), "e2e", *model, *images, "--out", str(out)], work)
    assert e2e.returncode == 0, e2e.stderr

    table = pd.read_csv(out)
    assert sorted(table["generator"]) == ["rotate", "translate_x"]
    assert table["mean_abs"].gt(0).all() and table["mean_abs"].lt(1).all()

    written = sorted(set(_snapshot(REPO / "data")) - set(before))
    assert not written, f"the installed package wrote into the checkout: {written}"
    assert not (REPO / "lieq-results").exists() and not (work / "lieq-results").exists()  # --list and e2e: no store
