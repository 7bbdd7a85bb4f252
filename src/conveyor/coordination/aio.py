"""The coordinator for asyncio code: :class:`AsyncCoordinator` and :class:`LeaseKeeper`.

:class:`AsyncCoordinator` wraps any :class:`~conveyor.coordination.coordinator.
Coordinator` and offers the same calls as coroutines:

* over :class:`~conveyor.coordination.etcd.EtcdCoordinator` each call runs on the etcd
  coordinator's own loop (gRPC's asyncio API) and is awaited from the caller's loop
  through :func:`asyncio.wrap_future`: no thread is tied up while etcd answers;
* over :class:`~conveyor.coordination.memory.InMemoryCoordinator` (tests) each call runs
  inline: nothing there blocks.

``await coordinator.watch(revision)`` gives an :class:`AsyncWatch`, an async iterator of
:data:`~conveyor.coordination.coordinator.WatchEvent` in revision order; it raises
:class:`~conveyor.coordination.coordinator.Compacted` when etcd no longer has the
history it needs (re-read the state and watch again from the revision read).

:class:`LeaseKeeper` keeps a node's lease alive from a task, every ``ttl / 3``, and tells
the node runtime about each renewal (with the time the keep-alive was sent, which is what
fencing counts from: ``docs/replication.md``, *Leases and fencing*) and, once, that the
lease is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.coordinator import (
    CasResult,
    Coordinator,
    Lease,
    WatchEvent,
    WatchHandle,
)
from conveyor.coordination.etcd import EtcdCoordinator

__all__ = ["AsyncCoordinator", "AsyncWatch", "LeaseKeeper"]

log = logging.getLogger("conveyor.coordination")


class AsyncWatch:
    """Coordinator events as an async iterator; :meth:`cancel` ends the iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[WatchEvent | Exception | None] = asyncio.Queue()
        self._handle: WatchHandle | None = None
        self._done = False

    # called from whatever thread the coordinator delivers on (or inline)
    def _deliver(self, event: WatchEvent) -> None:
        self._put(event)

    def _fail(self, exc: Exception) -> None:
        self._put(exc)

    def _put(self, item: WatchEvent | Exception | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._put(None)

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, Exception):
            self._done = True
            if self._handle is not None:
                self._handle.cancel()
            raise item
        return item

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class AsyncCoordinator:
    """The coordinator's calls as coroutines (same names as the synchronous ones)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.sync = coordinator
        self._etcd = coordinator if isinstance(coordinator, EtcdCoordinator) else None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._etcd is not None:
            return await asyncio.wrap_future(self._etcd.submit(name, *args, **kwargs))
        return getattr(self.sync, name)(*args, **kwargs)

    # --- partition configurations ---------------------------------------------------------
    async def revision(self) -> int:
        return cast(int, await self._call("revision"))

    async def get_partition(self, partition: str) -> PartitionConfig | None:
        return cast(PartitionConfig | None, await self._call("get_partition", partition))

    async def list_partitions(self) -> list[PartitionConfig]:
        return cast(list[PartitionConfig], await self._call("list_partitions"))

    async def create_partition(self, config: PartitionConfig) -> CasResult:
        config.check()
        return cast(CasResult, await self._call("create_partition", config))

    async def cas_partition(self, expected_version: int, config: PartitionConfig) -> CasResult:
        config.check()
        return cast(CasResult, await self._call("cas_partition", expected_version, config))

    # --- node leases -------------------------------------------------------------------------
    async def grant_lease(self, node: str, ttl_ms: int, info: bytes = b"") -> Lease:
        return cast(Lease, await self._call("grant_lease", node, ttl_ms, info))

    async def keep_alive(self, lease_id: int) -> Lease | None:
        return cast(Lease | None, await self._call("keep_alive", lease_id))

    async def revoke_lease(self, lease_id: int) -> None:
        await self._call("revoke_lease", lease_id)

    async def live_nodes(self) -> dict[str, Lease]:
        return cast(dict[str, Lease], await self._call("live_nodes"))

    # --- controller election -------------------------------------------------------------------
    async def campaign(self, lease_id: int) -> str | None:
        return cast(str | None, await self._call("campaign", lease_id))

    async def controller(self) -> str | None:
        return cast(str | None, await self._call("controller"))

    # --- the queue catalog --------------------------------------------------------------------
    async def put_queue(self, name: str, value: bytes, *, overwrite: bool = False) -> bool:
        return cast(bool, await self._call("put_queue", name, value, overwrite=overwrite))

    async def get_queue(self, name: str) -> bytes | None:
        return cast(bytes | None, await self._call("get_queue", name))

    async def list_queues(self) -> dict[str, bytes]:
        return cast(dict[str, bytes], await self._call("list_queues"))

    async def delete_queue(self, name: str) -> bool:
        return cast(bool, await self._call("delete_queue", name))

    # --- drains ----------------------------------------------------------------------------------
    async def cluster_secret(self, proposal: bytes) -> bytes:
        return cast(bytes, await self._call("cluster_secret", proposal))

    async def set_draining(self, node: str, draining: bool) -> None:
        await self._call("set_draining", node, draining)

    async def draining(self) -> set[str]:
        return cast(set[str], await self._call("draining"))

    # --- watches -------------------------------------------------------------------------------
    async def watch(self, start_revision: int) -> AsyncWatch:
        """Every event after ``start_revision``, in revision order, as an async iterator.

        Raises :class:`~conveyor.coordination.coordinator.Compacted` here when the history
        is gone already, or from the iteration when it goes while the watch reconnects.
        """
        w = AsyncWatch(asyncio.get_running_loop())
        if self._etcd is not None:
            await asyncio.wrap_future(self._etcd.submit("check_history", start_revision))
            # starting the watch does no I/O (the history was just checked)
            w._handle = self._etcd.start_watch(start_revision, w._deliver, on_error=w._fail)
        else:
            w._handle = self.sync.watch(start_revision, w._deliver, on_error=w._fail)
        return w


class LeaseKeeper:
    """Keeps a lease alive from an asyncio task.

    Every ``interval_ms`` (default: a third of the lease's TTL) it sends one keep-alive.
    After each answer it calls ``on_renewed(lease, sent_at_ms)``, ``sent_at_ms`` being
    ``clock()`` when the keep-alive was sent. When the coordinator answers that the lease
    is gone (expired or revoked) it calls ``on_lost(lease)`` once and stops: register
    again with a new lease. A keep-alive that fails (etcd unreachable) is logged and
    tried again at the next tick; the holder's own deadline (sent time of the last
    answered keep-alive plus the TTL) is what must fence it meanwhile.
    """

    def __init__(
        self,
        coordinator: AsyncCoordinator,
        lease: Lease,
        *,
        on_lost: Callable[[Lease], None],
        on_renewed: Callable[[Lease, int], None] | None = None,
        interval_ms: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.lease = lease
        self.on_lost = on_lost
        self.on_renewed = on_renewed
        self.interval_ms = interval_ms if interval_ms is not None else max(lease.ttl_ms // 3, 10)
        self.clock = clock or (lambda: time.monotonic_ns() // 1_000_000)
        self.lost = False
        self.renewals = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LeaseKeeper:
        assert self._task is None, "already started"
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"lease-keeper-{self.lease.id}"
        )
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_ms / 1000)
            sent_at = self.clock()
            try:
                renewed = await self.coordinator.keep_alive(self.lease.id)
            except Exception as exc:
                log.warning(
                    "lease keep-alive failed", extra={"lease": self.lease.id, "error": str(exc)}
                )
                continue
            if renewed is None:
                self.lost = True
                log.warning("lease lost", extra={"lease": self.lease.id, "node": self.lease.node})
                self.on_lost(self.lease)
                return
            self.lease = renewed
            self.renewals += 1
            if self.on_renewed is not None:
                self.on_renewed(renewed, sent_at)
