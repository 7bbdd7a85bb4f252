"""Benchmarks of the storage layer: group commit throughput, and opening a large log.

Usage:
    python bench/storage_bench.py [--seconds S] [--records N] [--dir PATH]

Prints, for 1 KiB records:
- what the disk allows: a plain write + fsync loop;
- appends/s with fsync=always from 1 thread and from 8 threads (each thread appends one
  record and waits for it to be durable, in a loop), and the fsyncs/s behind them;
- the same with on_durable callbacks (the asyncio server's path) from 8 threads;
- appends/s with fsync=never, one at a time and in batches of 100 (the CPU cost);
- with ``--records N`` (default 1,000,000): the time and the RSS growth of opening a log
  holding N records (measured in a fresh process), and the time to scan all of it.
No assertions: the numbers depend on the disk. The machine is described first.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import machine

from conveyor.storage import FileLog

PAYLOAD = b"x" * 1024
TS = 1_700_000_000_000


class CountingFsync:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        os.fsync(fd)
        with self.lock:
            self.count += 1


def raw_fsync_rate(path: Path, seconds: float) -> float:
    """write(1 KiB) + fsync in a loop, without Conveyor: what the disk allows."""
    path.mkdir()
    fd = os.open(path / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    n = 0
    t0 = time.monotonic()
    stop = t0 + seconds
    while time.monotonic() < stop:
        os.write(fd, PAYLOAD)
        os.fsync(fd)
        n += 1
    elapsed = time.monotonic() - t0
    os.close(fd)
    shutil.rmtree(path)
    return n / elapsed


def throughput_wait(path: Path, threads: int, seconds: float) -> tuple[float, float]:
    """(appends/s, fsyncs/s) with append + wait_durable per record per thread."""
    seam = CountingFsync()
    log = FileLog(path, fsync="always", fsync_fn=seam)
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(n: int) -> None:
        done = 0
        while time.monotonic() < stop:
            log.wait_durable(log.append(1, TS, PAYLOAD))
            done += 1
        counts[n] = done

    before = seam.count
    t0 = time.monotonic()
    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    fsyncs = seam.count - before
    log.close()
    shutil.rmtree(path)
    return sum(counts) / elapsed, fsyncs / elapsed


def throughput_callbacks(path: Path, threads: int, seconds: float) -> tuple[float, float]:
    """(appends/s, fsyncs/s) with on_durable: each thread keeps one record in flight."""
    seam = CountingFsync()
    log = FileLog(path, fsync="always", fsync_fn=seam)
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(n: int) -> None:
        ev = threading.Event()
        done = 0
        while time.monotonic() < stop:
            ev.clear()
            log.on_durable(log.append(1, TS, PAYLOAD), ev.set)
            ev.wait()
            done += 1
        counts[n] = done

    before = seam.count
    t0 = time.monotonic()
    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    fsyncs = seam.count - before
    log.close()
    shutil.rmtree(path)
    return sum(counts) / elapsed, fsyncs / elapsed


def throughput_never(path: Path, batch: int, seconds: float) -> float:
    log = FileLog(path, fsync="never")
    items = [(1, TS, PAYLOAD)] * batch
    n = 0
    t0 = time.monotonic()
    stop = t0 + seconds
    while time.monotonic() < stop:
        if batch == 1:
            log.append(1, TS, PAYLOAD)
        else:
            log.append_batch(items)
        n += batch
    elapsed = time.monotonic() - t0
    log.close()
    shutil.rmtree(path)
    return n / elapsed


def build_large(path: Path, records: int) -> float:
    log = FileLog(path, fsync="never")
    items = [(1, TS, PAYLOAD)] * 1000
    t0 = time.monotonic()
    left = records
    while left:
        k = min(left, 1000)
        log.append_batch(items[:k])
        left -= k
    log.close()
    return time.monotonic() - t0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def open_child(path: str) -> None:
    """In a fresh process: print RSS before, open time, RSS after, segments, scan time."""
    before = rss_kib()
    t0 = time.perf_counter()
    log = FileLog(path, fsync="never")
    opened = time.perf_counter() - t0
    after = rss_kib()
    segments = len(log.segments())
    t0 = time.perf_counter()
    n = sum(1 for _ in log.scan())
    scanned = time.perf_counter() - t0
    log.close()
    print(before, after, opened, segments, n, scanned)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--open-child":
        open_child(sys.argv[2])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=args.dir))
    try:
        print(machine())
        print(f"data in {root}; 1 KiB records; {args.seconds:.0f} s per run")
        print()
        print(f"{'run':<46} {'appends/s':>10} {'fsyncs/s':>9}")
        raw = raw_fsync_rate(root / "raw", args.seconds)
        print(f"{'raw write+fsync loop (no Conveyor)':<46} {raw:>10,.0f} {raw:>9,.0f}")
        for threads in (1, 8):
            rate, fsyncs = throughput_wait(root / "w", threads, args.seconds)
            print(
                f"{f'fsync=always, wait_durable, {threads} thread(s)':<46} {rate:>10,.0f} {fsyncs:>9,.0f}"
            )
        rate, fsyncs = throughput_callbacks(root / "c", 8, args.seconds)
        print(f"{'fsync=always, on_durable, 8 threads':<46} {rate:>10,.0f} {fsyncs:>9,.0f}")
        for batch in (1, 100):
            rate = throughput_never(root / "n", batch, args.seconds)
            print(f"{f'fsync=never, batches of {batch}, 1 thread':<46} {rate:>10,.0f} {'-':>9}")
        if args.records:
            print()
            built = build_large(root / "big", args.records)
            size = sum(p.stat().st_size for p in (root / "big").iterdir())
            print(f"wrote {args.records:,} records ({size / 2**20:,.0f} MiB) in {built:.1f} s")
            out = subprocess.run(
                [sys.executable, __file__, "--open-child", str(root / "big")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            before, after, opened, segments, n, scanned = (
                int(out[0]),
                int(out[1]),
                float(out[2]),
                int(out[3]),
                int(out[4]),
                float(out[5]),
            )
            print(
                f"open: {opened * 1000:,.0f} ms, {segments} segments, RSS {before / 1024:,.1f} -> "
                f"{after / 1024:,.1f} MiB (+{(after - before) / 1024:,.1f} MiB, "
                f"{(after - before) * 1024 / max(n, 1):.1f} bytes a record)"
            )
            print(f"scan of all {n:,} records: {scanned:.1f} s ({n / scanned:,.0f} records/s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
