"""SQS HTTP load generator: SendMessage, ReceiveMessage, DeleteMessage over raw HTTP/1.1.

Not boto3 (whose client-side cost would be what gets measured): hand-built AWS JSON 1.0
requests on keep-alive connections, several in flight per connection (pipelined), many
connections, one asyncio loop. It reports requests/s, messages/s and the server's CPU
seconds per message, read from ``/proc/<pid>/stat`` (user + system time of the whole
server process, all threads).

    # against a running server (give its pid for the CPU figures)
    python bench/sqs_http_bench.py --url http://127.0.0.1:9324 --pid 12345

    # or let it start one on a temporary data directory
    python bench/sqs_http_bench.py --spawn --fsync always --messages 50000

Phases: ``send`` (SendMessage of ``--messages`` bodies of ``--body-bytes``), then
``receive`` (ReceiveMessage, up to 10 a request, each message then deleted with one
DeleteMessage). Unsigned requests: run the server without access keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchlib import cpu_s


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

    def report(self) -> str:
        line = (
            f"{self.name:8s} {self.requests / self.wall_s:10.0f} req/s "
            f"{self.messages / self.wall_s:10.0f} msgs/s  ({self.requests} requests, "
            f"{self.messages} messages, {self.errors} errors, {self.wall_s:.2f} s)"
        )
        if self.cpu_s is not None and self.messages:
            line += (
                f"  server CPU {self.cpu_s:.2f} s = {1e6 * self.cpu_s / self.messages:.0f} us/msg, "
                f"{self.requests / self.cpu_s:.0f} req per CPU-s"
            )
        return line


async def run(args: argparse.Namespace, url: str, pid: int | None) -> list[Phase]:
    parts = urlsplit(url)
    host = parts.netloc
    conns = [
        Conn(*await asyncio.open_connection(parts.hostname, parts.port))
        for _ in range(args.connections)
    ]
    create = request(host, "CreateQueue", {"QueueName": args.queue})
    status, body = (await conns[0].calls([create]))[0]
    assert status == 200, body
    queue_url = json.loads(body)["QueueUrl"]
    body_text = "x" * args.body_bytes
    depth = args.pipeline

    # --- send
    phase = Phase("send")
    remaining = args.messages
    send_req = request(host, "SendMessage", {"QueueUrl": queue_url, "MessageBody": body_text})

    async def sender(conn: Conn) -> None:
        nonlocal remaining
        while remaining > 0:
            n = min(depth, remaining)
            remaining -= n
            for status, _ in await conn.calls([send_req] * n):
                phase.requests += 1
                if status == 200:
                    phase.messages += 1
                else:
                    phase.errors += 1

    cpu0, t0 = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(sender(c) for c in conns))
    phase.wall_s = time.perf_counter() - t0
    cpu1 = cpu_s(pid)
    phase.cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    phases = [phase]

    # --- receive + delete
    phase = Phase("receive")
    left = phase_target = phases[0].messages
    recv_req = request(host, "ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 10})
    empty_in_a_row = 0

    async def receiver(conn: Conn) -> None:
        nonlocal left, empty_in_a_row
        while left > 0 and empty_in_a_row < 50:
            answers = await conn.calls([recv_req] * depth)
            deletes = []
            for status, body in answers:
                phase.requests += 1
                if status != 200:
                    phase.errors += 1
                    continue
                msgs = json.loads(body).get("Messages", [])
                empty_in_a_row = 0 if msgs else empty_in_a_row + 1
                for m in msgs:
                    deletes.append(
                        request(
                            host,
                            "DeleteMessage",
                            {"QueueUrl": queue_url, "ReceiptHandle": m["ReceiptHandle"]},
                        )
                    )
            for i in range(0, len(deletes), depth * 4):
                for status, _ in await conn.calls(deletes[i : i + depth * 4]):
                    phase.requests += 1
                    if status == 200:
                        phase.messages += 1
                        left -= 1
                    else:
                        phase.errors += 1

    cpu0, t0 = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(receiver(c) for c in conns))
    phase.wall_s = time.perf_counter() - t0
    cpu1 = cpu_s(pid)
    phase.cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    phases.append(phase)
    if phase.messages < phase_target:
        print(f"note: {phase_target - phase.messages} messages not received", file=sys.stderr)
    for c in conns:
        c.writer.close()
    return phases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", help="server base URL (default: --spawn one)")
    ap.add_argument("--pid", type=int, help="server pid, for CPU seconds per message")
    ap.add_argument("--spawn", action="store_true", help="start a server on a temp data dir")
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--body-bytes", type=int, default=100)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pipeline", type=int, default=4, help="requests in flight per connection")
    ap.add_argument("--queue", default=f"bench-{os.getpid()}")
    args = ap.parse_args()
    if args.url is None and not args.spawn:
        args.spawn = True
    if args.spawn:
        from conveyor.testing import ServerProcess

        with (
            tempfile.TemporaryDirectory() as tmp,
            ServerProcess(Path(tmp) / "data", fsync=args.fsync, log_level="warning") as server,
        ):
            phases = asyncio.run(run(args, server.http_url, server.pid))
    else:
        phases = asyncio.run(run(args, args.url, args.pid))
    print(
        f"{args.messages} messages of {args.body_bytes} B, {args.connections} connections, "
        f"pipeline {args.pipeline}, fsync={args.fsync if args.spawn else '(server setting)'}"
    )
    for phase in phases:
        print(phase.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
