"""The systems ``bench/compare.py`` measures, and how each one is run and driven.

Every system is a :class:`Spec` (a row of the result tables) naming a module here with
three things in it:

* ``available(settings) -> str | None`` — why the system cannot run here (not
  installed, too old), or None;
* ``Server(workdir, settings)`` — starts the server as a child process bound to
  127.0.0.1 on free ports with its data in ``workdir`` (``start() -> conn``, a dict of
  addresses that pickles), stops it by PID (``stop()``), and names the PIDs whose
  process trees are the server (``pids``) and its version (``version``);
* ``Client(conn)`` — drives it through the system's standard Python client; the
  workloads (``bench/workloads.py``) call the same methods on every system.

Servers are started in their own session (process group) and stopped with SIGTERM to
that group, then SIGKILL after a grace period; ``stop_all()`` runs at exit and on
SIGTERM, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

BODY_BYTES = 1024

_running: list[Child] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Child:
    """A server process in its own session, logging to a file, stopped by process group."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env.update(env or {})
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=full_env,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        _running.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL to it if still running after ``grace_s``;
        then SIGKILL to any descendant that left the group (Erlang's port programs) and
        outlived it by a few seconds."""
        from benchlib import proc_tree

        descendants = proc_tree(self.proc.pid)[1:] if self.proc.poll() is None else []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        # the group may outlive its leader (helpers the leader started)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)
        deadline = time.monotonic() + 3.0
        for pid in descendants:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if self in _running:
            _running.remove(self)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_all() -> None:
    for child in reversed(list(_running)):
        with contextlib.suppress(Exception):
            child.stop(grace_s=5.0)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


atexit.register(stop_all)


def install_signal_handlers() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def wait_until(
    ready: Callable[[], bool], what: str, child: Child | None, timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{what} exited while starting:\n{child.log_tail()}")
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"{what} not ready after {timeout_s:g} s:\n{child.log_tail() if child else ''}"
    )


def make_body(size: int = BODY_BYTES) -> bytes:
    return (b"conveyor-bench " * (size // 15 + 1))[:size]


class Waits:
    """The consumers' waits for messages in workload (3). Once the last expected message
    is acked the phase is over: a consumer still waiting for more (a long poll, a
    blocking read) is called off at once instead of running out its timeout, which
    would count as consume time for the systems whose clients block (up to 0.5 s of a
    phase that may last half a second) and not for those that poll."""

    def __init__(self) -> None:
        self.over = False
        self._waiting: set[asyncio.Future[Any]] = set()

    async def wait(self, aw: Awaitable[T]) -> T | None:
        """What ``aw`` gives, or None once the phase is over."""
        if self.over:
            return None
        fut = asyncio.ensure_future(aw)
        self._waiting.add(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if self.over and fut.cancelled():
                return None  # called off, not this task cancelled
            raise
        finally:
            self._waiting.discard(fut)

    def end(self) -> None:
        self.over = True
        for fut in self._waiting:
            fut.cancel()


@dataclass(frozen=True)
class Spec:
    """One row of the tables: a system with one durability setting."""

    name: str  # as given to --systems
    title: str  # shown in the tables
    module: str  # the module (under peers) with available/Server/Client
    fsync: str  # fsync before the ack? "yes" / "no" (+ what)
    durability: str  # the setting, and who fsyncs when
    pipelined: str  # what "batched/pipelined" means for this system
    consume: str  # how it consumes and acknowledges
    settings: dict[str, Any] = field(default_factory=dict)
    sqs_only: bool = False  # only the SQS API workload (moto)
    has_sqs: bool = False  # also speaks the SQS API (Conveyor)
    shared_server: str | None = None  # specs with the same key may share a server (smoke)

    def load(self) -> ModuleType:
        return importlib.import_module(f"peers.{self.module}")

    def available(self) -> str | None:
        try:
            mod = self.load()
        except ImportError as e:
            return f"Python client missing ({e.name}): run bench/setup-peers"
        reason: str | None = mod.available(self.settings)
        return reason


SPECS: list[Spec] = [
    Spec(
        name="conveyor",
        title="Conveyor (native client)",
        module="conveyor_native",
        fsync="yes",
        durability="`fsync=always`: a send or delete is answered after the fsync that "
        "covers its record (group commit shares one fsync among concurrent requests); a "
        "receive once the messages it hands out are durable (the lease rides on the next "
        "fsync)",
        pipelined="`AsyncClient.send_batch` of 100 from 8 tasks on one connection",
        consume="`receive(100)` + `delete_batch` (answered after fsync), 4 tasks",
        has_sqs=True,
    ),
    Spec(
        name="conveyor-busypoll",
        title="Conveyor, busy poll 200 µs",
        module="conveyor_native",
        fsync="yes",
        durability="as for Conveyor; `--busy-poll-us 200`: the idle event loop polls for "
        "I/O up to 200 µs before it sleeps (CPU for sooner answers)",
        pipelined="as for Conveyor",
        consume="as for Conveyor",
        settings={"busy_poll_us": 200},
    ),
    Spec(
        name="rabbitmq-classic",
        title="RabbitMQ 3.10 classic durable queue",
        module="rabbit",
        fsync="yes",
        durability="durable classic queue, persistent messages, publisher confirms: a "
        "confirm is sent once the message is written to disk (the message store fsyncs "
        "in batches, then confirms)",
        pipelined="aio-pika on one confirm-mode channel: 8 tasks each publishing 100 "
        "messages concurrently and awaiting their confirms (800 unconfirmed at most)",
        consume="aio-pika consumer, prefetch 400, `ack(multiple=True)` every 100",
        settings={"queue_type": "classic"},
        shared_server="rabbitmq",
    ),
    Spec(
        name="rabbitmq-quorum",
        title="RabbitMQ 3.10 quorum queue (1 node)",
        module="rabbit",
        fsync="yes",
        durability="quorum queue (Raft log, one member here), publisher confirms: "
        "confirmed after the Raft WAL is fsynced",
        pipelined="as for the classic queue",
        consume="as for the classic queue",
        settings={"queue_type": "quorum"},
        shared_server="rabbitmq",
    ),
    Spec(
        name="nats",
        title="NATS JetStream, file storage, default sync",
        module="natsjs",
        fsync="no",
        durability="file store with the default `sync_interval` (2 min): the PubAck "
        "comes after a write to the OS page cache; fsync happens on a timer",
        pipelined="nats-py: 8 tasks each issuing 100 `js.publish` concurrently on one "
        "connection and awaiting their PubAcks",
        consume="work-queue stream, durable pull consumer: 4 tasks `fetch(100)` + "
        "`ack()` each message",
        settings={"sync": "default"},
    ),
    Spec(
        name="nats-sync",
        title="NATS JetStream, file storage, sync always",
        module="natsjs",
        fsync="yes",
        durability="file store with `sync_interval: always`: every write is fsynced "
        "before the PubAck",
        pipelined="as for NATS default",
        consume="as for NATS default",
        settings={"sync": "always"},
    ),
    Spec(
        name="redis-everysec",
        title="Redis 7.0 Streams, AOF everysec",
        module="redisstreams",
        fsync="no",
        durability="`appendonly yes`, `appendfsync everysec`: the reply follows a write "
        "to the AOF; a background thread fsyncs once a second",
        pipelined="redis-py asyncio: a pipeline of 100 `XADD` per call, 8 connections",
        consume="consumer group: 4 connections `XREADGROUP COUNT 100`, then `XACK` + "
        "`XDEL` of those ids in one pipeline",
        settings={"appendfsync": "everysec"},
    ),
    Spec(
        name="redis-always",
        title="Redis 7.0 Streams, AOF always",
        module="redisstreams",
        fsync="yes",
        durability="`appendonly yes`, `appendfsync always`: the AOF is fsynced before "
        "the replies of that event-loop round are sent (group commit)",
        pipelined="as for Redis everysec",
        consume="as for Redis everysec",
        settings={"appendfsync": "always"},
    ),
    Spec(
        name="postgres",
        title="PostgreSQL 15, SKIP LOCKED table",
        module="postgres",
        fsync="yes",
        durability="`fsync=on`, `synchronous_commit=on`: COMMIT returns after the WAL "
        "is flushed (concurrent commits share a flush)",
        pipelined="psycopg 3 async: one `INSERT ... SELECT unnest(...)` of 100 rows "
        "per transaction, 8 connections",
        consume="4 connections: `DELETE ... WHERE id IN (SELECT id ... FOR UPDATE SKIP "
        "LOCKED LIMIT 100) RETURNING` (autocommit)",
    ),
    Spec(
        name="moto",
        title="moto server (SQS emulator)",
        module="sqs",
        fsync="no",
        durability="in memory only: nothing is written to disk",
        pipelined="(SQS API workload only)",
        consume="(SQS API workload only)",
        settings={"kind": "moto"},
        sqs_only=True,
    ),
]

BY_NAME = {s.name: s for s in SPECS}
