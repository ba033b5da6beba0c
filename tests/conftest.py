"""Shared fixtures: where the real data of ../shared/data lives (never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def imagenet_sample(shared_data: Path) -> Path:
    path = shared_data / "imagenet-sample"
    if not (path / "labels.csv").is_file():
        pytest.skip(f"{path} is absent")
    return path
