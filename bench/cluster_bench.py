"""Replication's price and failover's speed: three nodes with RF 3 against RF 1.

Usage:
    python bench/cluster_bench.py [--seconds S] [--runs N] [--failovers N]

Starts a throwaway etcd and three ``conveyor serve --cluster`` nodes on 127.0.0.1 (all
subprocesses, fsync=always, on fresh data directories), creates one queue with
replication factor 3 and one with replication factor 1, and measures, for each, with
1 KiB messages through the native client connected to the queue's leader:

* produce, one at a time — sync ``Client.send`` in a loop;
* produce, 32 in flight — ``AsyncClient.send`` from 32 tasks;
* produce, batches of 100, 8 in flight — ``AsyncClient.send_batch`` from 8 tasks.

Then failover: a client sends one message at a time to the RF 3 queue through a node
that is not the leader, the leader is SIGKILLed, and the time from the kill to the
first send acknowledged afterwards is the failover time (lease expiry + election + the
new leader's first commit). The lease TTL is ``--lease-ttl-ms`` (default 2000).

CPU seconds are summed over the three nodes (``/proc/<pid>/stat``). Medians of
``--runs`` runs are printed; the machine is described first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchlib import machine, tree_cpu_s

from conveyor import errors
from conveyor.client import AsyncClient, Client
from conveyor.testing import LocalCluster, ServerProcess
from conveyor.types import SendEntry

BODY = b"x" * 1024
BATCH = 100


def leader_of(node: ServerProcess, queue: str) -> str:
    with urllib.request.urlopen(node.http_url + "/api/v1/cluster", timeout=5) as resp:
        status = json.loads(resp.read())
    for p in status["partitions"]:
        if p["queue"] == queue and p["leader"]:
            return str(p["leader"])
    raise RuntimeError(f"{queue} has no leader")


def one_at_a_time(address: str, queue: str, seconds: float) -> int:
    count = 0
    with Client(address) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.send(queue, BODY)
            count += 1
    return count


def in_flight(address: str, queue: str, seconds: float, tasks: int, batch: int) -> int:
    async def run() -> int:
        count = 0
        async with AsyncClient(address) as client:
            deadline = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal count
                entries = [SendEntry(body=BODY) for _ in range(batch)]
                while time.monotonic() < deadline:
                    if batch == 1:
                        await client.send(queue, BODY)
                    else:
                        await client.send_batch(queue, entries)
                    count += batch

            await asyncio.gather(*(worker() for _ in range(tasks)))
        return count

    return asyncio.run(run())


def measure(nodes: list[ServerProcess], fn: Callable[[], int]) -> tuple[float, float]:
    pids = [n.pid for n in nodes]
    cpu0, t0 = tree_cpu_s(pids), time.monotonic()
    count = fn()
    elapsed, cpu = time.monotonic() - t0, tree_cpu_s(pids) - cpu0
    return count / elapsed, cpu / count * 1e6


def failover_s(nodes: dict[str, ServerProcess], queue: str) -> float:
    leader = leader_of(next(iter(nodes.values())), queue)
    via = next(name for name in nodes if name != leader)
    acked_after: list[float] = []
    killed_at: list[float] = []
    stop = threading.Event()

    def send() -> None:
        with Client(nodes[via].native_address, timeout_s=30) as client:
            while not stop.is_set():
                try:
                    client.send(queue, BODY)
                except errors.ConveyorError:
                    continue
                if killed_at and not acked_after:
                    acked_after.append(time.monotonic())

    t = threading.Thread(target=send)
    t.start()
    time.sleep(1.0)
    killed_at.append(time.monotonic())
    nodes[leader].kill()
    deadline = time.monotonic() + 60
    while not acked_after and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    t.join()
    nodes[leader].start()  # back as a follower for the next round
    if not acked_after:
        raise RuntimeError("no send succeeded within 60 s of the kill")
    return acked_after[0] - killed_at[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--lease-ttl-ms", type=int, default=2000)
    args = parser.parse_args()
    print(machine())
    print(f"fsync=always on every node; {args.seconds:g} s per scenario; medians of {args.runs}")
    with (
        tempfile.TemporaryDirectory(prefix="conveyor-cluster-bench-") as tmp,
        LocalCluster(Path(tmp), 3, lease_ttl_ms=args.lease_ttl_ms) as cluster,
    ):
        nodes = cluster.nodes
        first = next(iter(nodes.values()))
        with Client(first.native_address) as admin:
            admin.create_queue("rf3", {"replication_factor": 3})
            admin.create_queue("rf1", {"replication_factor": 1})
        scenarios: list[tuple[str, Callable[[str, str], int]]] = [
            ("produce, one at a time", lambda a, q: one_at_a_time(a, q, args.seconds)),
            ("produce, 32 in flight", lambda a, q: in_flight(a, q, args.seconds, 32, 1)),
            (
                "produce, batches of 100, 8 in flight",
                lambda a, q: in_flight(a, q, args.seconds, 8, BATCH),
            ),
        ]
        print(f"{'scenario':40} {'queue':5} {'msg/s':>10} {'cluster CPU µs/msg':>19}")
        for name, fn in scenarios:
            for queue in ("rf1", "rf3"):
                address = nodes[leader_of(first, queue)].native_address
                rates, cpus = [], []
                for _ in range(args.runs):
                    rate, cpu = measure(list(nodes.values()), partial(fn, address, queue))
                    rates.append(rate)
                    cpus.append(cpu)
                print(
                    f"{name:40} {queue:5} {statistics.median(rates):10,.0f} "
                    f"{statistics.median(cpus):19,.0f}"
                )
        times = [failover_s(nodes, "rf3") for _ in range(args.failovers)]
        print(
            f"failover (SIGKILL of the leader -> first acknowledged send), lease TTL "
            f"{args.lease_ttl_ms} ms: median {statistics.median(times):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
