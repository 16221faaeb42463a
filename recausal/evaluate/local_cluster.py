"""A multi-node Ray cluster on this machine, for trying ``--engine ray --address`` (and its tests).

:class:`LocalRayCluster` starts a head (``ray start --head --block``) and worker nodes
(``ray start --address HEAD:PORT --block``) as separate processes, each node on its own loopback
address (127.0.0.2, 127.0.0.3, ...: Ray 2.6 swaps 127.0.0.1 for the machine's outward address)
with one CPU and a small object store, in a private temporary folder (nothing goes to
``/tmp/ray``, so a plain ``ray.init()`` elsewhere on the machine never finds this cluster).
:meth:`LocalRayCluster.stop` ends every process of the cluster by its id and removes the folder.
Linux only (processes are found through ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from recausal.errors import RecausalError

#: the object store of each node, in bytes (Ray's smallest is 75 MB)
OBJECT_STORE_BYTES = 100_000_000
#: what ``ray start`` prints once its node is up
_READY = "Ray runtime started."


class ClusterError(RecausalError):
    """The local Ray cluster could not be started (the message holds the node's output)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now.

    Args:
        host: the address to bind.

    Returns:
        The port number.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ray_command() -> list[str]:
    """The ``ray`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("ray")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "ray.scripts.scripts"]


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry)] = (parent, cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def descendants(pid: int) -> dict[int, str]:
    """The processes below ``pid`` (children, their children...).

    Args:
        pid: the ancestor.

    Returns:
        pid -> command line.
    """
    table = _processes()
    out: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent and child not in out:
                out[child] = cmdline
                frontier.append(child)
    return out


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def marked(marker: bytes) -> list[int]:
    """The processes whose environment holds ``marker`` (the nodes pass theirs on).

    Args:
        marker: e.g. ``b"RAY_TMPDIR=/tmp/rcXXXX/"``.

    Returns:
        Their pids.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if any(var.startswith(marker) for var in environ.split(b"\0")):
                found.append(int(entry))
    return found


@dataclass
class Node:
    """One ``ray start --block`` process and what it started."""

    ip: str
    process: subprocess.Popen
    log: Path

    def raylet(self) -> int | None:
        """The pid of this node's raylet, or None when it is gone.

        Returns:
            The pid.
        """
        for pid, cmdline in descendants(self.process.pid).items():
            if cmdline.split(" ", 1)[0].endswith("/raylet"):
                return pid
        return None

    def running(self, title: str) -> bool:
        """Whether a worker process of this node runs a task (its title is ``ray::TITLE``).

        Args:
            title: the task's function name.

        Returns:
            True while one does.
        """
        return any(
            cmdline.startswith(f"ray::{title}")
            for cmdline in descendants(self.process.pid).values()
        )


class LocalRayCluster:
    """A head and ``workers`` worker nodes on this machine (a context manager).

    Args:
        workers: the worker nodes besides the head.
        cpus: the CPUs of each node.
        timeout: seconds to wait for each node to start.
        env: environment variables of the nodes (e.g. ``RAY_health_check_period_ms``).
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        cpus: int = 1,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.n_workers = workers
        self.cpus = cpus
        self.timeout = timeout
        self.env = dict(env or {})
        self.root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # socket paths stay short
        self.head: Node | None = None
        self.workers: list[Node] = []
        self.port = 0

    @property
    def address(self) -> str:
        """The head's ``HOST:PORT`` (for ``evaluate(address=...)`` or ``--address``)."""
        if self.head is None:
            raise ClusterError("the cluster is not started")
        return f"{self.head.ip}:{self.port}"

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _environment(self, tmp: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_TMPDIR=str(tmp), RAY_USAGE_STATS_ENABLED="0", **self.env)
        return env

    def _launch(self, name: str, ip: str, args: list[str]) -> Node:
        tmp = self.root / name
        tmp.mkdir()
        log = self.root / f"{name}.log"
        command = [*_ray_command(), "start", "--block", "--node-ip-address", ip]
        command += ["--num-cpus", str(self.cpus), "--object-store-memory"]
        command += [str(OBJECT_STORE_BYTES), "--disable-usage-stats"]
        command += ["--dashboard-agent-listen-port", str(free_port()), *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(tmp),
                start_new_session=True,
            )
        node = Node(ip, process, log)
        deadline = time.monotonic() + self.timeout
        while _READY not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                why = "exited" if process.poll() is not None else f"not up in {self.timeout:.0f} s"
                if process.poll() is None:
                    self._end(node)
                raise ClusterError(
                    f"Ray node {name} ({ip}) {why}: {' '.join(command)}\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)
        return node

    def start(self) -> None:
        """Start the head, then the worker nodes, and wait until all have registered."""
        self.port = free_port("127.0.0.2")
        head_args = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        head_args += ["--temp-dir", str(self.root / "head" / "ray")]
        head_args += ["--ray-client-server-port", str(free_port())]
        head_args += ["--dashboard-port", str(free_port())]
        self.head = self._launch("head", "127.0.0.2", head_args)
        for _ in range(self.n_workers):
            self.add_worker()

    def add_worker(self) -> Node:
        """Start one more worker node (``ray start`` returns once the head has registered it).

        Returns:
            The node.
        """
        index = len(self.workers) + 1
        node = self._launch(f"w{index}", f"127.0.0.{2 + index}", ["--address", self.address])
        self.workers.append(node)
        return node

    def kill_raylet(self, node: Node) -> int:
        """SIGKILL a node's raylet (the node is lost, as if its machine went away).

        Args:
            node: a worker node.

        Returns:
            The raylet's pid.
        """
        pid = node.raylet()
        if pid is None:
            raise ClusterError(f"node {node.ip} has no raylet")
        os.kill(pid, signal.SIGKILL)
        return pid

    def _end(self, node: Node) -> None:
        """End one node: SIGTERM to ``ray start`` (it ends its processes), then SIGKILL."""
        if node.process.poll() is None:
            node.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=20)
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait(timeout=10)

    def stop(self) -> None:
        """End every process of the cluster (by pid) and remove its folder."""
        nodes = [*self.workers, *([self.head] if self.head else [])]
        for node in nodes:
            self._end(node)
        # anything left (a worker whose raylet was killed...): every node hands its RAY_TMPDIR,
        # a folder under self.root, to the processes it starts
        for pid in marked(f"RAY_TMPDIR={self.root}/".encode()):
            if pid != os.getpid():
                _kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        self.head, self.workers = None, []
