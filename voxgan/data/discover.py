"""Finding the voxel files of a folder at any depth, as ShapeNetCore keeps them
(`<synset>/<model id>/models/model_normalized.solid.binvox`, or `<model id>/model.binvox`).

The result is sorted by path, so the same folder always gives the same data, and it says what
was passed over (other files, files the pattern left out, hidden folders), which the data
summary prints: a user sees what was read and what was not.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from voxgan.data.voxio import VOXEL_SUFFIXES, voxel_suffix
from voxgan.errors import DataError


@dataclass
class Found:
    """The voxel files under a folder and what was passed over there."""

    root: Path
    files: list[Path]
    other_suffixes: Counter[str] = field(default_factory=Counter)
    """Files that are not voxel files, counted by suffix."""
    unmatched: int = 0
    """Voxel files left out by `data.pattern`."""

    def ignored(self) -> str:
        """'12 other files (10 .obj, 2 .json); 3 voxel files not matching data.pattern', or ''."""
        parts = []
        if self.other_suffixes:
            common = sorted(self.other_suffixes.items(), key=lambda item: (-item[1], item[0]))[:4]
            kinds = ", ".join(f"{n} {suffix}" for suffix, n in common)
            more = ", ..." if len(self.other_suffixes) > 4 else ""
            parts.append(f"{sum(self.other_suffixes.values())} other files ({kinds}{more})")
        if self.unmatched:
            parts.append(f"{self.unmatched} voxel files not matching data.pattern")
        return "; ".join(parts)


def find_voxel_files(root: Path, pattern: str, max_files: int) -> Found:
    """The voxel files below `root` at any depth whose path relative to `root` matches `pattern`,
    sorted. Hidden files and folders (".name") are skipped; symbolic links to folders are followed
    once. More than `max_files`, or none, is a one-line DataError naming what was found."""
    found = Found(root, [])
    seen: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if voxel_suffix(name) is None:
                found.other_suffixes[path.suffix.lower() or "(no suffix)"] += 1
            elif not fnmatch.fnmatch(path.relative_to(root).as_posix(), pattern):
                found.unmatched += 1
            else:
                found.files.append(path)
                if len(found.files) > max_files:
                    raise DataError(f"{root}: more than {max_files} voxel files (data.max_files); point "
                                    f"data.source at a smaller folder, choose files with data.pattern, "
                                    f"or raise data.max_files")
    if not found.files:
        ignored = found.ignored()
        raise DataError(f"{root}: no {'/'.join(VOXEL_SUFFIXES)} files at any depth and no 3D ShapeNets "
                        f"category folders{f' (found {ignored})' if ignored else ''}")
    found.files.sort()
    refuse_two_voxelisations(found.files)
    return found


def refuse_two_voxelisations(files: list[Path]) -> None:
    """ShapeNetCore v2 keeps a solid and a surface voxelisation of each model side by side; reading
    both would train on every model twice, once hollow. Refused, naming the fix."""
    present = set(files)
    for path in files:
        solid = path.with_name(path.name.replace(".surface.", ".solid."))
        if solid != path and solid in present:
            raise DataError(f"{path.parent}: holds both a solid and a surface voxelisation of one model "
                            f"({solid.name}, {path.name}); choose one with data.pattern='*.solid.binvox' "
                            f"or data.pattern='*.surface.binvox'")
