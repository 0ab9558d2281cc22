"""A Ray head node on this machine with the resources you declare, for checking how a search is
scheduled without the hardware: Ray accepts logical GPUs (`--num-gpus 2` on a machine with none)
and hands each task its share, `CUDA_VISIBLE_DEVICES` included.

The node listens on 127.0.0.1 only, on free ports, in its own temporary folder and process group,
and is ended by killing that group: other Ray clusters on the machine are left alone (no `ray stop`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_cluster(num_cpus: int, num_gpus: int, timeout: float = 120) -> Iterator[str]:
    """Start the head node, yield its address (`127.0.0.1:PORT`, for `voxgan-search --address`)."""
    port = free_port()
    ports = {"--port": port, "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(), "--runtime-env-agent-port": free_port(),
             "--metrics-export-port": free_port(), "--node-manager-port": free_port(), "--object-manager-port": free_port()}
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp:  # Ray's socket paths must stay short
        argv = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus), "--temp-dir", temp, "--disable-usage-stats",
                *(str(part) for item in ports.items() for part in item)]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        head = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port(port, head, timeout)
            yield f"127.0.0.1:{port}"
        finally:
            # Everything in the group is this node's (its own session): end it at once, since
            # `ray start --block` takes half a minute to stop gracefully and keeps nothing worth it.
            try:
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            head.wait()


def wait_for_port(port: int, head: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start` exited with status {head.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Ray head node did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
