"""Where a study lives: an Optuna storage (SQLite in the output folder by default) and an
artifact store beside it for each trial's rendered samples."""

from __future__ import annotations

from pathlib import Path

import optuna
import sqlalchemy
from optuna.artifacts import FileSystemArtifactStore

from voxgan.errors import VoxganError, first_line

DB_NAME = "study.db"
ARTIFACTS = "artifacts"


def storage_url(url: str | None, run_dir: Path, must_exist: bool = False) -> str:
    """The storage URL: the one given, or the SQLite file in the run folder."""
    if url:
        return url
    db = run_dir / DB_NAME
    if must_exist and not db.is_file():
        raise VoxganError(f"{run_dir}: no study here ({DB_NAME} not found); give the search's --out folder with --run")
    return f"sqlite:///{db.resolve()}"


POSTGRES_DRIVER = "psycopg"
"""The module SQLAlchemy (2.1 and later) loads for a `postgresql://` URL; `voxgan[postgres]` installs it."""


def connect(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage, checked now: an unreachable URL or a missing database driver is one clear
    error, not a traceback later."""
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=None)
    except ImportError as exc:  # Optuna re-raises SQLAlchemy's failed import of the driver as its own
        missing = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        name = missing.name or str(missing)
        hint = "pip install 'voxgan[postgres]'" if name == POSTGRES_DRIVER else "install the package that provides it"
        raise VoxganError(f"cannot open Optuna storage {redacted(url)}: its database driver '{name}' is not "
                          f"installed ({hint})") from None
    except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use this storage"
        raise VoxganError(f"cannot open Optuna storage {redacted(url)}: {first_line(exc)}") from None


def write_fast(storage: optuna.storages.BaseStorage) -> None:
    """A SQLite study that a search writes to: write-ahead log, synced at checkpoints rather than
    at every commit. A search commits some 40 times per trial (each parameter, metric and
    intermediate value is one Optuna call), and a synced commit costs 10-15 ms on a busy disk;
    this makes it 2-3 ms. A killed process still loses nothing committed; a power cut can lose the
    last commits but never corrupts the file. Set only once the study is accepted, so that a
    refused run leaves an existing file as it was."""
    if not isinstance(storage, optuna.storages.RDBStorage) or storage.engine.dialect.name != "sqlite":
        return

    def on_connect(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # pooled connections reconnect with the settings


def redacted(url: str) -> str:
    """A storage URL fit to print: its password hidden (SQLAlchemy's own rendering); a URL
    SQLAlchemy cannot parse is shown only when it holds no `user@` part."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url if "@" not in url else url.split("://", 1)[0] + "://***"


def artifact_store_for(run_dir: Path) -> FileSystemArtifactStore:
    folder = run_dir / ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def open_existing_study(url: str | None, run_dir: Path, name: str | None) -> optuna.Study:
    """An existing study by name, or the only study in the storage."""
    storage = connect(storage_url(url, run_dir, must_exist=url is None))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name is None:
        if len(names) != 1:
            raise VoxganError(f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}); name one with --study-name")
        name = names[0]
    if name not in names:
        raise VoxganError(f"no study '{name}' in the storage (found: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def create_or_load(storage: optuna.storages.BaseStorage, name: str, directions: list[str], metric_names: list[str],
                   sampler: optuna.samplers.BaseSampler | None, resume: bool) -> tuple[optuna.Study, bool]:
    """The study to run. A new name creates it; an existing one needs --resume and the same
    objectives (Optuna's load_if_exists would silently keep the old directions). Returns
    (study, created)."""
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in existing:
        if resume:
            raise VoxganError(f"--resume: no study '{name}' in the storage to resume")
        study = optuna.create_study(study_name=name, storage=storage, directions=directions, sampler=sampler)
        study.set_metric_names(metric_names)
        return study, True
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    old = [d.name.lower() for d in study.directions]
    if old != directions or (study.metric_names and study.metric_names != metric_names):
        raise VoxganError(f"study '{name}' exists with objectives {study.metric_names} ({old}); this study file "
                          f"asks for {metric_names} ({directions}): use another name or --out")
    if not resume:
        raise VoxganError(f"study '{name}' already exists in this storage; use --resume to continue it, or another --out")
    return study, False
