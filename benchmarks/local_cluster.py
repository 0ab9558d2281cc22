"""A Ray cluster on this machine with the resources you declare: a head node, and worker nodes
that join it, each a separate raylet as on separate machines. For checking how a search is
scheduled without the hardware (Ray accepts logical GPUs, `--num-gpus 2` on a machine with none,
and hands each task its share, `CUDA_VISIBLE_DEVICES` included), and what a search does when a
node is lost.

Every node listens on 127.0.0.1 only, on free ports, in its own temporary folder and process
group, and is ended by killing that group: other Ray clusters on the machine are left alone (no
`ray stop`).
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
from dataclasses import dataclass
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    process: subprocess.Popen
    ports: dict[str, int]
    """`ray start`'s port options and the free ports given to them."""

    @property
    def node_manager_port(self) -> int:
        """Tells this node apart in `ray.nodes()` (every node here has the address 127.0.0.1)."""
        return self.ports["--node-manager-port"]

    def kill(self) -> None:
        """End the node at once, as a machine that loses power: its raylet and its workers."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@contextmanager
def ray_node(options: list[str], num_cpus: int, num_gpus: int, wait_port: str, timeout: float) -> Iterator[Node]:
    """`ray start --block` with `options`, in its own session and temporary folder; `wait_port`
    names the option whose port must listen before the node counts as started."""
    ports = {"--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port(),
             "--node-manager-port": free_port(), "--object-manager-port": free_port()}
    if wait_port not in ports:
        ports[wait_port] = free_port()
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp:  # Ray's socket paths must stay short
        argv = [str(RAY), "start", *options, "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
                "--num-gpus", str(num_gpus), "--temp-dir", temp, "--disable-usage-stats",
                *(str(part) for item in ports.items() for part in item)]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        node = Node(process, ports)
        try:
            wait_for_port(ports[wait_port], process, timeout)
            yield node
        finally:
            # Everything in the group is this node's (its own session): end it at once, since
            # `ray start --block` takes half a minute to stop gracefully and keeps nothing worth it.
            node.kill()


@contextmanager
def local_cluster(num_cpus: int, num_gpus: int, timeout: float = 120) -> Iterator[str]:
    """Start the head node, yield its address (`127.0.0.1:PORT`, for `voxgan-search --address`)."""
    with ray_node(["--head", "--include-dashboard", "false"], num_cpus, num_gpus, "--port", timeout) as head:
        yield f"127.0.0.1:{head.ports['--port']}"


@contextmanager
def worker_node(address: str, num_cpus: int, num_gpus: int = 0, timeout: float = 120) -> Iterator[Node]:
    """Start a worker node that joins the head at `address`; yield it (its `kill()` loses it)."""
    with ray_node(["--address", address], num_cpus, num_gpus, "--node-manager-port", timeout) as node:
        yield node


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`ray start` exited with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Ray node did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
