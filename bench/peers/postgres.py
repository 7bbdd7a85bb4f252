"""PostgreSQL 15 (Debian) as a queue: a table ``(id bigserial primary key, body bytea)``,
producers INSERT, consumers ``DELETE ... FOR UPDATE SKIP LOCKED ... RETURNING``; driven
with psycopg 3 (blocking for one at a time, async otherwise), autocommit, so every
statement is its own transaction and returns after its commit.

The cluster is made with ``initdb`` in the temporary directory and run as a child
(``postgres -D``) on 127.0.0.1 with ``fsync=on`` and ``synchronous_commit=on``. When
the harness runs as root the server runs as the ``postgres`` user (PostgreSQL refuses
root), with the directory handed to it. A consumer of the latency workload polls: it
asks again 1 ms after finding the table empty (PostgreSQL has no blocking dequeue;
LISTEN/NOTIFY would add a notification to every producer's transaction).
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from . import Child, free_port, make_body, wait_until


def bindir() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not found:
        return None
    newest = max(found, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(newest).parent


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


def available(settings: dict[str, Any]) -> str | None:
    if bindir() is None:
        return "PostgreSQL server not installed: run bench/setup-peers"
    return None


def _table(queue: str) -> str:
    return "q_" + "".join(ch if ch.isalnum() else "_" for ch in queue)


class Server:
    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.dir = workdir
        self.child: Child | None = None
        b = bindir()
        assert b is not None
        self.bin = b
        try:
            self.version = subprocess.run(
                [str(b / "postgres"), "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            self.version = "postgres ?"

    def start(self) -> dict[str, Any]:
        user = _run_as()
        self.dir.mkdir(parents=True, exist_ok=True)
        data, sock = self.dir / "data", self.dir / "sock"
        sock.mkdir(exist_ok=True)
        if user is not None:
            pw = pwd.getpwnam(user)
            for p in (self.dir, sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        init = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "bench", "-A", "trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, user=user, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        port = free_port()
        argv = [
            str(self.bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=on",
            "-c", "synchronous_commit=on",
            "-c", "max_connections=200",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        log = self.dir / "postgres.log"
        log.touch()
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(log, pw.pw_uid, pw.pw_gid)
        self.child = Child(argv, log, user=user, cwd=self.dir)
        dsn = f"host=127.0.0.1 port={port} user=bench dbname=postgres"

        def ready() -> bool:
            with psycopg.connect(dsn, connect_timeout=2) as c:
                c.execute("select 1")
            return True

        wait_until(ready, "postgres", self.child, 60)
        return {"dsn": dsn}

    @property
    def pids(self) -> list[int]:
        return [self.child.pid] if self.child else []

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


class Client:
    def __init__(self, conn: dict[str, Any], settings: dict[str, Any]) -> None:
        self.dsn = conn["dsn"]
        self.body = make_body()

    def setup(self, queue: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(queue)} "
                "(id bigserial PRIMARY KEY, body bytea NOT NULL)"
            )

    def produce_one(self, queue: str, n: int, seconds: float) -> int:
        sql = f"INSERT INTO {_table(queue)} (body) VALUES (%s)"
        with psycopg.connect(self.dsn, autocommit=True) as c:
            end = time.monotonic() + seconds
            done = 0
            while done < n and time.monotonic() < end:
                c.execute(sql, (self.body,))
                done += 1
            return done

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)

    async def produce_pipelined(
        self, queue: str, n: int, depth: int, batch: int, seconds: float
    ) -> int:
        sql = f"INSERT INTO {_table(queue)} (body) SELECT unnest(%s::bytea[])"
        conns = [await self._connect() for _ in range(depth)]
        try:
            left = n
            end = time.monotonic() + seconds

            async def worker(c: psycopg.AsyncConnection[Any]) -> int:
                nonlocal left
                sent = 0
                while left > 0 and time.monotonic() < end:
                    k = min(batch, left)
                    left -= k
                    await c.execute(sql, ([self.body] * k,))
                    sent += k
                return sent

            return sum(await asyncio.gather(*(worker(c) for c in conns)))
        finally:
            for c in conns:
                await c.close()

    def _dequeue_sql(self, queue: str) -> str:
        t = _table(queue)
        return (
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY id "
            "FOR UPDATE SKIP LOCKED LIMIT %s) RETURNING body"
        )

    async def consume(
        self, queue: str, expected: int, workers: int, batch: int, seconds: float
    ) -> int:
        sql = self._dequeue_sql(queue)
        conns = [await self._connect() for _ in range(workers)]
        try:
            done = 0
            end = time.monotonic() + seconds

            async def worker(c: psycopg.AsyncConnection[Any]) -> None:
                nonlocal done
                while done < expected and time.monotonic() < end:
                    cur = await c.execute(sql, (batch,))
                    rows = await cur.fetchall()
                    done += len(rows)
                    if not rows:
                        await asyncio.sleep(0.005)

            await asyncio.gather(*(worker(c) for c in conns))
            return done
        finally:
            for c in conns:
                await c.close()

    async def depth(self, queue: str) -> int | None:
        c = await self._connect()
        try:
            cur = await c.execute(f"SELECT count(*) FROM {_table(queue)}")
            row = await cur.fetchone()
            return int(row[0]) if row else None
        finally:
            await c.close()

    async def open_sender(self, queue: str, concurrency: int) -> Sender:
        pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for _ in range(concurrency):
            pool.put_nowait(await self._connect())
        return Sender(pool, f"INSERT INTO {_table(queue)} (body) VALUES (%s)")

    async def receive_loop(
        self, queue: str, on_bodies: Callable[[list[bytes]], None], stop: Callable[[], bool]
    ) -> None:
        sql = self._dequeue_sql(queue)
        c = await self._connect()
        try:
            while not stop():
                cur = await c.execute(sql, (100,))
                rows = await cur.fetchall()
                if rows:
                    on_bodies([bytes(r[0]) for r in rows])
                else:
                    await asyncio.sleep(0.001)
        finally:
            await c.close()


class Sender:
    def __init__(self, pool: asyncio.Queue[psycopg.AsyncConnection[Any]], sql: str) -> None:
        self.pool = pool
        self.sql = sql
        self.size = pool.qsize()

    async def send(self, body: bytes) -> None:
        c = await self.pool.get()
        try:
            await c.execute(self.sql, (body,))
        finally:
            self.pool.put_nowait(c)

    async def close(self) -> None:
        for _ in range(self.size):
            c = await self.pool.get()
            await c.close()
