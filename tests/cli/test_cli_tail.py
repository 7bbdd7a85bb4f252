"""``conveyor tail``: follows a queue and picks up messages sent after it started."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from cli_harness import Cli, cli_command, cli_env

from conveyor import MessageAttribute
from conveyor.client import Client
from conveyor.testing import ServerProcess


def start_tail(server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command("--json", "tail", *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(server.native_address),
    )


def read_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"tail ended early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
    doc: dict[str, Any] = json.loads(line)
    return doc


def finish(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_prints_existing_then_new_messages_and_changes_nothing(
    server: ServerProcess, queue_name: str
) -> None:
    with Client(server.native_address) as client:
        client.create_queue(queue_name)
        client.send(queue_name, "before")
        proc = start_tail(server, queue_name, "--interval", "0.1", "--count", "3", "--idle", "30")
        try:
            assert read_line(proc)["body"] == "before"  # tail is running now
            client.send(queue_name, "after-1")
            client.send(queue_name, "after-2")
            assert read_line(proc)["body"] == "after-1"
            assert read_line(proc)["body"] == "after-2"
        finally:
            assert finish(proc) == 0
        # Watching received nothing: all three are visible, never received.
        msgs = client.peek(queue_name, 10)
        assert sorted(m.text for m in msgs) == ["after-1", "after-2", "before"]
        assert all(m.receive_count == 0 for m in msgs)

        # --new skips what is already there; --idle ends a quiet tail with exit 0.
        proc = start_tail(server, queue_name, "--new", "--interval", "0.1", "--idle", "1.5")
        time.sleep(0.8)
        client.send(queue_name, "fresh")
        assert read_line(proc)["body"] == "fresh"
        assert finish(proc) == 0


def test_delete_consumes_as_messages_arrive(server: ServerProcess, queue_name: str) -> None:
    with Client(server.native_address) as client:
        client.create_queue(queue_name)
        client.send(queue_name, "m0")
        proc = start_tail(server, queue_name, "--delete", "--count", "3")
        try:
            assert read_line(proc)["body"] == "m0"
            started = time.monotonic()
            client.send(queue_name, "m1")
            assert read_line(proc)["body"] == "m1"
            assert time.monotonic() - started < 5  # the long poll woke on arrival
            client.send(queue_name, "m2")
            assert read_line(proc)["body"] == "m2"
        finally:
            assert finish(proc) == 0
        stats = client.get_queue(queue_name).stats
        assert stats is not None and stats.messages == 0  # deleted once printed


def test_tail_people_output_and_missing_queue(
    cli: Cli, server: ServerProcess, queue_name: str
) -> None:
    with Client(server.native_address) as client:
        client.create_queue(queue_name)
        client.send(queue_name, "hi there", attributes={"k": MessageAttribute("String", "v")})
    r = cli("tail", queue_name, "--count", "1")
    assert r.code == 0, r
    assert "[k=v] hi there" in r.out
    assert cli("tail", "no-such-queue", "--count", "1").code == 4
