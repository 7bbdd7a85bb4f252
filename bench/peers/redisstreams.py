"""Redis Streams (Debian's redis-server 7.0) with a consumer group, AOF on with
``appendfsync everysec`` or ``always``; driven with redis-py (blocking for one at a time,
``redis.asyncio`` otherwise). A consumed message is acknowledged (``XACK``) and removed
from the stream (``XDEL``), so the stream ends empty like the other queues."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

from . import Child, Waits, free_port, make_body, wait_until

GROUP = "bench"


def available(settings: dict[str, Any]) -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server not installed: run bench/setup-peers"
    return None


class Server:
    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.dir = workdir
        self.appendfsync = settings.get("appendfsync", "always")
        self.child: Child | None = None
        try:
            v = subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, timeout=10
            ).stdout.split()
            self.version = "redis-server " + next(
                (w.split("=", 1)[1] for w in v if w.startswith("v=")), "?"
            )
        except (OSError, subprocess.TimeoutExpired):
            self.version = "redis-server ?"

    def start(self) -> dict[str, Any]:
        port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--logfile", "",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.child = Child(argv, self.dir / "redis.log")

        def ready() -> bool:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())

        wait_until(ready, "redis-server", self.child, 30)
        return {"port": port}

    @property
    def pids(self) -> list[int]:
        return [self.child.pid] if self.child else []

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


class Client:
    def __init__(self, conn: dict[str, Any], settings: dict[str, Any]) -> None:
        self.port = conn["port"]
        self.body = make_body()

    def _async(self, connections: int) -> aredis.Redis:
        pool = aredis.BlockingConnectionPool(
            host="127.0.0.1", port=self.port, max_connections=connections, timeout=60
        )
        return aredis.Redis(connection_pool=pool)

    def setup(self, queue: str) -> None:
        r = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            r.xgroup_create(queue, GROUP, id="0", mkstream=True)
        finally:
            r.close()

    def produce_one(self, queue: str, n: int, seconds: float) -> int:
        r = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            end = time.monotonic() + seconds
            done = 0
            while done < n and time.monotonic() < end:
                r.xadd(queue, {"b": self.body})
                done += 1
            return done
        finally:
            r.close()

    async def produce_pipelined(
        self, queue: str, n: int, depth: int, batch: int, seconds: float
    ) -> int:
        r = self._async(depth)
        try:
            left = n
            end = time.monotonic() + seconds

            async def worker() -> int:
                nonlocal left
                sent = 0
                while left > 0 and time.monotonic() < end:
                    k = min(batch, left)
                    left -= k
                    pipe = r.pipeline(transaction=False)
                    for _ in range(k):
                        pipe.xadd(queue, {"b": self.body})
                    await pipe.execute()
                    sent += k
                return sent

            return sum(await asyncio.gather(*(worker() for _ in range(depth))))
        finally:
            await r.aclose()

    async def _ack_delete(self, r: aredis.Redis, queue: str, ids: list[bytes]) -> None:
        pipe = r.pipeline(transaction=False)
        pipe.xack(queue, GROUP, *ids)
        pipe.xdel(queue, *ids)
        await pipe.execute()

    async def consume(
        self, queue: str, expected: int, workers: int, batch: int, seconds: float
    ) -> int:
        r = self._async(workers)
        try:
            done = 0
            end = time.monotonic() + seconds

            waits = Waits()

            async def worker(k: int) -> None:
                nonlocal done
                while done < expected and time.monotonic() < end:
                    got = await waits.wait(
                        r.xreadgroup(GROUP, f"c{k}", {queue: ">"}, count=batch, block=200)
                    )
                    if waits.over and got is None:
                        return
                    if not got:
                        continue
                    ids = [mid for mid, _ in got[0][1]]
                    await self._ack_delete(r, queue, ids)
                    done += len(ids)
                    if done >= expected:
                        waits.end()

            await asyncio.gather(*(worker(k) for k in range(workers)))
            return done
        finally:
            await r.aclose()

    async def depth(self, queue: str) -> int | None:
        r = self._async(1)
        try:
            return int(await r.xlen(queue))
        finally:
            await r.aclose()

    async def open_sender(self, queue: str, concurrency: int) -> Sender:
        r = self._async(concurrency)
        await asyncio.gather(*(r.ping() for _ in range(concurrency)))  # open the connections
        return Sender(r, queue)

    async def receive_loop(
        self, queue: str, on_bodies: Callable[[list[bytes]], None], stop: Callable[[], bool]
    ) -> None:
        r = self._async(4)
        acks: set[asyncio.Task[Any]] = set()
        try:
            while not stop():
                got = await r.xreadgroup(GROUP, "lat", {queue: ">"}, count=100, block=500)
                if not got:
                    continue
                entries = got[0][1]
                on_bodies([fields[b"b"] for _, fields in entries])
                ids = [mid for mid, _ in entries]
                task = asyncio.create_task(self._ack_delete(r, queue, ids))
                acks.add(task)
                task.add_done_callback(acks.discard)
            await asyncio.gather(*acks, return_exceptions=True)
        finally:
            await r.aclose()


class Sender:
    def __init__(self, r: aredis.Redis, queue: str) -> None:
        self.r = r
        self.queue = queue

    async def send(self, body: bytes) -> None:
        await self.r.xadd(self.queue, {"b": body})

    async def close(self) -> None:
        await self.r.aclose()
