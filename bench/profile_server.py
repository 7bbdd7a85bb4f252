"""Profile the Conveyor server with py-spy while it serves workload (1), (2), (3) or (4)
of ``bench/compare.py`` (durable produce, one at a time / batched and pipelined; consume
and delete in batches, from a queue filled unprofiled first; a producer and a
long-polling consumer at a fixed rate).

    .venv/bin/python bench/profile_server.py --workload one --seconds 15
    .venv/bin/python bench/profile_server.py --workload batched --seconds 15
    .venv/bin/python bench/profile_server.py --workload consume --seconds 10
    .venv/bin/python bench/profile_server.py --workload latency --lat-rate 1000

Starts ``conveyor serve --fsync always`` on a temporary directory, attaches
``py-spy record --gil`` to it (samples of the thread holding the GIL: where the
server's Python CPU goes; time in fsync or waiting on a lock releases the GIL and is
not counted; ``--all-threads`` samples every thread py-spy judges busy instead),
drives the workload from this process for ``--seconds``, then prints the functions
with the largest share of samples: *self* (the sample's innermost frame) and
*inclusive* (anywhere on the stack), per thread and overall. For a flame graph, run
``py-spy record -p PID -f speedscope -o FILE`` against a server yourself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workloads
from peers.conveyor_native import Client, Server


def pyspy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else "py-spy"


def summarize(raw: Path, top: int) -> str:
    """``raw`` is py-spy's collapsed-stack output: ``frame;frame;... count`` a line,
    outermost first, a frame being ``function (file:line)``; the first is the thread."""
    self_count: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = [_short(f) for f in frames[1:]] or [frames[0]]
        self_count[names[-1]] += count
        for name in set(names):
            incl[name] += count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "threads:"]
    out += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common()]
    out += ["", f"top {top} by self time:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_count.most_common(top)]
    out += ["", f"top {top} inclusive (on the stack):"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # "send (conveyor/server/native.py:123)" -> "send (conveyor/server/native.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workload", choices=["one", "batched", "consume", "latency"], default="one")
    ap.add_argument("--lat-rate", type=float, default=1000.0, help="latency: msg/s")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread py-spy thinks busy (default: only the GIL holder)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="conveyor-profile-") as tmp:
        server = Server(Path(tmp), {})
        conn = server.start()
        try:
            client = Client(conn, {})
            client.setup("profile")
            client.produce_one("profile", 200, 10)  # warm up
            raw = Path(tmp) / "profile.txt"
            cmd = [pyspy(), "record", "-p", str(server.pids[0]), "-r", str(args.rate)]
            cmd += ["-d", str(int(args.seconds + 2)), "--threads", "-f", "raw", "-o", str(raw)]
            if not args.all_threads:
                cmd.append("--gil")
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            t0 = time.monotonic()
            if args.workload == "one":
                n = client.produce_one("profile", 10**9, args.seconds)
            elif args.workload == "consume":
                spy.terminate()  # fill the queue first, unprofiled
                spy.wait()
                asyncio.run(client.produce_pipelined("profile", 400_000, 8, 100, 60))
                spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)
                t0 = time.monotonic()
                n = asyncio.run(client.consume("profile", 10**9, 4, 100, args.seconds))
            elif args.workload == "latency":
                lat = workloads.latency(
                    "conveyor_native", conn, {}, "profile", args.lat_rate, args.seconds, 32, 10
                )
                n = lat["received"]
                print(
                    f"latency p50 / p99 / p99.9: {lat['p50']:.2f} / {lat['p99']:.2f} / "
                    f"{lat['p999']:.2f} ms"
                )
            else:
                n = asyncio.run(client.produce_pipelined("profile", 10**9, 8, 100, args.seconds))
            elapsed = time.monotonic() - t0
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0 or not raw.exists():
                print(err.decode(errors="replace"), file=sys.stderr)
                return 1
            print(f"workload {args.workload}: {n / elapsed:,.0f} msg/s while profiled")
            print(summarize(raw, args.top))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
