"""Shared fixtures. Tests that need the real 3D ShapeNets chairs fail (not skip) under CI."""

import os
from pathlib import Path

import pytest

from voxgan.config import Config
from voxgan.data import VoxelDataset, load_dataset

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


TINY = {
    "data": {"resolution": 16, "n_shapes": 80},
    "generator": {"width": 8},
    "discriminator": {"width": 8},
    "latent_size": 16,
    "batch_size": 16,
    "eval": {"n_samples": 20, "max_real": 20, "c2st_epochs": 2},
}
"""A training config small enough for a CPU test to train in seconds."""


def tiny_config(**changes) -> Config:
    """TINY with top-level keys replaced, e.g. `tiny_config(ema_decay=0.9)`."""
    return Config.from_dict({**TINY, **changes})


@pytest.fixture(scope="session")
def tiny_data() -> VoxelDataset:
    """The procedural shapes TINY trains on, generated once per session."""
    return load_dataset(tiny_config().data)
