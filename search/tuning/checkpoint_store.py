"""Where trials' checkpoints live: Ray Tune's storage path, reachable from every node.

The worker that trains a trial writes its checkpoints straight into the storage path
(`--storage-path`): a folder that every machine mounts at the same path (NFS), or a pyarrow
file-system URI such as `s3://bucket/prefix`. The `checkpoint` user attribute names the file
there (an absolute path, or a URI), so the driver, `--resume` and `export` read it from any
machine. The default, `<out>/ray`, is right for one machine only: on a cluster each worker would
write to its own local disk.

Every read, copy and deletion goes through pyarrow's file systems, as Ray's own storage does, so
a local folder and an object store take the same code path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyarrow import fs

from voxgan.errors import VoxganError, first_line

DEFAULT_FOLDER = "ray"
CHECKPOINT_NAME = "checkpoint.pt"
SAMPLES_NAME = "samples.png"
PREVIEW_PREFIX = "samples"
"""What a trial's checkpoint folder holds: the trainer's state, and its samples' previews for the
dashboard (a picture, and a mesh named by its evaluation: `previews`)."""


def mesh_name(kimg: float) -> str:
    """The mesh file of the evaluation at `kimg`, e.g. samples_0024.000kimg.stl. A mesh has no
    title drawn in (a picture has its kimg), so the name says which evaluation it is; the
    dashboard lists a trial's artifacts sorted by name, so the fixed width lists them in order."""
    return f"{PREVIEW_PREFIX}_{kimg:08.3f}kimg.stl"


def previews(kimg: float) -> dict[str, str]:
    """The evaluation's files for the dashboard, with their media types."""
    return {SAMPLES_NAME: "image/png", mesh_name(kimg): "model/stl"}


def is_uri(location: str) -> bool:
    return "://" in location


def resolve_storage_path(storage_path: str | None, out: Path) -> str:
    """The storage path as Ray Tune takes it: a URI as given (checked that pyarrow knows its
    scheme), a local folder made absolute (checked that it can be a folder), or `<out>/ray`."""
    if storage_path is None:
        return str((out / DEFAULT_FOLDER).resolve())
    if is_uri(storage_path):
        try:
            fs.FileSystem.from_uri(storage_path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...: all mean "cannot use it"
            raise VoxganError(f"--storage-path {storage_path}: {first_line(exc)}") from None
        return storage_path.rstrip("/")
    folder = Path(storage_path).expanduser().resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise VoxganError(f"--storage-path {storage_path}: {existing} is not a folder")
    return str(folder)


def join(location: str, *parts: str) -> str:
    """A location inside another one ('/' separates parts of URIs and POSIX paths alike)."""
    return "/".join([location.rstrip("/"), *parts])


def parent(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[0]


def open_location(location: str) -> tuple[fs.FileSystem, str]:
    if is_uri(location):
        return fs.FileSystem.from_uri(location)
    return fs.LocalFileSystem(), str(Path(location).resolve())


def is_file(location: str) -> bool:
    filesystem, path = open_location(location)
    return filesystem.get_file_info(path).type == fs.FileType.File


@contextmanager
def local_copy(location: str) -> Iterator[Path]:
    """The file at `location` as a local path for the `with` block: itself when it is local, a
    downloaded copy in a temporary folder otherwise."""
    if not is_uri(location):
        yield Path(location)
        return
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / location.rsplit("/", 1)[-1]
        copy_to_local(location, target)
        yield target


def copy_to_local(location: str, target: Path) -> None:
    filesystem, path = open_location(location)
    fs.copy_files(path, str(target.resolve()), source_filesystem=filesystem,
                  destination_filesystem=fs.LocalFileSystem())


def checkpoint_files(filesystem: fs.FileSystem, path: str) -> list[str]:
    """The files of the checkpoint at `path` in `filesystem`: itself and the previews beside it."""
    beside = filesystem.get_file_info(fs.FileSelector(parent(path), allow_not_found=True))
    return [path, *(info.path for info in beside
                    if info.type == fs.FileType.File and info.base_name.startswith(PREVIEW_PREFIX))]


def remove_checkpoint(location: str) -> None:
    """Delete the checkpoint at `location` (`checkpoint_files`), then its folder if nothing else is
    left in it. Only these files: whatever else shares the folder stays (a location is read from a
    trial's attribute, and a user may have set one by hand)."""
    filesystem, path = open_location(location)
    for file in checkpoint_files(filesystem, path):
        try:
            filesystem.delete_file(file)
        except FileNotFoundError:
            pass
    folder = parent(path)
    if not filesystem.get_file_info(fs.FileSelector(folder, allow_not_found=True)):
        try:
            filesystem.delete_dir(folder)
        except FileNotFoundError:
            pass


def remove_other_checkpoints(trial_folder: str, keep: str | None) -> None:
    """Delete the checkpoints in a Ray trial's folder (its `checkpoint_*` folders) other than the
    one at `keep`: those an interrupted run wrote but never recorded (a worker persists a
    checkpoint before the driver hears of it)."""
    filesystem, path = open_location(trial_folder)
    kept = parent(open_location(keep)[1]) if keep else None
    for info in filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)):
        if info.type == fs.FileType.Directory and info.base_name.startswith("checkpoint_") and info.path != kept:
            remove_checkpoint(join(trial_folder, info.base_name, CHECKPOINT_NAME))


def checkpoint_size(location: str) -> int:
    """Bytes of the checkpoint at `location` with its previews (0 when the checkpoint is gone)."""
    filesystem, path = open_location(location)
    infos = filesystem.get_file_info(checkpoint_files(filesystem, path))
    if infos[0].type != fs.FileType.File:
        return 0
    return sum(info.size for info in infos if info.type == fs.FileType.File)
