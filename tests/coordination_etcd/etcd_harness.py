"""Helpers for the coordinator contract tests: one interface over both implementations.

:class:`Env` hides how time passes: the in-memory coordinator runs on a fake clock that
the test moves (lease expiry is then instant and exact), etcd on real time (its leases
count whole seconds, expire up to 500 ms late, and its watches deliver from a thread).
Tests say how long to wait for a condition; ``wait_for`` steps the fake clock or polls.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from conveyor.coordination import Coordinator, InMemoryCoordinator, PartitionConfig, WatchEvent
from conveyor.coordination import memory as memory_module
from conveyor.coordination.etcd import EtcdCoordinator
from conveyor.coordination.etcd_server import etcd_binary

E = TypeVar("E")

LEASE_TTL_MS = 2_000  # etcd's minimum with its default election timeout


def require_etcd() -> str:
    """The etcd binary; skips the test without it (fails instead when CI=true)."""
    binary = etcd_binary()
    if binary is None:
        message = (
            "etcd is not installed: apt-get install etcd-server (./scripts/install does it), "
            "or set CONVEYOR_ETCD to the binary"
        )
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def config(**changes: object) -> PartitionConfig:
    base = PartitionConfig(partition="q:0", replicas=("a", "b", "c"), isr=("a", "b", "c"))
    return base.replace(**changes)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


class Events:
    """Watch events as they arrive, from whichever thread delivers them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[WatchEvent] = []
        self.errors: list[Exception] = []

    def __call__(self, event: WatchEvent) -> None:
        with self._lock:
            self._events.append(event)

    def on_error(self, exc: Exception) -> None:
        with self._lock:
            self.errors.append(exc)

    @property
    def all(self) -> list[WatchEvent]:
        with self._lock:
            return list(self._events)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.all if isinstance(e, kind)]


class Env:
    kind: str
    coordinator: Coordinator

    def sleep_ms(self, ms: int) -> None:
        raise NotImplementedError

    def wait_for(self, condition: Callable[[], object], timeout_ms: int, what: str) -> None:
        raise NotImplementedError

    def lose_history(self) -> None:
        """Make the coordinator forget the history before the current revision."""
        raise NotImplementedError


class MemoryEnv(Env):
    kind = "memory"

    def __init__(self) -> None:
        self.clock = Clock()
        self.memory = InMemoryCoordinator(self.clock)
        self.coordinator = self.memory

    def sleep_ms(self, ms: int) -> None:
        self.clock.now += ms
        self.memory.expire()

    def wait_for(self, condition: Callable[[], object], timeout_ms: int, what: str) -> None:
        deadline = self.clock.now + timeout_ms
        while not condition():
            if self.clock.now >= deadline:
                raise AssertionError(f"not within {timeout_ms} ms (fake clock): {what}")
            self.sleep_ms(50)

    def lose_history(self) -> None:
        for i in range(memory_module.watch_history_events_max + 5):
            self.memory.create_partition(config(partition=f"filler:{i}"))


class EtcdEnv(Env):
    kind = "etcd"

    def __init__(self, coordinator: EtcdCoordinator) -> None:
        self.etcd = coordinator
        self.coordinator = coordinator

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def wait_for(self, condition: Callable[[], object], timeout_ms: int, what: str) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while not condition():
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout_ms} ms: {what}")
            time.sleep(0.05)

    def lose_history(self) -> None:
        self.etcd.put_queue("filler", b"x", overwrite=True)
        self.etcd.compact()


def wait_real(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)
