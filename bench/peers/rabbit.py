"""RabbitMQ (Debian's rabbitmq-server): a classic durable queue or a quorum queue,
persistent messages, publisher confirms. Driven with pika (blocking, one at a time) and
aio-pika (pipelined, consume, latency).

The node runs as a child of the harness with everything in a temporary directory: its
own epmd on a free loopback port (``ERL_EPMD_PORT``), the Erlang distribution bound to
127.0.0.1 on a free port, AMQP on 127.0.0.1, no plugins, mnesia and logs in the
directory, ``HOME`` there for the Erlang cookie. ``/etc/rabbitmq`` is not read.
"""

from __future__ import annotations

import asyncio
import glob
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pika

from . import Child, free_port, make_body, port_open, wait_until

RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _epmd() -> str | None:
    found = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))
    return found[-1] if found else shutil.which("epmd")


def available(settings: dict[str, Any]) -> str | None:
    if not Path(RABBIT).exists():
        return "rabbitmq-server not installed: run bench/setup-peers"
    if _epmd() is None:
        return "epmd (erlang-base) not found"
    return None


def _version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return f"rabbitmq-server {out or '?'}"


class Server:
    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.dir = workdir
        self.epmd: Child | None = None
        self.node: Child | None = None
        self.version = _version()

    def start(self) -> dict[str, Any]:
        d = self.dir
        for sub in ("home", "mnesia", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        amqp, dist, epmd_port = free_port(), free_port(), free_port()
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{amqp}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")
        env = {
            "HOME": str(d / "home"),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": f"bench{amqp}@localhost",
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        epmd = _epmd()
        assert epmd is not None
        self.epmd = Child(
            [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
            d / "epmd.log",
            env={"ERL_EPMD_ADDRESS": "127.0.0.1"},
        )
        wait_until(lambda: port_open(epmd_port), "epmd", self.epmd, 20)
        self.node = Child([RABBIT], d / "rabbitmq.out", env=env, cwd=d)
        node = self.node

        def ready() -> bool:
            if not port_open(amqp):
                return False
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp))
            conn.close()
            return True

        wait_until(ready, "rabbitmq-server", node, 90)
        return {"port": amqp}

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in (self.node, self.epmd) if c is not None]

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop(grace_s=30)
        if self.epmd is not None:
            self.epmd.stop(grace_s=5)


def _args(queue_type: str) -> dict[str, Any]:
    return {"x-queue-type": queue_type}


class Client:
    def __init__(self, conn: dict[str, Any], settings: dict[str, Any]) -> None:
        self.port = conn["port"]
        self.queue_type = settings.get("queue_type", "classic")
        self.body = make_body()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def setup(self, queue: str) -> None:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))
        try:
            ch = conn.channel()
            ch.queue_declare(queue, durable=True, arguments=_args(self.queue_type))
        finally:
            conn.close()

    def produce_one(self, queue: str, n: int, seconds: float) -> int:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))
        try:
            ch = conn.channel()
            ch.confirm_delivery()  # basic_publish now returns after the broker's confirm
            props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
            end = time.monotonic() + seconds
            done = 0
            while done < n and time.monotonic() < end:
                ch.basic_publish("", queue, self.body, props, mandatory=True)
                done += 1
            return done
        finally:
            conn.close()

    async def produce_pipelined(
        self, queue: str, n: int, depth: int, batch: int, seconds: float
    ) -> int:
        conn = await aio_pika.connect(self.url)
        try:
            ch = await conn.channel(publisher_confirms=True)
            ex = ch.default_exchange
            left = n
            end = time.monotonic() + seconds

            async def worker() -> int:
                nonlocal left
                sent = 0
                while left > 0 and time.monotonic() < end:
                    k = min(batch, left)
                    left -= k
                    await asyncio.gather(
                        *(
                            ex.publish(
                                aio_pika.Message(
                                    self.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                                ),
                                routing_key=queue,
                            )
                            for _ in range(k)
                        )
                    )
                    sent += k
                return sent

            return sum(await asyncio.gather(*(worker() for _ in range(depth))))
        finally:
            await conn.close()

    async def consume(
        self, queue: str, expected: int, workers: int, batch: int, seconds: float
    ) -> int:
        conn = await aio_pika.connect(self.url)
        try:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=workers * batch)
            q = await ch.declare_queue(queue, durable=True, arguments=_args(self.queue_type))
            done = 0
            finished = asyncio.Event()

            async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal done
                done += 1
                if done % batch == 0 or done >= expected:
                    await msg.ack(multiple=True)
                if done >= expected:
                    finished.set()

            tag = await q.consume(on_message)
            try:
                await asyncio.wait_for(finished.wait(), seconds)
            except TimeoutError:
                pass
            await q.cancel(tag)
            # a round trip on the channel: the broker has processed the acks before it
            await ch.declare_queue(queue, passive=True)
            return done
        finally:
            await conn.close()

    async def depth(self, queue: str) -> int | None:
        conn = await aio_pika.connect(self.url)
        try:
            ch = await conn.channel()
            q = await ch.declare_queue(queue, passive=True)
            count = q.declaration_result.message_count
            return None if count is None else int(count)
        finally:
            await conn.close()

    async def open_sender(self, queue: str, concurrency: int) -> Sender:
        conn = await aio_pika.connect(self.url)
        ch = await conn.channel(publisher_confirms=True)
        return Sender(conn, ch, queue)

    async def receive_loop(
        self, queue: str, on_bodies: Callable[[list[bytes]], None], stop: Callable[[], bool]
    ) -> None:
        conn = await aio_pika.connect(self.url)
        try:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1000)
            q = await ch.declare_queue(queue, durable=True, arguments=_args(self.queue_type))

            async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                on_bodies([msg.body])
                await msg.ack()

            tag = await q.consume(on_message)
            while not stop():
                await asyncio.sleep(0.02)
            await q.cancel(tag)
        finally:
            await conn.close()


class Sender:
    def __init__(self, conn: Any, ch: Any, queue: str) -> None:
        self.conn = conn
        self.ex = ch.default_exchange
        self.queue = queue

    async def send(self, body: bytes) -> None:
        await self.ex.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=self.queue,
        )

    async def close(self) -> None:
        await self.conn.close()
