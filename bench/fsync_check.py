"""Check the "fsync before ack" column of ``bench/compare.py`` by counting: start each
system as the harness does, attach ``strace -f -c`` to its server processes, send
``--n`` messages one at a time (each waiting for its confirm), and report the fsync-
family system calls (fsync, fdatasync, sync_file_range, syncfs) per message.

With one message in flight at a time there is nothing to share an fsync with, so a
system that fsyncs before it acknowledges makes at least about one such call per
message; one that acknowledges after a write to the page cache makes next to none
(a timer's fsync now and then). strace slows the servers down a lot: no rates here.

    .venv/bin/python bench/fsync_check.py [--systems conveyor,redis-always] [--n 200]

Needs ``strace`` (Debian package strace) and root or ptrace permission.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import proc_tree
from peers import BY_NAME, SPECS, install_signal_handlers, stop_all

CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs")


def count_syncs(summary: str) -> dict[str, int]:
    """Parse the table ``strace -c`` prints: calls per syscall name."""
    out: dict[str, int] = {}
    for line in summary.splitlines():
        parts = line.split()
        if parts and parts[-1] in CALLS:
            # % time, seconds, usecs/call, calls, [errors], syscall
            out[parts[-1]] = int(parts[3])
    return out


def check(name: str, n: int, root: Path) -> str:
    spec = BY_NAME[name]
    mod = spec.load()
    workdir = root / name
    workdir.mkdir()
    os.chmod(workdir, 0o755)
    server = mod.Server(workdir, spec.settings)
    try:
        conn = server.start()
        client = mod.Client(conn, spec.settings)
        client.setup("fsync-check")
        client.produce_one("fsync-check", 20, 30)  # warm up: connections, files
        pids = [p for root_pid in server.pids for p in proc_tree(root_pid)]
        out = workdir / "strace.txt"
        argv = ["strace", "-f", "-c", "-o", str(out), "-e", "trace=" + ",".join(CALLS)]
        for p in pids:
            argv += ["-p", str(p)]
        tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached to every thread
        t0 = time.monotonic()
        sent = client.produce_one("fsync-check", n, 120)
        elapsed = time.monotonic() - t0
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        calls = count_syncs(out.read_text())
        total = sum(calls.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "none"
        return (
            f"| {spec.title} | {spec.fsync} | {sent} | {total / max(1, sent):.2f} | "
            f"{detail} | {elapsed:.1f} |"
        )
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--systems", help="comma-separated (default: all installed but moto)")
    ap.add_argument("--n", type=int, default=200, help="messages per system (default 200)")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        print("strace not installed (apt-get install strace)", file=sys.stderr)
        return 2
    install_signal_handlers()
    names = (
        [s.strip() for s in args.systems.split(",")]
        if args.systems
        else [s.name for s in SPECS if not s.sqs_only]
    )
    root = Path(tempfile.mkdtemp(prefix="conveyor-fsync-check-"))
    os.chmod(root, 0o755)
    print(
        "| system | fsync before ack (claimed) | messages sent one at a time | "
        "fsync-family calls per message | calls | seconds under strace |"
    )
    print("|---|---|---:|---:|---|---:|")
    try:
        for name in names:
            reason = BY_NAME[name].available()
            if reason:
                print(f"| {BY_NAME[name].title} | skipped: {reason} | | | | |")
                continue
            print(check(name, args.n, root), flush=True)
    finally:
        stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
