"""SQS HTTP load generator: SendMessage, ReceiveMessage, DeleteMessage over raw HTTP/1.1.

Not boto3 (whose client-side cost would be what gets measured): hand-built AWS JSON 1.0
requests on keep-alive connections, several in flight per connection (pipelined), many
connections, one asyncio loop. For each action it reports requests/s and the server's
CPU per request, read from ``/proc/<pid>/stat`` (user + system time of the whole server
process, all threads) before and after the phase; with ``--runs N`` it repeats and
reports medians.

    # let it start servers (a fresh one per run, on a temporary data directory)
    python bench/sqs_http_bench.py --fsync never,always --runs 3

    # against a running server (give its pid for the CPU figures)
    python bench/sqs_http_bench.py --url http://127.0.0.1:9324 --pid 12345

Phases, one after the other on one queue: ``send`` (SendMessage of ``--messages`` bodies
of ``--body-bytes``), ``receive`` (ReceiveMessage of up to ``--receive-max`` messages a
request, with a visibility timeout long enough that nothing comes back, until every
message sent has been received) and ``delete`` (one DeleteMessage per message received).
``--phases send`` runs only the sends (for profiling one action). Unsigned requests:
run the server without access keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchlib import cpu_s, machine

PHASES = ("send", "receive", "delete")
ACTIONS = {"send": "SendMessage", "receive": "ReceiveMessage", "delete": "DeleteMessage"}
empty_receives_max = 50  # per connection in a row: the queue is drained (or stuck)


def request(host: str, action: str, payload: dict[str, object]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: AmazonSQS.{action}\r\n"
        f"Content-Type: application/x-amz-json-1.0\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Conn:
    """One keep-alive connection; answers come back in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def calls(self, requests: list[bytes]) -> list[tuple[int, bytes]]:
        self.writer.write(b"".join(requests))
        return [await self.read_response() for _ in requests]


@dataclass
class Phase:
    name: str
    requests: int = 0
    messages: int = 0
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float | None = None
    sys_s: float | None = None  # the kernel's part of cpu_s

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_us(self) -> float | None:
        """Server CPU microseconds per request."""
        if self.cpu_s is None or not self.requests:
            return None
        return 1e6 * self.cpu_s / self.requests

    def report(self) -> str:
        line = (
            f"{ACTIONS[self.name]:15s} {self.rate:7.0f} req/s  ({self.requests} requests, "
            f"{self.messages} messages, {self.errors} errors, {self.wall_s:.2f} s)"
        )
        if self.cpu_us is not None and self.cpu_s:
            line += (
                f"  server CPU {self.cpu_s:.2f} s = {self.cpu_us:.0f} us/req, "
                f"{self.requests / self.cpu_s:.0f} req per CPU-s"
            )
            if self.sys_s is not None:
                line += f", {100 * self.sys_s / self.cpu_s:.0f}% in the kernel"
        return line


