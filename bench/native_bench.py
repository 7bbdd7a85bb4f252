"""Throughput and latency of Conveyor's native protocol, through the Python clients.

Usage:
    python bench/native_bench.py [--address HOST:PORT [--server-pid PID]]
                                 [--seconds S] [--rate R] [--fsync always]

Without ``--address`` it starts ``conveyor serve`` itself (a subprocess on free
127.0.0.1 ports, ``--fsync`` as given, default always) on a fresh data directory.
Messages are 1 KiB. Scenarios, each run for ``--seconds`` (default 3):

* produce, one at a time — sync ``Client.send`` in a loop (one request in flight);
* produce, 32 in flight — ``AsyncClient.send`` from 32 tasks on one connection;
* produce, batches of 100 — sync ``send_batch``, one batch in flight;
* produce, batches of 100, 8 in flight — ``AsyncClient.send_batch`` from 8 tasks;
* consume+delete, one at a time — sync ``receive(1)`` then ``delete``;
* consume+delete, batches of 100 — sync ``receive(100)`` then ``delete_batch``;
* consume+delete, batches of 100, 4 in flight — 4 async tasks doing the same;
* end-to-end latency at a fixed rate (``--rate``, default 500/s): sends are scheduled
  at fixed times (t0 + i/rate), each started as its own task at its time whether or
  not earlier ones have finished, and latency is measured from the *scheduled* time
  to the moment a long-polling consumer has the message — so a stall delays and
  counts every message scheduled during it (no coordinated omission).

Server CPU seconds per message come from ``/proc/<pid>/stat`` (utime + stime) before
and after each scenario; they need the server's PID (known when the bench starts the
server, else ``--server-pid``). The machine is described first.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import cpu_s, machine

from conveyor.client import AsyncClient, Client
from conveyor.testing import ServerProcess
from conveyor.types import SendEntry

BODY = b"x" * 1024
BATCH = 100


class Row:
    def __init__(self, name: str, count: int, elapsed_s: float, cpu: float | None) -> None:
        self.name = name
        self.count = count
        self.elapsed_s = elapsed_s
        self.cpu = cpu
        self.extra = ""

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else 0.0


def measure(name: str, pid: int | None, fn: Callable[[], int]) -> Row:
    before = cpu_s(pid)
    started = time.perf_counter()
    count = fn()
    elapsed = time.perf_counter() - started
    after = cpu_s(pid)
    cpu = None if before is None or after is None or not count else (after - before) / count
    row = Row(name, count, elapsed, cpu)
    print(f"  {name}: {row.rate:,.0f} msg/s", file=sys.stderr)
    return row


# --- produce -------------------------------------------------------------------------
def produce_one(addr: str, queue: str, seconds: float) -> int:
    with Client(addr) as c:
        n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            c.send(queue, BODY)
            n += 1
        return n


def produce_batches(addr: str, queue: str, seconds: float) -> int:
    entries = [SendEntry(body=BODY) for _ in range(BATCH)]
    with Client(addr) as c:
        n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            c.send_batch(queue, entries)
            n += BATCH
        return n


def produce_async(addr: str, queue: str, seconds: float, tasks: int, batch: int) -> int:
    entries = [SendEntry(body=BODY) for _ in range(batch)]

    async def main() -> int:
        async with AsyncClient(addr) as c:
            await c.ping()
            end = time.monotonic() + seconds
            counts = [0] * tasks

            async def worker(k: int) -> None:
                while time.monotonic() < end:
                    if batch == 1:
                        await c.send(queue, BODY)
                    else:
                        await c.send_batch(queue, entries)
                    counts[k] += batch

            await asyncio.gather(*(worker(k) for k in range(tasks)))
            return sum(counts)

    return asyncio.run(main())


# --- consume -------------------------------------------------------------------------
def fill(addr: str, queue: str, count: int) -> None:
    entries = [SendEntry(body=BODY) for _ in range(1000)]

    async def main() -> None:
        async with AsyncClient(addr) as c:
            sem = asyncio.Semaphore(8)

            async def one(k: int) -> None:
                async with sem:
                    await c.send_batch(queue, entries[:k])

            await asyncio.gather(*(one(min(1000, count - i)) for i in range(0, count, 1000)))

    asyncio.run(main())


def consume_one(addr: str, queue: str, seconds: float) -> int:
    with Client(addr) as c:
        n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msgs = c.receive(queue, 1, wait_s=0)
            if not msgs:
                break
            c.delete(queue, msgs[0].receipt_handle)
            n += 1
        return n


def consume_batches(addr: str, queue: str, seconds: float) -> int:
    with Client(addr) as c:
        n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msgs = c.receive(queue, BATCH, wait_s=0)
            if not msgs:
                break
            c.delete_batch(queue, [m.receipt_handle for m in msgs])
            n += len(msgs)
        return n


def consume_async(addr: str, queue: str, seconds: float, tasks: int) -> int:
    async def main() -> int:
        async with AsyncClient(addr) as c:
            end = time.monotonic() + seconds
            counts = [0] * tasks

            async def worker(k: int) -> None:
                while time.monotonic() < end:
                    msgs = await c.receive(queue, BATCH, wait_s=0)
                    if not msgs:
                        return
                    await c.delete_batch(queue, [m.receipt_handle for m in msgs])
                    counts[k] += len(msgs)

            await asyncio.gather(*(worker(k) for k in range(tasks)))
            return sum(counts)

    return asyncio.run(main())


# --- latency -------------------------------------------------------------------------
def latency(addr: str, queue: str, seconds: float, rate: float) -> tuple[int, list[float], int]:
    """Returns (messages, latencies in ms, sends that failed)."""
    total = int(seconds * rate)

    async def main() -> tuple[int, list[float], int]:
        async with AsyncClient(addr) as producer, AsyncClient(addr) as consumer:
            await producer.ping()
            await consumer.ping()
            loop = asyncio.get_running_loop()
            t0 = loop.time() + 0.2
            scheduled = [t0 + i / rate for i in range(total)]
            lat: list[float] = []
            failed = 0
            sends: set[asyncio.Task[object]] = set()

            async def receiver() -> None:
                seen = 0
                while seen < total - failed:
                    msgs = await consumer.receive(queue, 100, wait_s=1)
                    now = loop.time()
                    for m in msgs:
                        i = int(m.body[:10])
                        lat.append((now - scheduled[i]) * 1000)
                    seen += len(msgs)
                    if msgs:
                        await consumer.delete_batch(queue, [m.receipt_handle for m in msgs])
                    elif loop.time() > scheduled[-1] + 10:
                        return

            async def send(i: int) -> None:
                nonlocal failed
                try:
                    await producer.send(queue, b"%010d" % i + BODY[10:])
                except Exception:
                    failed += 1

            recv = asyncio.create_task(receiver())
            for i, at in enumerate(scheduled):
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(send(i))  # never waits for earlier sends
                sends.add(task)
                task.add_done_callback(sends.discard)
            await asyncio.gather(*list(sends))
            await recv
            return total, lat, failed

    return asyncio.run(main())


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--address", help="a running server's native address (default: start one)")
    ap.add_argument("--server-pid", type=int, help="its PID, for CPU seconds per message")
    ap.add_argument("--seconds", type=float, default=3.0, help="per scenario (default 3)")
    ap.add_argument("--rate", type=float, default=500.0, help="latency send rate, msg/s")
    ap.add_argument("--fsync", default="always", help="for a server started here")
    args = ap.parse_args()

    server: ServerProcess | None = None
    tmp = tempfile.TemporaryDirectory(prefix="conveyor-native-bench-")
    if args.address:
        addr, pid = args.address, args.server_pid
        settings = "given server"
    else:
        server = ServerProcess(Path(tmp.name) / "data", fsync=args.fsync).start()
        addr, pid = server.native_address, server.pid
        settings = f"conveyor serve --fsync {args.fsync} (started by the bench)"
    try:
        with Client(addr) as c:
            for q in ("bench-p1", "bench-p32", "bench-b", "bench-b8", "bench-c", "bench-lat"):
                c.create_queue(q)
        s = args.seconds
        print("running...", file=sys.stderr)
        rows = [
            measure("produce, one at a time", pid, lambda: produce_one(addr, "bench-p1", s)),
            measure(
                "produce, 32 in flight", pid, lambda: produce_async(addr, "bench-p32", s, 32, 1)
            ),
            measure(
                f"produce, batches of {BATCH}", pid, lambda: produce_batches(addr, "bench-b", s)
            ),
            measure(
                f"produce, batches of {BATCH}, 8 in flight",
                pid,
                lambda: produce_async(addr, "bench-b8", s, 8, BATCH),
            ),
        ]
        # consumers drain what the producers left (and more, if too little)
        with Client(addr) as c:
            stats = c.get_queue("bench-b8").stats
        need = int(max(20_000, 3 * max(r.rate for r in rows) * s))
        fill(addr, "bench-c", need)
        rows += [
            measure("consume+delete, one at a time", pid, lambda: consume_one(addr, "bench-c", s)),
            measure(
                f"consume+delete, batches of {BATCH}",
                pid,
                lambda: consume_batches(addr, "bench-c", s),
            ),
            measure(
                f"consume+delete, batches of {BATCH}, 4 in flight",
                pid,
                lambda: consume_async(addr, "bench-c", s, 4),
            ),
        ]
        before = cpu_s(pid)
        total, lat, failed = latency(addr, "bench-lat", max(s, 5.0), args.rate)
        after = cpu_s(pid)
    finally:
        if server is not None:
            server.terminate()
            server.kill()
        tmp.cleanup()

    print(f"machine: {machine()}")
    print(f"server:  {settings}; client and server on the same machine over 127.0.0.1")
    print(f"messages: 1 KiB bodies; {s:g} s per scenario; queue stats after produce: {stats}")
    print()
    print(f"| {'scenario':<46} | {'msg/s':>9} | {'server CPU µs/msg':>17} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 19}|")
    for r in rows:
        cpu = "n/a" if r.cpu is None else f"{r.cpu * 1e6:,.0f}"
        print(f"| {r.name:<46} | {r.rate:>9,.0f} | {cpu:>17} |")
    print()
    if lat:
        cpu = "n/a" if before is None or after is None else f"{(after - before) / total * 1e6:,.0f}"
        print(
            f"end-to-end latency at {args.rate:g} msg/s for {max(s, 5.0):g} s "
            f"(from the scheduled send time to receipt by a long-polling consumer): "
            f"p50 {percentile(lat, 50):.2f} ms, p99 {percentile(lat, 99):.2f} ms, "
            f"max {max(lat):.2f} ms; {len(lat)} of {total} received, {failed} sends failed; "
            f"server CPU {cpu} µs/msg"
        )
        print(f"  mean {statistics.fmean(lat):.2f} ms")


if __name__ == "__main__":
    main()
