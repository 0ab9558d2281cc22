"""Shared fixtures. Tests that need the real 3D ShapeNets chairs or a browser fail (not skip) under CI."""

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxgan.config import Config
from voxgan.data import VoxelDataset, load_dataset

ROOT = Path(__file__).resolve().parent.parent
CHAIRS = ROOT.parent / "shared" / "data" / "3dshapenets" / "volumetric_data"
MODELNET10 = ROOT.parent / "shared" / "data" / "modelnet10" / "modelnet10.npz"


def missing(message: str) -> None:
    """A test's missing prerequisite: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chairs_root() -> Path:
    """The real `volumetric_data` folder."""
    if not (CHAIRS / "chair" / "30" / "train").is_dir():
        missing(f"real chair data not found at {CHAIRS}")
    return CHAIRS


@pytest.fixture(scope="session")
def modelnet10() -> Path:
    """The real ModelNet10 file at 32^3 with its official split and labels."""
    if not MODELNET10.is_file():
        missing(f"ModelNet10 not found at {MODELNET10}")
    return MODELNET10


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-unsafe-swiftshader", "--window-size=2000,1300")
"""Headless, as root, offline. Without a GPU, WebGL (the dashboard's 3D view) runs on SwiftShader,
a fallback Chromium has deprecated unless --enable-unsafe-swiftshader asks for it (safe for a
local page of our own)."""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator:
    """A selenium WebDriver on the system's chromium and chromedriver (Debian: `apt-get install
    chromium chromium-driver`, which `.ci/run` does); nothing is downloaded. A fresh profile in
    the test's tmp dir."""
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver_path):
        missing("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


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


def kill_process_group(process) -> None:
    """SIGKILL what is left of a test's driver process group (started with start_new_session),
    Ray's workers included, and reap the driver: normally nothing is left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
