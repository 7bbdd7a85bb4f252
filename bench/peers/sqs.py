"""The SQS API through boto3, against Conveyor's HTTP port and against moto's SQS
server (``python -m moto.server``, in memory: the Python SQS-emulator reference).

Three phases, each with boto3 clients (one per thread, as boto3 advises):
SendMessage one at a time from one thread; SendMessageBatch of 10 from 4 threads;
ReceiveMessage (up to 10) + DeleteMessageBatch from 4 threads until the queue is empty.
boto3 spends milliseconds of client CPU per call, and the client shares the 2 cores
with the server, so these rows measure the whole path an SQS user gets, client
included; the server's own cost is the CPU column.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import Child, free_port, wait_until


def available(settings: dict[str, Any]) -> str | None:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 not installed: run bench/setup-peers"
    if settings.get("kind") == "moto":
        try:
            import moto.server  # noqa: F401
        except ImportError as e:
            return f"moto[server] not installed ({e.name}): run bench/setup-peers"
    return None


class Server:
    """moto's SQS server (Conveyor's SQS endpoint is the Conveyor server's HTTP port)."""

    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.dir = workdir
        self.child: Child | None = None
        try:
            import moto

            self.version = f"moto {moto.__version__}"
        except ImportError:
            self.version = "moto ?"

    def start(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.child = Child(argv, self.dir / "moto.log")
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
                return bool(r.status < 500)

        wait_until(ready, "moto server", self.child, 60)
        return {"http": url}

    @property
    def pids(self) -> list[int]:
        return [self.child.pid] if self.child else []

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    return session.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


BODY = ("conveyor-bench " * 70)[:1024]


class SqsClient:
    """Made before the timed phases: creating a boto3 client takes a good part of a
    second, which is not what is measured."""

    def __init__(self, endpoint: str, threads: int) -> None:
        self.endpoint = endpoint
        self.clients = [_client(endpoint) for _ in range(threads)]

    def create(self, name: str) -> str:
        url: str = self.clients[0].create_queue(QueueName=name)["QueueUrl"]
        return url

    def send_one(self, url: str, n: int, seconds: float) -> int:
        c = self.clients[0]
        end = time.monotonic() + seconds
        done = 0
        while done < n and time.monotonic() < end:
            c.send_message(QueueUrl=url, MessageBody=BODY)
            done += 1
        return done

    def send_batches(self, url: str, n: int, threads: int, seconds: float) -> int:
        lock = threading.Lock()
        left = [n]
        sent = [0]
        end = time.monotonic() + seconds

        def worker(c: Any) -> None:
            while time.monotonic() < end:
                with lock:
                    k = min(10, left[0])
                    left[0] -= k
                if k == 0:
                    return
                entries = [{"Id": str(i), "MessageBody": BODY} for i in range(k)]
                r = c.send_message_batch(QueueUrl=url, Entries=entries)
                with lock:
                    sent[0] += len(r.get("Successful", []))

        ts = [threading.Thread(target=worker, args=(c,)) for c in self.clients[:threads]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sent[0]

    def consume(self, url: str, expected: int, threads: int, seconds: float) -> int:
        lock = threading.Lock()
        done = [0]
        end = time.monotonic() + seconds

        def worker(c: Any) -> None:
            while time.monotonic() < end:
                with lock:
                    if done[0] >= expected:
                        return
                r = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                msgs = r.get("Messages", [])
                if not msgs:
                    continue
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ]
                d = c.delete_message_batch(QueueUrl=url, Entries=entries)
                with lock:
                    done[0] += len(d.get("Successful", []))

        ts = [threading.Thread(target=worker, args=(c,)) for c in self.clients[:threads]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return done[0]
