"""``conveyor bench`` with a tiny count against a real server."""

from __future__ import annotations

from cli_harness import Cli

from conveyor.client import Client
from conveyor.testing import ServerProcess


def test_bench_produce_and_consume(cli: Cli, server: ServerProcess) -> None:
    r = cli(
        "--json",
        "bench",
        "-n",
        "60",
        "--size",
        "256",
        "--batch",
        "5",
        "--producers",
        "2",
        "--consumers",
        "2",
    )
    assert r.code == 0, r
    report = r.json()
    assert report["produce"]["messages"] == 60
    assert report["consume"]["messages"] == 60
    assert report["produce"]["errors"] == report["consume"]["errors"] == 0
    assert report["consume"]["end_to_end_ms"]["p50"] is not None
    assert report["left_in_queue"] == 0
    with Client(server.native_address) as client:
        assert report["queue"] not in client.list_queues()  # the queue bench made is gone


def test_bench_produce_then_consume_a_named_queue(
    cli: Cli, server: ServerProcess, queue_name: str
) -> None:
    r = cli("bench", "--queue", queue_name, "--mode", "produce", "-n", "20", "--keep")
    assert r.code == 0, r
    assert "produce" in r.out and "msg/s" in r.out
    r = cli(
        "--json", "bench", "--queue", queue_name, "--mode", "consume", "-n", "20", "--batch", "10"
    )
    assert r.code == 0, r
    assert r.json()["consume"]["messages"] == 20
    assert r.json()["produce"] is None
    with Client(server.native_address) as client:
        stats = client.get_queue(queue_name).stats
        assert stats is not None and stats.messages == 0
