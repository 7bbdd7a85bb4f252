"""CPU of the SQS and HTTP layers alone: no broker, no socket, no event loop round trips.

A stub broker answers at once (a send returns a fixed message id, a receive returns the
same ``--receive-max`` messages every time, a delete succeeds), a fake transport keeps
what is written, and the same AWS JSON 1.0 requests the load generator
(``bench/sqs_http_bench.py``) sends are fed to one :class:`conveyor.server.http.
HttpProtocol`, ``--pipeline`` at a time, through the node's routing and the request
counter of :class:`conveyor.metrics.Metrics`. It reports the process CPU per request
of each action: what the server spends on a request besides the broker, the kernel and
asyncio's socket code (with warm caches: the same request over and over).

    python bench/sqs_layer_bench.py                  # about 20 s
    python bench/sqs_layer_bench.py --repeats 5 --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqs_http_bench import request

from conveyor.metrics import Metrics
from conveyor.server.http import HttpProtocol, Request, Response
from conveyor.server.settings import Settings
from conveyor.server.sqs_api import SqsApi
from conveyor.types import Message, SendEntry, SendResult

BATCHES = ("ReceiveMessage", "SendMessageBatch", "DeleteMessageBatch")  # of --receive-max
HOST = "127.0.0.1:9324"
QUEUE_URL = f"http://{HOST}/000000000000/bench"


class StubBroker:
    """What :class:`SqsApi` calls on the hot path, answered without any work."""

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages
        self._result = [SendResult(message_id="0b7e1b1c-6a43-4d7b-9f0e-3c2b8f9d1a55")]

    async def send_batch(self, queue: str, entries: Sequence[SendEntry]) -> list[SendResult]:
        return self._result * len(entries)

    async def receive(self, queue: str, max_messages: int = 1, **kw: Any) -> list[Message]:
        return self._messages[:max_messages]

    async def delete(self, queue: str, receipt_handle: str) -> None:
        return None

    async def delete_batch(self, queue: str, receipt_handles: Sequence[str]) -> list[None]:
        return [None] * len(receipt_handles)

    async def redrive(self, *a: Any) -> int:  # MoveTasks takes it; never called here
        return 0


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.last = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.last = data  # type: ignore[assignment]

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


def make_handler(api: SqsApi) -> Callable[[Request], Any]:
    async def handle_http(req: Request) -> Response:  # app.Node.handle_http's checks
        path = req.path
        if path in ("/healthz", "/readyz", "/metrics"):
            return Response(404)
        if path == "/console" or path.startswith(("/console/", "/api/")):
            return Response(404)
        return await api.handle(req)

    return handle_http


def messages(n: int, body_bytes: int) -> list[Message]:
    return [
        Message(
            queue="bench",
            message_id=f"0b7e1b1c-6a43-4d7b-9f0e-3c2b8f9d{i:04x}",
            body=b"x" * body_bytes,
            receipt_handle="AQEB" + "h" * 150 + f"{i:04d}",
            attributes={},
            system={"SenderId": "000000000000"},
            sent_ms=1_700_000_000_000 + i,
            receive_count=1,
            first_receive_ms=1_700_000_000_500 + i,
        )
        for i in range(n)
    ]


def measure(proto: HttpProtocol, burst: bytes, per_burst: int, requests: int) -> float:
    """Process CPU µs per request, feeding ``burst`` (``per_burst`` requests) repeatedly."""
    view = memoryview(burst)
    bursts = max(1, requests // per_burst)
    t0 = time.process_time()
    for _ in range(bursts):
        buf = proto.get_buffer(len(burst))
        buf[: len(burst)] = view
        proto.buffer_updated(len(burst))
    return 1e6 * (time.process_time() - t0) / (bursts * per_burst)


async def main_async(args: argparse.Namespace) -> dict[str, list[float]]:
    metrics = Metrics()
    api = SqsApi(
        StubBroker(messages(args.receive_max, args.body_bytes)),  # type: ignore[arg-type]
        Settings(),
        on_request=lambda action, code: metrics.request("sqs", action, code),
    )
    proto = HttpProtocol(make_handler(api), set(), memoryview(bytearray(256 * 1024)))
    transport = FakeTransport()
    proto.connection_made(transport)
    body = "x" * args.body_bytes
    cases = {
        "SendMessage": request(HOST, "SendMessage", {"QueueUrl": QUEUE_URL, "MessageBody": body}),
        "ReceiveMessage": request(
            HOST,
            "ReceiveMessage",
            {
                "QueueUrl": QUEUE_URL,
                "MaxNumberOfMessages": args.receive_max,
                "VisibilityTimeout": 600,
            },
        ),
        "DeleteMessage": request(
            HOST, "DeleteMessage", {"QueueUrl": QUEUE_URL, "ReceiptHandle": "AQEB" + "h" * 154}
        ),
        "SendMessageBatch": request(
            HOST,
            "SendMessageBatch",
            {
                "QueueUrl": QUEUE_URL,
                "Entries": [{"Id": f"m{i}", "MessageBody": body} for i in range(args.receive_max)],
            },
        ),
        "DeleteMessageBatch": request(
            HOST,
            "DeleteMessageBatch",
            {
                "QueueUrl": QUEUE_URL,
                "Entries": [
                    {"Id": f"m{i}", "ReceiptHandle": "AQEB" + "h" * 150 + f"{i:04d}"}
                    for i in range(args.receive_max)
                ],
            },
        ),
    }
    if args.actions:
        cases = {name: cases[name] for name in args.actions.split(",")}
    out: dict[str, list[float]] = {name: [] for name in cases}
    for name, one in cases.items():  # warm up, and check the answers are 200s
        proto.data_received(one)
        assert bytes(transport.last).startswith(b"HTTP/1.1 200 "), (name, transport.last)
    for _ in range(args.repeats):
        for name, one in cases.items():
            n = args.requests // 4 if name in BATCHES else args.requests
            out[name].append(measure(proto, one * args.pipeline, args.pipeline, n))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000, help="per action and repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pipeline", type=int, default=4)
    ap.add_argument("--body-bytes", type=int, default=1024)
    ap.add_argument("--receive-max", type=int, default=10)
    ap.add_argument("--actions", default="", help="comma-separated actions (default: all)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({k: min(v) for k, v in results.items()}))
        return 0
    for name, runs in results.items():
        print(
            f"{name:15s} {min(runs):6.2f} us/req best, {statistics.median(runs):6.2f} median "
            "(runs " + " / ".join(f"{r:.2f}" for r in runs) + ")"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
