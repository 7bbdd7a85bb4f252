"""Busy polling: the selector spins for its window before it blocks, never when the loop
has work, and a server started with it serves as usual."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import limits
from conveyor.client import Client
from conveyor.server.busy_poll import BusyPollSelector, loop_factory
from conveyor.server.settings import load_settings
from conveyor.testing import ServerProcess


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_io_arriving_during_the_spin_is_found_by_spinning(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    spin_s = limits.busy_poll_us_max / 1e6
    with BusyPollSelector(spin_s) as sel:
        sel.register(reader, selectors.EVENT_READ)
        for _ in range(5):  # the writer thread needs the GIL in time: a few tries
            timer = threading.Timer(spin_s / 10, writer.send, args=(b"x",))
            timer.start()
            ready = sel.select(timeout=5)
            timer.join()
            assert [key.fileobj for key, _ in ready] == [reader]
            reader.recv(1)
            if sel.spins:
                break
        assert sel.spins >= 1


def test_after_the_spin_it_blocks_for_the_rest_of_the_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    with BusyPollSelector(spin_s=0.01) as sel:
        sel.register(reader, selectors.EVENT_READ)
        started = time.monotonic()
        assert sel.select(timeout=0.2) == []
        assert 0.19 <= time.monotonic() - started < 2  # the timeout, not the spin's end
        timer = threading.Timer(0.1, writer.send, args=(b"x",))  # after the spin
        timer.start()
        cpu = time.process_time()
        ready = sel.select(timeout=None)
        timer.join()
        assert [key.fileobj for key, _ in ready] == [reader]
        assert sel.spins == 0
        assert time.process_time() - cpu < 0.08  # slept, not spun, for most of it


def test_a_loop_with_work_does_not_spin(pair: tuple[socket.socket, socket.socket]) -> None:
    reader, _ = pair
    with BusyPollSelector(spin_s=limits.busy_poll_us_max / 1e6) as sel:
        sel.register(reader, selectors.EVENT_READ)
        cpu = time.process_time()
        for _ in range(100):
            assert sel.select(timeout=0) == []
        assert time.process_time() - cpu < 0.2  # 100 spins would be 1 s


def test_bounds() -> None:
    with pytest.raises(ValueError):
        BusyPollSelector(spin_s=0)
    with pytest.raises(ValueError):
        BusyPollSelector(spin_s=limits.busy_poll_us_max / 1e6 * 2)
    with pytest.raises(ValueError, match="busy_poll_us"):
        load_settings(environ={"CONVEYOR_BUSY_POLL_US": str(limits.busy_poll_us_max + 1)})
    assert load_settings(environ={"CONVEYOR_BUSY_POLL_US": "200"}).busy_poll_us == 200
    loop = loop_factory(200)
    try:
        assert isinstance(loop._selector, BusyPollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_a_server_that_busy_polls_serves(tmp_path: Path) -> None:
    with (
        ServerProcess(tmp_path / "data", busy_poll_us=500) as server,
        Client(server.native_address) as c,
    ):
        c.create_queue("q")
        for i in range(50):  # one at a time: each send arrives while the loop spins
            c.send("q", f"m{i}")
        got = c.receive("q", 50, wait_s=1)
        assert sorted(m.text for m in got) == sorted(f"m{i}" for i in range(50))
        assert server.terminate() == 0
