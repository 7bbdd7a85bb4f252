"""``conveyor dlq redrive`` against a real server."""

from __future__ import annotations

from cli_harness import Cli

from conveyor.client import Client
from conveyor.testing import ServerProcess


def test_redrive_back_to_source_and_elsewhere(
    cli: Cli, server: ServerProcess, queue_name: str
) -> None:
    dlq, other = queue_name + "-dlq", queue_name + "-other"
    with Client(server.native_address) as client:
        client.create_queue(dlq)
        client.create_queue(other)
        redrive = {"dead_letter_queue": dlq, "max_receive_count": 1}
        client.create_queue(queue_name, {"redrive": redrive})
        for body in ("a", "b", "c"):
            client.send(queue_name, body)
        # One receive each (visibility 0), the next receive moves them to the DLQ.
        assert len(client.receive(queue_name, 10, visibility_timeout_s=0)) == 3
        assert client.receive(queue_name, 10, visibility_timeout_s=0) == []
        assert len(client.peek(dlq, 10)) == 3

        r = cli("--json", "dlq", "redrive", dlq, "--max", "1")
        assert r.code == 0, r
        assert r.json() == {"source": dlq, "destination": None, "moved": 1}
        back = client.peek(queue_name, 10)
        assert len(back) == 1 and back[0].receive_count == 0

        r = cli("dlq", "redrive", dlq, "--to", other)
        assert r.code == 0, r
        assert f"moved 2 messages from {dlq} to {other}" in r.out
        assert sorted(m.text for m in client.peek(other, 10)) == sorted(
            {"a", "b", "c"} - {back[0].text}
        )
        assert client.peek(dlq, 10) == []

    assert cli("dlq", "redrive", "no-such-dlq").code == 4
