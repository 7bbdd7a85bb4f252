"""``conveyor send``, ``receive`` and ``peek`` against a real server."""

from __future__ import annotations

import base64

from cli_harness import Cli

from conveyor.client import Client
from conveyor.testing import ServerProcess


def create(server: ServerProcess, name: str) -> None:
    with Client(server.native_address) as client:
        client.create_queue(name)


def test_send_receive_delete(cli: Cli, server: ServerProcess, queue_name: str) -> None:
    create(server, queue_name)
    r = cli(
        "--json",
        "send",
        queue_name,
        "hello",
        "wörld",
        "--attr",
        "kind=greeting",
        "--attr",
        "n:Number=5",
        "--attr",
        "raw:Binary=" + base64.b64encode(b"\x00\x01").decode(),
    )
    assert r.code == 0, r
    sent = r.json_lines()
    assert [s["index"] for s in sent] == [0, 1]
    assert all(s["message_id"] for s in sent)

    peeked = cli("--json", "peek", queue_name, "-n", "5")
    assert peeked.code == 0
    msgs = peeked.json()["messages"]
    assert [m["body"] for m in msgs] == ["hello", "wörld"]
    assert msgs[0]["receive_count"] == 0 and msgs[0]["receipt_handle"] is None
    assert msgs[0]["attributes"] == {
        "kind": {"type": "String", "value": "greeting"},
        "n": {"type": "Number", "value": "5"},
        "raw": {"type": "Binary", "binary_base64": "AAE="},
    }
    people = cli("peek", queue_name)
    assert "hello" in people.out and "kind=greeting" in people.out

    got = cli("--json", "receive", queue_name, "-n", "1", "--visibility-timeout", "60")
    assert got.code == 0, got
    (first,) = got.json()["messages"]
    assert first["body"] == "hello" and first["receive_count"] == 1 and first["receipt_handle"]

    got = cli("--json", "receive", queue_name, "-n", "10", "--delete")
    assert [m["body"] for m in got.json()["messages"]] == ["wörld"]
    with Client(server.native_address) as client:
        stats = client.get_queue(queue_name).stats
        assert stats is not None
        assert (stats.messages, stats.inflight) == (1, 1)  # "hello" is still leased

    # Nothing visible: exit 0, an empty list; the long poll waits.
    empty = cli("--json", "receive", queue_name, "--wait", "0.3")
    assert empty.code == 0, empty
    assert empty.json() == {"messages": []}
    people = cli("receive", queue_name)
    assert people.code == 0 and "no messages" in people.err


def test_send_from_stdin_in_batches(cli: Cli, server: ServerProcess, queue_name: str) -> None:
    create(server, queue_name)
    lines = [f"line {i}" for i in range(250)]
    text = "\n".join(lines[:100]) + "\n\n" + "\r\n".join(lines[100:])  # no final newline
    r = cli("send", queue_name, "--batch", "100", input=text)
    assert r.code == 0, r
    assert "sent 250 messages" in r.out
    r = cli("--json", "send", queue_name, "-", input="x\ny\n")
    assert [s["index"] for s in r.json_lines()] == [0, 1]
    got = cli("--json", "receive", queue_name, "-n", "1000", "--delete")
    bodies = sorted(m["body"] for m in got.json()["messages"])
    assert bodies == sorted([*lines, "x", "y"])


def test_fifo_groups_and_dedup(cli: Cli, server: ServerProcess, queue_name: str) -> None:
    q = queue_name + ".fifo"
    create(server, q)
    first = cli("--json", "send", q, "one", "--group", "g1", "--dedup-id", "d1")
    assert first.code == 0, first
    again = cli("--json", "send", q, "one", "--group", "g1", "--dedup-id", "d1")
    (a,), (b,) = first.json_lines(), again.json_lines()
    assert b["duplicate"] is True and b["message_id"] == a["message_id"]
    assert a["sequence_number"]
    # A FIFO send without a group is refused by the server, per message.
    bad = cli("send", q, "two")
    assert bad.code == 1, bad
    assert "error: " in bad.err and "message 1" in bad.err
    # One dedup id cannot name several messages.
    assert cli("send", q, "a", "b", "--group", "g", "--dedup-id", "d").code == 2
    got = cli("--json", "receive", q, "-n", "10")
    (m,) = got.json()["messages"]
    assert (m["body"], m["group_id"], m["dedup_id"]) == ("one", "g1", "d1")


def test_missing_queue_exits_4(cli: Cli) -> None:
    r = cli("send", "no-such-queue", "x")
    assert r.code == 4, r
    assert "error: QueueDoesNotExist:" in r.err
