"""The throwaway etcd: the dev command starts one, answers, and cleans up on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from etcd_harness import require_etcd

from conveyor.coordination.etcd import EtcdCoordinator
from conveyor.coordination.etcd_server import EtcdServer


def test_dev_command_serves_until_terminated(tmp_path: Path) -> None:
    require_etcd()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.coordination.etcd_server", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        with EtcdCoordinator([endpoint], timeout_s=2) as c:
            assert c.put_queue("q", b"v") and c.get_queue("q") == b"v"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert (tmp_path / "member").is_dir()  # a given data directory is kept
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_temporary_directory_is_removed_and_process_stopped() -> None:
    binary = require_etcd()
    with EtcdServer(binary=binary) as server:
        pid = server.pid
        base = server.base_dir
        assert base is not None and server.data_dir.is_dir()
    assert not base.exists()
    assert not server.running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:  # the PID may have been reused, but never by an etcd of ours
        assert not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(binary.encode())
