"""Shared fixtures. Tests that need the real 3D ShapeNets chairs fail (not skip) under CI."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAIRS = ROOT.parent / "shared" / "data" / "3dshapenets" / "volumetric_data"


@pytest.fixture(scope="session")
def chairs_root() -> Path:
    """The real `volumetric_data` folder; missing data is a failure in CI, a skip elsewhere."""
    if not (CHAIRS / "chair" / "30" / "train").is_dir():
        message = f"real chair data not found at {CHAIRS}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHAIRS


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private preprocessing cache so tests never touch the user's."""
    path = tmp_path / "cache"
    path.mkdir()
    return path
