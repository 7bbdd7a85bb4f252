"""Benchmarks of the embedded broker: throughput, recovery time and memory.

Usage:
    python bench/embedded_bench.py [--messages N] [--queued N] [--runs R] [--fsync always]

Prints one table: 1 KiB messages, fsync policy as given (default always),
- send one at a time from 1 thread and from 8 threads (group commit),
- send in batches of 10 and of 100,
- receive + delete in batches of 10,
- with ``--queued N`` (default 1,000,000): the RSS of a process holding N queued 1 KiB
  messages in one queue, the time to reopen that directory (recovery) with and without a
  checkpoint, and the RSS after recovery.
Each throughput figure is the median of ``--runs`` runs. The machine is described first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import machine

import conveyor
from conveyor.types import SendEntry

BODY = b"x" * 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_send(tmp: Path, fsync: str, n: int, threads: int, batch: int) -> float:
    d = tmp / f"send-{threads}-{batch}-{time.monotonic_ns()}"
    with conveyor.open(d, fsync=fsync, maintenance_interval_s=None) as b:
        b.create_queue("q")
        per_thread = n // threads

        def work() -> None:
            if batch == 1:
                for _ in range(per_thread):
                    b.send("q", BODY)
            else:
                entries = [SendEntry(body=BODY) for _ in range(batch)]
                for _ in range(per_thread // batch):
                    b.send_batch("q", entries)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.perf_counter() - start
    shutil.rmtree(d, ignore_errors=True)
    return per_thread * threads / elapsed


def bench_consume(tmp: Path, fsync: str, n: int) -> float:
    d = tmp / f"consume-{time.monotonic_ns()}"
    with conveyor.open(d, fsync=fsync, maintenance_interval_s=None) as b:
        b.create_queue("q")
        entries = [SendEntry(body=BODY) for _ in range(100)]
        for _ in range(n // 100):
            b.send_batch("q", entries)
        start = time.perf_counter()
        got = 0
        while msgs := b.receive("q", 10):
            b.delete_batch("q", [m.receipt_handle for m in msgs])
            got += len(msgs)
        elapsed = time.perf_counter() - start
    shutil.rmtree(d, ignore_errors=True)
    return got / elapsed


def child_fill(d: str, n: int) -> None:
    """Runs in a subprocess: fill a queue with n messages, report RSS."""
    with conveyor.open(d, fsync="never", maintenance_interval_s=None) as b:
        b.create_queue("q")
        entries = [SendEntry(body=BODY) for _ in range(1000)]
        start = time.perf_counter()
        for _ in range(n // 1000):
            b.send_batch("q", entries)
        fill_s = time.perf_counter() - start
        rss = rss_mb()
        print(json.dumps({"fill_s": fill_s, "rss_mb": rss}))


def child_open(d: str, checkpoint: bool) -> None:
    """Runs in a subprocess: time the recovery of a data directory, report RSS."""
    if not checkpoint:
        for ck in Path(d).glob("queues/*/p*/checkpoints/*"):
            ck.unlink()
    start = time.perf_counter()
    b = conveyor.open(d, fsync="never", maintenance_interval_s=None)
    elapsed = time.perf_counter() - start
    stats = b.get_queue("q").stats
    rss = rss_mb()
    # leave without writing a new checkpoint, so the next run measures the same thing
    os.write(
        1,
        (
            json.dumps(
                {"open_s": elapsed, "rss_mb": rss, "messages": stats.messages if stats else 0}
            )
            + "\n"
        ).encode(),
    )
    os._exit(0)


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-fill":
        child_fill(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-open":
        child_open(sys.argv[2], sys.argv[3] == "1")
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(
        f"settings: 1 KiB bodies, fsync={args.fsync}, {args.messages} messages a run, median of {args.runs} runs"
    )
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        rows: list[tuple[str, float]] = []
        cases = [
            (
                "send, 1 at a time, 1 thread",
                lambda: bench_send(tmp, args.fsync, args.messages // 5, 1, 1),
            ),
            (
                "send, 1 at a time, 8 threads",
                lambda: bench_send(tmp, args.fsync, args.messages, 8, 1),
            ),
            ("send, batches of 10", lambda: bench_send(tmp, args.fsync, args.messages * 4, 1, 10)),
            (
                "send, batches of 100",
                lambda: bench_send(tmp, args.fsync, args.messages * 10, 1, 100),
            ),
            (
                "receive+delete, batches of 10",
                lambda: bench_consume(tmp, args.fsync, args.messages * 4),
            ),
        ]
        for label, fn in cases:
            rates = [fn() for _ in range(args.runs)]
            rows.append((label, statistics.median(rates)))
            print(
                f"  {label:<36} {statistics.median(rates):>10,.0f} msg/s   (runs: {', '.join(f'{r:,.0f}' for r in rates)})",
                flush=True,
            )
        if args.queued:
            d = str(tmp / "queued")
            fill = run_child("--child-fill", d, str(args.queued))
            print(
                f"  {args.queued:,} queued 1 KiB messages: RSS {fill['rss_mb']:.0f} MB after filling ({fill['fill_s']:.1f} s, fsync=never)"
            )
            with_ck = run_child("--child-open", d, "1")
            print(
                f"  recovery with checkpoint:    {with_ck['open_s']:.2f} s, RSS {with_ck['rss_mb']:.0f} MB, {with_ck['messages']:,} messages"
            )
            without = run_child("--child-open", d, "0")
            print(
                f"  recovery replaying the log:  {without['open_s']:.2f} s, RSS {without['rss_mb']:.0f} MB, {without['messages']:,} messages"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
