"""The 3D ShapeNets `volumetric_data` tree (`<category>/30/{train,test}/*.mat`), read once and cached.

Reading the 11,868 chair files takes seconds, so each split is preprocessed once and kept on
disk, bit-packed, in a cache folder outside the data tree (the loader never writes into the
user's data). A cache file is keyed by (absolute source path, category, split, resolution,
rotations) and carries a fingerprint of the files read (sorted names, sizes, mtime_ns): any
added, removed or rewritten file makes it stale and it is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxgan.data.grids import resample
from voxgan.data.voxio import read_mat
from voxgan.config.schema import SHAPENETS_ROTATIONS
from voxgan.errors import DataError

GRID_FOLDER = "30"
SPLITS = ("train", "test")
ROTATION_NAME = re.compile(r"_(\d+)\.mat$")
CACHE_FORMAT = "voxgan-shapenets-cache-v1"
"""Part of every cache key: bump it when the preprocessing changes so old caches are ignored."""


def is_shapenets_tree(root: Path) -> bool:
    """True when `root` holds at least one `<category>/30` folder."""
    return bool(find_categories(root))


def find_categories(root: Path) -> list[str]:
    """Names of the category folders under a `volumetric_data` root."""
    try:
        return sorted(entry.name for entry in os.scandir(root) if (Path(entry.path) / GRID_FOLDER).is_dir())
    except OSError:
        return []


def default_cache_dir() -> Path:
    """$VOXGAN_CACHE, else ~/.cache/voxgan."""
    return Path(os.environ.get("VOXGAN_CACHE") or Path.home() / ".cache" / "voxgan").expanduser()


def load_shapenets(
    root: Path | str, category: str, resolution: int, cache_dir: Path | str | None = None,
    rotations: Sequence[int] = SHAPENETS_ROTATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) bool arrays (N, R, R, R) of one category, in sorted file order, holding the
    files of the given rotations (the `_<n>.mat` suffix; all 12 read every .mat file)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    grids = root / category / GRID_FOLDER
    if not grids.is_dir():
        found = ", ".join(find_categories(root)) or "none"
        raise DataError(f"{root}: no category '{category}' (found: {found})")
    cache = SplitCache(Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
    train, test = (load_split(grids / split, resolution, cache, (str(root), category, split), rotations)
                   for split in SPLITS)
    return train, test


def load_split(folder: Path, resolution: int, cache: SplitCache, key: tuple[str, ...],
               rotations: Sequence[int] = SHAPENETS_ROTATIONS) -> np.ndarray:
    """The .mat grids of one split folder at `resolution`, from the cache when it is fresh."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (a 3D ShapeNets category needs train/ and test/)")
    files = list_mat_files(folder)
    if not files:
        raise DataError(f"{folder}: no .mat files")
    if set(rotations) != set(SHAPENETS_ROTATIONS):
        files = [entry for entry in files if rotation_of(entry.name, folder) in rotations]
        if not files:
            raise DataError(f"{folder}: no .mat files of rotations {list(rotations)}")
    fingerprint = folder_fingerprint(files)
    cache_key = (*key, str(resolution), ",".join(map(str, sorted(rotations))))
    volumes = cache.get(cache_key, fingerprint)
    if volumes is None:
        volumes = resample(read_mat_files([entry.path for entry in files]), resolution)
        cache.put(cache_key, fingerprint, volumes)
    return volumes


def rotation_of(name: str, folder: Path) -> int:
    """The rotation number of a 3D ShapeNets file name (`chair_000000182_7.mat` -> 7)."""
    match = ROTATION_NAME.search(name)
    if not match or not 1 <= int(match.group(1)) <= len(SHAPENETS_ROTATIONS):
        raise DataError(f"{folder / name}: no rotation suffix _1 to _12 in the name, which data.rotations needs")
    return int(match.group(1))


def list_mat_files(folder: Path) -> list[os.DirEntry]:
    """The .mat files of a folder, sorted by name."""
    return sorted((e for e in os.scandir(folder) if e.name.endswith(".mat") and e.is_file()), key=lambda e: e.name)


def folder_fingerprint(files: list[os.DirEntry]) -> str:
    """A hash of the names, sizes and modification times of `files`: cheap, and changes when any
    file is added, removed or rewritten."""
    digest = hashlib.sha256()
    for entry in files:
        stat = entry.stat()
        digest.update(f"{entry.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_mat_files(paths: list[str], workers: int | None = None) -> np.ndarray:
    """(N, D, D, D) bool from many .mat files, read on a thread pool.

    Threads, not processes: the time goes to reading and zlib-inflating the files, both of which
    release the GIL, and threads avoid pickling the arrays back from worker processes.
    """
    if not paths:
        raise ValueError("no files to read")
    first = read_mat(paths[0])
    out = np.empty((len(paths), *first.shape), dtype=bool)
    out[0] = first

    def read_into(indices: range) -> None:
        for index in indices:
            volume = read_mat(paths[index])
            if volume.shape != first.shape:
                raise DataError(f"{paths[index]}: grid shape {volume.shape} differs from {first.shape} of {paths[0]}")
            out[index] = volume

    chunks = [range(start, min(start + 256, len(paths))) for start in range(1, len(paths), 256)]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        for _ in pool.map(read_into, chunks):
            pass
    return out


class SplitCache:
    """Bit-packed arrays in `.npz` files under one folder, each stored with its source fingerprint."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path_for(self, key: tuple[str, ...]) -> Path:
        root, category, split, resolution, rotations = key
        digest = hashlib.sha256("\0".join((CACHE_FORMAT, *key)).encode()).hexdigest()[:16]
        return self.folder / f"shapenets-{category}-{split}-{resolution}-{digest}.npz"  # rotations: in the digest

    def get(self, key: tuple[str, ...], fingerprint: str) -> np.ndarray | None:
        """The cached array, or None when missing, stale or unreadable (then it is rebuilt)."""
        path = self.path_for(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["fingerprint"]) != fingerprint:
                    return None
                shape = tuple(int(n) for n in stored["shape"])
                bits = stored["bits"]
        except (OSError, KeyError, ValueError, EOFError):
            return None
        count = int(np.prod(shape))
        if bits.size * 8 < count:
            return None
        return np.unpackbits(bits, count=count).view(bool).reshape(shape)

    def put(self, key: tuple[str, ...], fingerprint: str, volumes: np.ndarray) -> None:
        """Store atomically (temp file + os.replace); a cache that cannot be written only warns."""
        path = self.path_for(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=path.stem, suffix=".tmp", delete=False) as tmp:
                np.savez(tmp, bits=np.packbits(volumes.reshape(-1)), shape=np.array(volumes.shape),
                         fingerprint=np.array(fingerprint))
            os.replace(tmp.name, path)
        except OSError as exc:
            warnings.warn(f"voxgan: cannot write the data cache {path} ({exc}); data will be re-read next time",
                          stacklevel=2)
            try:
                os.unlink(tmp.name)
            except (OSError, NameError):
                pass
