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

from voxgan.errors import VoxganError

DEFAULT_FOLDER = "ray"


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


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def remove_folder(location: str) -> None:
    """Delete a folder and everything in it; one already gone is no error."""
    filesystem, path = open_location(location)
    try:
        filesystem.delete_dir(path)
    except FileNotFoundError:
        pass


def folder_size(location: str) -> int:
    """Bytes of the files in a folder, at any depth (0 for a folder that is gone)."""
    filesystem, path = open_location(location)
    selector = fs.FileSelector(path, recursive=True, allow_not_found=True)
    return sum(info.size or 0 for info in filesystem.get_file_info(selector) if info.type == fs.FileType.File)