def _sys_s(pid: int | None) -> float | None:
    """System (kernel) CPU seconds of process ``pid``: part of :func:`cpu_s`."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


async def _measure(phase: Phase, pid: int | None, work: asyncio.Future[object]) -> None:
    cpu0, sys0, t0 = cpu_s(pid), _sys_s(pid), time.perf_counter()
    await work
    phase.wall_s = time.perf_counter() - t0
    cpu1, sys1 = cpu_s(pid), _sys_s(pid)
    phase.cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    phase.sys_s = None if sys0 is None or sys1 is None else sys1 - sys0


async def run(args: argparse.Namespace, url: str, pid: int | None) -> list[Phase]:
    parts = urlsplit(url)
    host = parts.netloc
    conns = [
        Conn(*await asyncio.open_connection(parts.hostname, parts.port))
        for _ in range(args.connections)
    ]
    queue = f"{args.queue}-{time.monotonic_ns()}"
    status, body = (await conns[0].calls([request(host, "CreateQueue", {"QueueName": queue})]))[0]
    assert status == 200, body
    queue_url = json.loads(body)["QueueUrl"]
    depth = args.pipeline
    phases: list[Phase] = []

    # --- send
    send = Phase("send")
    remaining = args.messages
    send_req = request(
        host, "SendMessage", {"QueueUrl": queue_url, "MessageBody": "x" * args.body_bytes}
    )

    async def sender(conn: Conn) -> None:
        nonlocal remaining
        while remaining > 0:
            n = min(depth, remaining)
            remaining -= n
            for status, _ in await conn.calls([send_req] * n):
                send.requests += 1
                if status == 200:
                    send.messages += 1
                else:
                    send.errors += 1

    await _measure(send, pid, asyncio.gather(*(sender(c) for c in conns)))
    phases.append(send)
    if args.phases == "send":
        return phases

    # --- receive (nothing comes back within the bench: visibility 600 s)
    receive = Phase("receive")
    handles: list[str] = []
    recv_req = request(
        host,
        "ReceiveMessage",
        {"QueueUrl": queue_url, "MaxNumberOfMessages": args.receive_max, "VisibilityTimeout": 600},
    )

    async def receiver(conn: Conn) -> None:
        empty_in_a_row = 0
        while len(handles) < send.messages and empty_in_a_row < empty_receives_max:
            for status, body in await conn.calls([recv_req] * depth):
                receive.requests += 1
                if status != 200:
                    receive.errors += 1
                    continue
                msgs = json.loads(body).get("Messages", [])
                empty_in_a_row = 0 if msgs else empty_in_a_row + 1
                receive.messages += len(msgs)
                handles.extend(m["ReceiptHandle"] for m in msgs)

    await _measure(receive, pid, asyncio.gather(*(receiver(c) for c in conns)))
    phases.append(receive)
    if len(handles) < send.messages:
        print(f"note: {send.messages - len(handles)} messages not received", file=sys.stderr)

    # --- delete
    delete = Phase("delete")
    deletes = [
        request(host, "DeleteMessage", {"QueueUrl": queue_url, "ReceiptHandle": h}) for h in handles
    ]

    async def deleter(conn: Conn, mine: list[bytes]) -> None:
        for i in range(0, len(mine), depth):
            for status, _ in await conn.calls(mine[i : i + depth]):
                delete.requests += 1
                if status == 200:
                    delete.messages += 1
                else:
                    delete.errors += 1

    n = len(conns)
    await _measure(
        delete, pid, asyncio.gather(*(deleter(c, deletes[i::n]) for i, c in enumerate(conns)))
    )
    phases.append(delete)
    for c in conns:
        c.writer.close()
    return phases


def run_spawned(args: argparse.Namespace, fsync: str) -> list[Phase]:
    from conveyor.testing import ServerProcess

    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(Path(tmp) / "data", fsync=fsync, log_level="warning") as server,
    ):
        return asyncio.run(run(args, server.http_url, server.pid))


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summary(fsync: str, runs: list[list[Phase]]) -> list[str]:
    lines = [f"fsync={fsync}, medians of {len(runs)} run(s):"]
    for i, name in enumerate(PHASES):
        rows = [r[i] for r in runs if len(r) > i]
        if not rows:
            continue
        rate = statistics.median(p.rate for p in rows)
        cpu = _median([p.cpu_us for p in rows])
        per_msg = statistics.median(p.messages / p.requests for p in rows if p.requests)
        line = f"  {ACTIONS[name]:15s} {rate:7.0f} req/s"
        if cpu is not None:
            line += f"  {cpu:6.0f} us server CPU/req  {1e6 / cpu:7.0f} req per CPU-s"
        line += f"  ({per_msg:.1f} msg/req; runs: "
        line += " / ".join(
            f"{p.rate:.0f} req/s" + (f" {p.cpu_us:.0f} us" if p.cpu_us is not None else "")
            for p in rows
        )
        lines.append(line + ")")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", help="server base URL (default: start one per run)")
    ap.add_argument("--pid", type=int, help="server pid, for CPU per request")
    ap.add_argument(
        "--fsync", default="never,always", help="comma-separated policies for started servers"
    )
    ap.add_argument("--runs", type=int, default=3, help="medians of this many runs")
    ap.add_argument("--phases", default="all", choices=["all", "send"])
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--body-bytes", type=int, default=1024)
    ap.add_argument("--receive-max", type=int, default=10, help="MaxNumberOfMessages")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pipeline", type=int, default=4, help="requests in flight per connection")
    ap.add_argument("--queue", default=f"bench-{os.getpid()}")
    args = ap.parse_args()
    print(machine())
    print(
        f"{args.messages} messages of {args.body_bytes} B, {args.connections} connections, "
        f"pipeline {args.pipeline}, ReceiveMessage of up to {args.receive_max}"
    )
    policies = ["(server setting)"] if args.url else args.fsync.split(",")
    for fsync in policies:
        runs = []
        for i in range(args.runs):
            if args.url:
                phases = asyncio.run(run(args, args.url, args.pid))
            else:
                phases = run_spawned(args, fsync)
            print(f"fsync={fsync} run {i + 1}:")
            for phase in phases:
                print("  " + phase.report())
            runs.append(phases)
        print("\n".join(summary(fsync, runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
