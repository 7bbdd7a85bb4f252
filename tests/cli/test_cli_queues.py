"""``conveyor queue create|list|info|delete|purge`` against a real server."""

from __future__ import annotations

from cli_harness import Cli

from conveyor.client import Client
from conveyor.testing import ServerProcess


def test_create_info_list_delete(cli: Cli, queue_name: str) -> None:
    dlq = queue_name + "-dlq"
    assert cli("queue", "create", dlq).code == 0
    r = cli(
        "--json",
        "queue",
        "create",
        queue_name,
        "--visibility-timeout",
        "45",
        "--retention",
        "2d",
        "--delay",
        "1m",
        "--max-message-size",
        "64KiB",
        "--max-depth-messages",
        "1000",
        "--overflow",
        "drop_oldest",
        "--receive-wait",
        "5",
        "--dlq",
        dlq,
        "--max-receive-count",
        "3",
        "--partitions",
        "2",
        "--tag",
        "team=payments",
    )
    assert r.code == 0, r
    info = r.json()
    cfg = info["config"]
    assert info["name"] == queue_name
    assert cfg["visibility_timeout_s"] == 45
    assert cfg["retention_s"] == 2 * 86400
    assert cfg["delay_s"] == 60
    assert cfg["max_message_bytes"] == 64 * 1024
    assert cfg["max_depth_messages"] == 1000
    assert cfg["overflow"] == "drop_oldest"
    assert cfg["receive_wait_s"] == 5
    assert cfg["redrive"] == {"dead_letter_queue": dlq, "max_receive_count": 3}
    assert cfg["partitions"] == 2
    assert info["tags"] == {"team": "payments"}

    # Again with different attributes: exit 5.
    clash = cli("queue", "create", queue_name)
    assert clash.code == 5, clash
    assert "QueueAlreadyExists" in clash.err

    r = cli("--json", "queue", "info", queue_name)
    assert r.code == 0, r
    assert r.json()["stats"]["messages"] == 0
    people = cli("queue", "info", queue_name)
    assert people.code == 0
    assert "visibility timeout" in people.out and "45s" in people.out
    assert f"{dlq} after 3 receives" in people.out

    listed = cli("--json", "queue", "list", "--prefix", queue_name)
    assert listed.code == 0
    assert [q["name"] for q in listed.json()["queues"]] == [queue_name, dlq]
    long = cli("--json", "queue", "list", "-l", "--prefix", queue_name)
    assert [q["config"]["partitions"] for q in long.json()["queues"]] == [2, 1]

    r = cli("--json", "queue", "delete", queue_name)
    assert r.code == 0 and r.json() == {"queue": queue_name, "deleted": True}
    gone = cli("queue", "delete", queue_name)
    assert gone.code == 4, gone
    assert "error: QueueDoesNotExist:" in gone.err
    quiet = cli("--json", "queue", "delete", queue_name, "--if-exists")
    assert quiet.code == 0 and quiet.json()["deleted"] is False


def test_fifo_create(cli: Cli, queue_name: str) -> None:
    name = queue_name + ".fifo"
    people = cli("queue", "create", name, "--content-based-dedup")
    assert people.code == 0, people
    assert "fifo" in people.out and "content-based" in people.out


def test_server_rejects_bad_attributes(cli: Cli, queue_name: str) -> None:
    r = cli("queue", "create", queue_name, "--partitions", "100000")
    assert r.code == 1, r
    assert "error: InvalidAttributeValue:" in r.err


def test_purge(cli: Cli, server: ServerProcess, queue_name: str) -> None:
    with Client(server.native_address) as client:
        client.create_queue(queue_name)
        client.send(queue_name, "a")
        r = cli("--json", "queue", "purge", queue_name)
        assert r.code == 0, r
        assert r.json() == {"queue": queue_name, "purged": True}
        stats = client.get_queue(queue_name).stats
        assert stats is not None and stats.messages == 0
    again = cli("queue", "purge", queue_name)  # once per 60 s: retriable, exit 7
    assert again.code == 7, again
    assert "PurgeQueueInProgress" in again.err
    assert cli("queue", "purge", "no-such-queue").code == 4
