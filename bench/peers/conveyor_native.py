"""Conveyor: ``conveyor serve --fsync always``, driven by ``conveyor.Client``/``AsyncClient``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conveyor
from conveyor.client import AsyncClient
from conveyor.client import Client as SyncClient
from conveyor.testing import ServerProcess
from conveyor.types import SendEntry

from . import Waits, make_body


def available(settings: dict[str, Any]) -> str | None:
    return None


class Server:
    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        extra = {"busy_poll_us": settings["busy_poll_us"]} if "busy_poll_us" in settings else {}
        self.proc = ServerProcess(workdir / "data", fsync="always", log_level="warning", **extra)
        self.version = f"conveyor {getattr(conveyor, '__version__', '?')}"

    def start(self) -> dict[str, Any]:
        self.proc.start()
        return {"native": self.proc.native_address, "http": self.proc.http_url}

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.proc.terminate()
        self.proc.kill()


class Client:
    """Workload operations; see peers/__init__.py."""

    def __init__(self, conn: dict[str, Any], settings: dict[str, Any]) -> None:
        self.addr = conn["native"]
        self.body = make_body()

    def setup(self, queue: str) -> None:
        with SyncClient(self.addr) as c:
            c.create_queue(queue)

    def produce_one(self, queue: str, n: int, seconds: float) -> int:
        with SyncClient(self.addr) as c:
            end = time.monotonic() + seconds
            done = 0
            while done < n and time.monotonic() < end:
                c.send(queue, self.body)
                done += 1
            return done

    async def produce_pipelined(
        self, queue: str, n: int, depth: int, batch: int, seconds: float
    ) -> int:
        entries = [SendEntry(body=self.body) for _ in range(batch)]
        left = n
        end = time.monotonic() + seconds
        async with AsyncClient(self.addr) as c:
            await c.ping()

            async def worker() -> int:
                nonlocal left
                sent = 0
                while left > 0 and time.monotonic() < end:
                    k = min(batch, left)
                    left -= k
                    results = await c.send_batch(queue, entries[:k])
                    sent += sum(1 for r in results if not isinstance(r, Exception))
                return sent

            return sum(await asyncio.gather(*(worker() for _ in range(depth))))

    async def consume(
        self, queue: str, expected: int, workers: int, batch: int, seconds: float
    ) -> int:
        done = 0
        end = time.monotonic() + seconds
        waits = Waits()
        async with AsyncClient(self.addr) as c:
            await c.ping()

            async def worker() -> None:
                nonlocal done
                while done < expected and time.monotonic() < end:
                    msgs = await waits.wait(c.receive(queue, batch, wait_s=0.2))
                    if msgs is None:
                        return
                    if msgs:
                        await c.delete_batch(queue, [m.receipt_handle for m in msgs])
                        done += len(msgs)
                        if done >= expected:
                            waits.end()

            await asyncio.gather(*(worker() for _ in range(workers)))
        return done

    async def depth(self, queue: str) -> int | None:
        async with AsyncClient(self.addr) as c:
            info = await c.get_queue(queue)
        return None if info.stats is None else info.stats.messages

    async def open_sender(self, queue: str, concurrency: int) -> Sender:
        c = AsyncClient(self.addr)
        await c.ping()
        return Sender(c, queue)

    async def receive_loop(
        self, queue: str, on_bodies: Callable[[list[bytes]], None], stop: Callable[[], bool]
    ) -> None:
        deletes: set[asyncio.Task[Any]] = set()
        async with AsyncClient(self.addr) as c:
            await c.ping()
            while not stop():
                msgs = await c.receive(queue, 100, wait_s=0.5)
                if msgs:
                    on_bodies([m.body for m in msgs])
                    # delete without holding up the next receive
                    t = asyncio.create_task(c.delete_batch(queue, [m.receipt_handle for m in msgs]))
                    deletes.add(t)
                    t.add_done_callback(deletes.discard)
            await asyncio.gather(*deletes, return_exceptions=True)


class Sender:
    def __init__(self, client: AsyncClient, queue: str) -> None:
        self.client = client
        self.queue = queue

    async def send(self, body: bytes) -> None:
        await self.client.send(self.queue, body)

    async def close(self) -> None:
        await self.client.close()
