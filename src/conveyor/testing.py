"""Run a real Conveyor server in a subprocess, for tests (ours and yours).

    with ServerProcess(tmp_path / "data") as server:
        client = conveyor.Client(server.native_address)
        boto3.client("sqs", endpoint_url=server.http_url, ...)

The server binds 127.0.0.1 on free ports, logs to ``server.log_path`` and is always
stopped by PID when the ``with`` block ends (SIGTERM, then SIGKILL after a grace
period). :meth:`kill` is a SIGKILL (a crash); :meth:`restart` starts it again on the
same data directory and ports. :class:`LocalCluster` runs an etcd and several nodes
in cluster mode the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ChildProcess:
    """What the process harnesses share: a subprocess logging to ``log_path``, waited
    for until ``_ready()`` says it serves, stopped and killed by PID."""

    what = "process"  # in error messages
    log_path: Path
    start_timeout_s: float
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.what} exited with {self.proc.returncode} while starting:\n{self.log()}"
                )
            try:
                if self._ready():
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.what} not ready after {self.start_timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: a crash."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class ServerProcess(ChildProcess):
    what = "server"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: str = "always",
        start_timeout_s: float = 20.0,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.native_port = free_port()
        self.settings = {"fsync": fsync, "log_format": "json", **settings}
        self.start_timeout_s = start_timeout_s
        self.env = env
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- addresses
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def native_address(self) -> str:
        return f"127.0.0.1:{self.native_port}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "conveyor.server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--native-port",
            str(self.native_port),
        ]
        for name, value in self.settings.items():
            cmd += ["--" + name.replace("_", "-"), str(value)]
        return cmd

    # -- lifecycle
    def start(self) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.env or {})
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(self.http_url + "/readyz", timeout=1) as resp:
            return bool(resp.status == 200)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not stop)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"server did not stop on SIGTERM:\n{self.log()}") from None

    def restart(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError):
            self.terminate()
        self.kill()


class LocalCluster:
    """A throwaway etcd and ``size`` cluster nodes (``n1``, ``n2``, ...), all subprocesses
    on 127.0.0.1 under ``root``, for tests, benchmarks and trying cluster mode::

        with LocalCluster(tmp_path, 3) as cluster:
            client = conveyor.Client(cluster.nodes["n2"].native_address)
            cluster.leader("orders")

    Leaving the ``with`` block kills every node and etcd by PID. ``settings`` go to every
    node (``lease_ttl_ms``, ``fsync``, ...); :meth:`add` makes another node that joins
    when started.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 3,
        *,
        lease_ttl_ms: int = 2_000,
        **settings: Any,
    ) -> None:
        from conveyor.coordination.etcd_server import EtcdServer

        self.root = Path(root)
        self.etcd = EtcdServer(self.root / "etcd")
        self.settings = {"lease_ttl_ms": lease_ttl_ms, **settings}
        self.nodes: dict[str, ServerProcess] = {}
        for i in range(1, size + 1):
            self.add(f"n{i}")

    def add(self, name: str, **settings: Any) -> ServerProcess:
        """A new node of this cluster (not started)."""
        node = ServerProcess(
            self.root / name,
            cluster=f"etcd://{self.etcd.endpoint}",
            node_id=name,
            start_timeout_s=30.0,
            **{**self.settings, **settings},
        )
        self.nodes[name] = node
        return node

    def start(self) -> LocalCluster:
        self.etcd.start()
        for node in self.nodes.values():
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.kill()
        self.etcd.close()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self, via: str) -> dict[str, Any]:
        """``GET /api/v1/cluster`` on node ``via``."""
        url = self.nodes[via].http_url + "/api/v1/cluster"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        return body

    def leader(self, queue: str, via: str = "n1", partition: int = 0) -> str | None:
        """The node leading a partition of ``queue``, as node ``via`` sees it."""
        for p in self.status(via)["partitions"]:
            if p["queue"] == queue and p["partition"] == partition:
                leader: str | None = p["leader"]
                return leader
        return None
