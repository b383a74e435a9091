"""A multi-node Ray cluster on one machine: a head and worker nodes, each its own `ray start` process.

What the cluster tests and `python -m benchmarks.ray_scaling` run the orchestrator against, exactly as a real
cluster is started (`ray start --head …` on one host, `ray start --address …` on the others), so scheduling,
object transfer between nodes and the loss of a node are real. Each node runs under `--block` in a session of its
own: stopping the head (SIGTERM) stops what it started, and `node_kill` takes a worker node down the hard way
(SIGKILL to its whole process group: raylet, object store and every worker process on it). The cluster keeps its
files in its own temporary folder and never touches a Ray of anyone else's on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpu_workers.cluster import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class LocalRayCluster:
    """`workers` worker nodes of `cpus_per_node` CPUs each beside a head of `head_cpus` CPUs."""

    workers: int = 1
    cpus_per_node: int = 1
    head_cpus: int = 1
    object_store_bytes: int = 256 * 1024**2
    port: int = field(default_factory=_free_port)
    nodes: list[subprocess.Popen] = field(default_factory=list)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lumen-ray-cluster-")))

    @property
    def address(self) -> str:
        """The head's GCS address, for RAY_ADDRESS of a driver on this machine."""
        return f"127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # The workers import learning/ and gpu_workers/ from this checkout.
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *paths]),
        }

    def _node(self, arguments: list[str], log: str) -> subprocess.Popen:
        command = [_ray_cli(), "start", *arguments, "--block", "--disable-usage-stats"]
        command += [f"--object-store-memory={self.object_store_bytes}"]
        with (self.folder / log).open("w") as out:
            return subprocess.Popen(
                command,
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the node and everything it starts form one process group
                cwd=REPO_ROOT,
            )

    def start(self, timeout: float = 120.0) -> LocalRayCluster:
        """Start the head, then each worker node once the previous one is alive; on any failure stop them all."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> LocalRayCluster:
        head = [
            "--head",
            f"--port={self.port}",
            f"--num-cpus={self.head_cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--temp-dir={self.folder / 'ray'}",
        ]
        self.nodes.append(self._node(head, "head.log"))
        self.wait_nodes(1, timeout)
        for n in range(self.workers):  # one at a time: nodes registering together can time out on a small machine
            self.node_add(log=f"worker-{n}.log")
            self.wait_nodes(2 + n, timeout)
        return self

    def node_add(self, *, log: str) -> subprocess.Popen:
        """Start one more worker node (it joins the head; `wait_nodes` waits until it is alive)."""
        worker = [f"--address={self.address}", f"--num-cpus={self.cpus_per_node}", "--num-gpus=0"]
        node = self._node(worker, log)
        self.nodes.append(node)
        return node

    def alive_nodes(self) -> int:
        """Ask the cluster how many nodes are alive (from a separate driver process, so this one stays free)."""
        code = (
            f"import ray; ray.init(address={self.address!r}, log_to_driver=False, configure_logging=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=self.environment(), capture_output=True, text=True, timeout=60
        )
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0

    def wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(node.poll() is not None for node in self.nodes):
                raise RuntimeError(f"a Ray node exited while starting:\n{self.logs()}")
            if self.alive_nodes() >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster did not reach {count} alive nodes in {timeout:.0f} s:\n{self.logs()}")

    def node_kill(self, index: int) -> None:
        """Kill node `index` (1 is the first worker) and everything on it at once, as a lost machine; the nodes
        after it move up one place."""
        node = self.nodes.pop(index)
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        """Stop every node: workers first, then the head (which stops the processes it started)."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in self.nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LocalRayCluster"]
