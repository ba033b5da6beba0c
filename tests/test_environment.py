"""environment.yml (Binder / conda) lists every package the pyproject extras need, with the Makefile's torch pins."""

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_covers_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {_name(r) for r in project["dependencies"]}
    for extra in ("compute", "weights", "notebooks", "lab", "slurm", "any"):
        needed |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        listed |= {_name(d) for d in items if not d.startswith("-")}
    assert not needed - listed, f"missing from environment.yml: {sorted(needed - listed)}"
    makefile = (ROOT / "Makefile").read_text()
    pins = re.search(r"TORCH_SPEC \?= (.+)", makefile).group(1).split()
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pins) <= set(pip), "environment.yml must pin torch/torchvision like the Makefile"
