"""A throwaway etcd for tests and development: :class:`EtcdServer`.

    with EtcdServer() as etcd:
        coordinator = EtcdCoordinator([etcd.endpoint])

starts the ``etcd`` binary (Debian package ``etcd-server``) as a one-member cluster on
127.0.0.1, with free client and peer ports, a unique member name and a temporary data
directory, and waits until it answers ``/health``. It is always stopped by PID when the
``with`` block ends, and the temporary directory is removed. :meth:`stop` is a SIGTERM
(a clean shutdown), :meth:`kill` a SIGKILL (a crash); :meth:`restart` starts it again on
the same ports and data directory, so the cluster's state survives.

From a shell: ``python -m conveyor.coordination.etcd_server`` prints the endpoint and
runs until Ctrl-C (``--data-dir`` keeps the data; ``--port`` picks the client port).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from conveyor.testing import ChildProcess, free_port

__all__ = ["EtcdServer", "etcd_binary", "main"]


def etcd_binary() -> str | None:
    """The ``etcd`` executable (``$CONVEYOR_ETCD``, then ``PATH``), or ``None``."""
    configured = os.environ.get("CONVEYOR_ETCD")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("etcd") or (
        "/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None
    )


class EtcdServer(ChildProcess):
    what = "etcd"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        client_port: int | None = None,
        name: str | None = None,
        start_timeout_s: float = 20.0,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = binary or etcd_binary()
        if found is None:
            raise FileNotFoundError(
                "etcd is not installed (Debian: apt-get install etcd-server; "
                "or set CONVEYOR_ETCD to the binary)"
            )
        self.binary = found
        self._temp = data_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="conveyor-etcd-")) if self._temp else None
        root = self.base_dir if self.base_dir is not None else Path(data_dir or ".")
        self.data_dir = root / "data" if self._temp else root
        self.log_path = root / "etcd.log" if self._temp else root.parent / f"{root.name}-etcd.log"
        self._fixed_port = client_port is not None
        self.client_port = client_port or free_port()
        self.peer_port = free_port()
        self._started_once = False
        self.name = name or f"conveyor-{uuid.uuid4().hex[:12]}"
        self.start_timeout_s = start_timeout_s
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    # -- addresses
    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, what :class:`EtcdCoordinator` takes."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            f"{self.name}={self.peer_url}",
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self.name,
            "--logger",
            "zap",
            "--log-level",
            "warn",
            *self.extra_args,
        ]

    # -- lifecycle
    def start(self) -> EtcdServer:
        assert not self.running, "already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            try:
                self.wait_ready()
                break
            except RuntimeError:
                # another process took a port between free_port() and etcd's bind: a
                # first start in a temporary directory moves to new ports (a restart, or
                # a data directory of the caller's, keeps its own)
                retry = self._temp and not self._started_once and attempt < 2
                if not retry or "address already in use" not in self.log():
                    raise
                self.kill()
                if not self._fixed_port:
                    self.client_port = free_port()
                self.peer_port = free_port()
                shutil.rmtree(self.data_dir, ignore_errors=True)
        self._started_once = True
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(self.client_url + "/health", timeout=1) as resp:
            return resp.status == 200 and b'"true"' in resp.read()

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not stop)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def restart(self) -> EtcdServer:
        """Stop if running, then start on the same ports and data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop it and remove the temporary directory (a given ``data_dir`` is kept)."""
        self.stop()
        self.kill()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conveyor.coordination.etcd_server",
        description="Run a one-member etcd on 127.0.0.1 for development, until Ctrl-C.",
    )
    parser.add_argument("--data-dir", help="keep etcd's data here (default: a temporary dir)")
    parser.add_argument("--port", type=int, default=None, help="client port (default: free)")
    args = parser.parse_args(argv)
    try:
        server = EtcdServer(args.data_dir, client_port=args.port)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    with server:
        print(server.endpoint, flush=True)
        print(
            f"etcd {server.name} (pid {server.pid}) serving on {server.client_url}, "
            f"data in {server.data_dir}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            while server.running:
                time.sleep(0.5)
            print(f"etcd exited on its own:\n{server.log()}", file=sys.stderr)
            return 1
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
