"""A throwaway PostgreSQL server for tests: a new data directory under /tmp, a Unix socket in it
and no TCP port at all, trust authentication (only this machine's processes can reach the
socket), fsync off. Stopped and deleted afterwards.

PostgreSQL refuses to run as root. Run as root (a CI container), the server programs run as the
`postgres` account that Debian's `postgresql` package creates, or else as `nobody`, on a
directory that account owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUPERUSER = "voxgan"
SERVER_ACCOUNTS = ("postgres", "nobody")


class ServerUnavailable(Exception):
    """The server programs are missing or the server did not start; the message says which."""


def server_bin() -> Path:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise ServerUnavailable("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    return versions[-1].parent


def as_server_account() -> list[str]:
    """The command prefix that runs a server program as an account PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    for name in SERVER_ACCOUNTS:
        try:
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"]
        except KeyError:
            continue
    raise ServerUnavailable(f"running as root, and none of the accounts {SERVER_ACCOUNTS} exists to run PostgreSQL")


def run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ServerUnavailable(f"{' '.join(command)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")


@contextmanager
def postgres_server() -> Iterator[Path]:
    """A running server; yields the folder of its socket (the `host` of a libpq URL)."""
    bin_dir, prefix = server_bin(), as_server_account()
    folder = Path(tempfile.mkdtemp(prefix="voxgan-pg-"))  # short: a socket path is limited to 107 bytes
    data = folder / "data"
    if prefix:
        shutil.chown(folder, user=prefix[2])
    try:
        run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"])
        options = f"-c listen_addresses='' -k {folder} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
             "-o", options, "start"])
        try:
            yield folder
        finally:
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def create_database(socket_dir: Path, name: str) -> str:
    """A new, empty database on the server; returns its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(host=str(socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{SUPERUSER}@/{name}?host={socket_dir}"
