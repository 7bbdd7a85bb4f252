"""``conveyor serve`` starts a node; SIGTERM stops it with exit 0."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from cli_harness import cli_command, cli_env, run_cli

from conveyor.testing import free_port


def test_serve_runs_a_node_until_sigterm(tmp_path: Path) -> None:
    port, native = free_port(), free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        cli_command(
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--native-port",
            str(native),
        ),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=cli_env(None),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.05)
        address = f"127.0.0.1:{native}"
        assert run_cli("queue", "create", "q", address=address).code == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert (tmp_path / "data" / "catalog.json").exists()
