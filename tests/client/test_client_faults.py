"""Connections that fail: a server killed and restarted, a server that stops answering,
no server at all; deadlines, and a long poll that wakes on arrival."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from conveyor import errors
from conveyor.client import AsyncClient, Client, ConnectFailed, RetryPolicy, Timeout
from conveyor.testing import ServerProcess, free_port
from conveyor.types import SendEntry


def test_reconnect_after_sigkill_keeps_every_acknowledged_message(
    fresh_server: ServerProcess, qname: str
) -> None:
    """Producers send while the server is SIGKILLed and restarted; every send that was
    acknowledged is in the queue afterwards, and the clients carry on by themselves."""
    client = Client(
        fresh_server.native_address,
        timeout_s=10,
        retry=RetryPolicy(attempts=50, backoff_s_base=0.05, backoff_s_max=0.2),
    )
    client.create_queue(qname)
    acked: list[bytes] = []
    failed = 0
    stop = threading.Event()
    lock = threading.Lock()

    def produce(worker: int) -> None:
        nonlocal failed
        i = 0
        while not stop.is_set():
            body = f"{worker}-{i}".encode()
            i += 1
            try:
                client.send(qname, body)
            except errors.ConveyorError:  # ConnectionLost: outcome unknown, not retried
                with lock:
                    failed += 1
                continue
            with lock:
                acked.append(body)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    fresh_server.kill()
    time.sleep(0.2)
    fresh_server.start()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert client.connections_made >= 2
    got: set[bytes] = set()
    while True:
        msgs = client.receive(qname, 1000, wait_s=0.2)
        if not msgs:
            break
        got.update(m.body for m in msgs)
    assert len(acked) > 20
    assert set(acked) <= got, f"lost {len(set(acked) - got)} acknowledged messages"
    assert len(got) <= len(acked) + failed  # at most the unknown ones besides
    client.close()


def test_async_client_reconnects_after_restart(fresh_server: ServerProcess, qname: str) -> None:
    async def main() -> None:
        async with AsyncClient(
            fresh_server.native_address, retry=RetryPolicy(attempts=60, backoff_s_max=0.1)
        ) as c:
            await c.create_queue(qname)
            await c.send(qname, "before")
            # the loop runs meanwhile (as it would in a program), so it sees the EOF
            await asyncio.to_thread(fresh_server.kill)
            await asyncio.to_thread(fresh_server.start)
            await c.send(qname, "after")  # a new connection
            msgs = await c.receive(qname, 10, wait_s=1)
            assert sorted(m.body for m in msgs) == [b"after", b"before"]
            assert c.connections_made == 2

    asyncio.run(main())


def test_sync_client_sends_after_a_restart(fresh_server: ServerProcess, qname: str) -> None:
    """A server that restarted while the client's connection sat idle: the next send,
    not idempotent, goes to a new connection instead of failing as ConnectionLost."""
    with Client(fresh_server.native_address, retry=RetryPolicy(attempts=60)) as c:
        c.create_queue(qname)
        c.send(qname, "before")
        fresh_server.terminate()  # SIGTERM: the server says goodbye on the connection
        fresh_server.start()
        c.send(qname, "after")
        fresh_server.kill()  # SIGKILL: the kernel closes the connection
        fresh_server.start()
        c.send(qname, "again")
        msgs = c.receive(qname, 10, wait_s=1)
        assert sorted(m.body for m in msgs) == [b"after", b"again", b"before"]
        assert c.connections_made == 3


def test_no_server_fails_fast_with_connect_failed() -> None:
    port = free_port()
    started = time.monotonic()
    with (
        Client(
            port=port, retry=RetryPolicy(attempts=3, backoff_s_base=0.01, backoff_s_max=0.01)
        ) as c,
        pytest.raises(ConnectFailed),
    ):
        c.ping()
    assert time.monotonic() - started < 2

    async def main() -> None:
        async with AsyncClient(port=port, retry=RetryPolicy(attempts=1)) as a:
            with pytest.raises(ConnectFailed):
                await a.ping()

    asyncio.run(main())


def test_timeouts_and_a_dead_connection(fresh_server: ServerProcess, qname: str) -> None:
    """A stopped server (SIGSTOP) answers nothing: calls end with Timeout at their
    deadline, the silent connection is dropped, and the next call after SIGCONT works."""
    client = Client(fresh_server.native_address, timeout_s=0.5, connect_timeout_s=0.5)
    client.create_queue(qname)
    os.kill(fresh_server.pid, signal.SIGSTOP)
    try:
        # a long poll gets its wait on top of the timeout
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # Timeout is a TimeoutError too
            client.receive(qname, wait_s=1)
        assert 1.45 < time.monotonic() - started < 2.5
        # nothing came on that connection while waiting: it was given up, and a new
        # one cannot complete its handshake: ConnectFailed (not sent) by the deadline
        started = time.monotonic()
        with pytest.raises(ConnectFailed):
            client.send(qname, "x")
        assert time.monotonic() - started < 1.5
    finally:
        os.kill(fresh_server.pid, signal.SIGCONT)
    client.ping()
    assert client.connections_made == 2  # the silent connection was given up
    assert client.peek(qname) == []  # the send that failed to connect was never sent
    # a long poll longer than the timeout is not a timeout
    started = time.monotonic()
    assert client.receive(qname, wait_s=1.0) == []
    assert time.monotonic() - started >= 0.9
    client.close()


def test_async_timeout(fresh_server: ServerProcess, qname: str) -> None:
    async def main() -> None:
        async with AsyncClient(fresh_server.native_address, timeout_s=0.5) as c:
            await c.create_queue(qname)
            os.kill(fresh_server.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(Timeout):
                    await c.ping()
                assert 0.45 < time.monotonic() - started < 1.5
            finally:
                os.kill(fresh_server.pid, signal.SIGCONT)
            await c.ping()
            assert await c.receive(qname, wait_s=0.8) == []  # wait 0.8 > timeout 0.5

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_long_poll_wakes_within_50_ms_of_a_send(
    server: ServerProcess, qname: str, kind: str
) -> None:
    sender = Client(server.native_address)
    sender.create_queue(qname)
    sender.ping()
    woke: list[float] = []

    def poll_sync() -> None:
        with Client(server.native_address) as c:
            c.ping()
            ready.set()
            msgs = c.receive(qname, wait_s=10)
            woke.append(time.monotonic())
            assert [m.body for m in msgs] == [b"wake"]

    def poll_async() -> None:
        async def main() -> None:
            async with AsyncClient(server.native_address) as c:
                await c.ping()
                ready.set()
                msgs = await c.receive(qname, wait_s=10)
                woke.append(time.monotonic())
                assert [m.body for m in msgs] == [b"wake"]

        asyncio.run(main())

    ready = threading.Event()
    t = threading.Thread(target=poll_sync if kind == "sync" else poll_async)
    t.start()
    ready.wait()
    time.sleep(0.3)  # the receive is parked on the server
    sent_at = time.monotonic()
    sender.send(qname, "wake")
    t.join(5)
    assert woke, "the long poll did not return"
    # woken by the send, not by the end of its 10 s wait
    assert woke[0] - sent_at < 1.0, f"woke {1000 * (woke[0] - sent_at):.1f} ms after the send"
    sender.close()


def test_a_long_poll_does_not_hold_up_other_threads(server: ServerProcess, qname: str) -> None:
    with Client(server.native_address) as c:
        c.create_queue(qname)
        t = threading.Thread(target=c.receive, args=(qname,), kwargs={"wait_s": 1.5})
        t.start()
        time.sleep(0.2)
        started = time.monotonic()
        for _ in range(20):
            c.ping()
        c.send_batch(qname, [SendEntry(body=b"x")])  # also wakes the poller
        assert time.monotonic() - started < 1.0
        t.join()
        assert c.connections_made == 1
