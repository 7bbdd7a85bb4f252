"""Micro-benchmark of the native protocol codec (no sockets): frames per second.

Usage:
    python bench/native_codec_bench.py [--frames N] [--runs R]

Cases (each the median of R runs of N frames, through a client and a server
NativeConnection wired together in memory):
- a ``send`` request with a 1 KiB body: the client encodes (with and without its
  send check), the server decodes;
- a ``receive`` response of 10 messages of 1 KiB with two attributes: the server
  encodes, the client decodes;
and each half alone. Time is the process's CPU time (``time.process_time``), so other
load on the machine does not count; the codec is single-threaded and does no I/O.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from conveyor.protocol import native as n

BODY = b"x" * 1024
ATTRS = {
    "kind": n.MessageAttribute(data_type="String", string_value="order"),
    "n": n.MessageAttribute(data_type="Number", string_value="42"),
}
MESSAGE = n.Message(
    message_id="0f8e2c3a-5b7d-4c1e-9a2b-3c4d5e6f7a8b",
    body=BODY,
    receipt_handle="AQAAAAAAAAEAAAAAAAAAKgAAAAE" + "x" * 40,
    attributes=ATTRS,
    sent_ms=1_700_000_000_000,
    receive_count=1,
    first_receive_ms=1_700_000_000_100,
)
MAX_INFLIGHT = n.inflight_requests_max


def pair(check_sends: bool) -> tuple[n.NativeConnection, n.NativeConnection]:
    client = n.NativeConnection("client", max_inflight=MAX_INFLIGHT, check_sends=check_sends)
    server = n.NativeConnection("server", max_inflight=MAX_INFLIGHT)
    server.receive_data(client.send(client.hello(client="bench")))
    server.next_event()
    client.receive_data(server.send(server.welcome()))
    client.next_event()
    return client, server


def send_request(frames: int, check_sends: bool, part: str) -> float:
    """Seconds for ``frames`` 1 KiB send requests: encode, decode or both."""
    client, server = pair(check_sends)
    requests = [n.SendRequest(id=i, queue="orders", body=BODY) for i in range(frames)]
    if part == "decode":
        wire = [client.send(r) for r in requests]
        t0 = time.process_time()
        for data in wire:
            server.receive_data(data)
            server.next_event()
        return time.process_time() - t0
    t0 = time.process_time()
    if part == "encode":
        for r in requests:
            client.send(r)
    else:
        for r in requests:
            server.receive_data(client.send(r))
            server.next_event()
    return time.process_time() - t0


def receive_response(frames: int, part: str) -> float:
    """Seconds for ``frames`` receive responses of 10 messages: encode, decode, both."""
    client, server = pair(check_sends=False)
    for i in range(frames):
        server.receive_data(client.send(n.ReceiveRequest(id=i, queue="orders", max_messages=10)))
        server.next_event()
    responses = [n.ReceiveResponse(id=i, messages=[MESSAGE] * 10) for i in range(frames)]
    if part == "decode":
        wire = [server.send(r) for r in responses]
        t0 = time.process_time()
        for data in wire:
            client.receive_data(data)
            client.next_event()
        return time.process_time() - t0
    t0 = time.process_time()
    if part == "encode":
        for r in responses:
            server.send(r)
    else:
        for r in responses:
            client.receive_data(server.send(r))
            client.next_event()
    return time.process_time() - t0


def rate(fn: Callable[[], float], frames: int, runs: int) -> int:
    return round(frames / statistics.median(fn() for _ in range(runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    f, r = min(args.frames, MAX_INFLIGHT), args.runs
    cases: list[tuple[str, Callable[[], float]]] = [
        ("send 1 KiB, encode+decode, send check on", lambda: send_request(f, True, "both")),
        ("send 1 KiB, encode+decode, send check off", lambda: send_request(f, False, "both")),
        ("send 1 KiB, encode only, send check on", lambda: send_request(f, True, "encode")),
        ("send 1 KiB, encode only, send check off", lambda: send_request(f, False, "encode")),
        ("send 1 KiB, decode only", lambda: send_request(f, False, "decode")),
        ("receive response 10 x 1 KiB, encode+decode", lambda: receive_response(f, "both")),
        ("receive response 10 x 1 KiB, encode only", lambda: receive_response(f, "encode")),
        ("receive response 10 x 1 KiB, decode only", lambda: receive_response(f, "decode")),
    ]
    width = max(len(name) for name, _ in cases)
    for name, fn in cases:
        print(f"{name:<{width}}  {rate(fn, f, r):>9} frames/s")


if __name__ == "__main__":
    main()
