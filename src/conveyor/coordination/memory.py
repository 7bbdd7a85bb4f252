"""An in-memory coordinator with the semantics of the etcd mapping in ``coordinator.py``.

Used by unit tests and by the simulator. Time comes from the ``clock`` passed in
(milliseconds), so the simulator's clock drives lease expiry; nothing here reads a real
clock. Leases expire lazily on every call and eagerly when :meth:`expire` is called.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.coordinator import (
    CasResult,
    Compacted,
    ControllerChanged,
    Lease,
    NodeDown,
    NodeUp,
    PartitionChanged,
    QueueChanged,
    WatchEvent,
)

watch_history_events_max: Final = 10_000  # events kept for watches that resume
lease_ttl_ms_min: Final = 10


class _Watch:
    def __init__(self, owner: InMemoryCoordinator, callback: Callable[[WatchEvent], None]) -> None:
        self._owner = owner
        self.callback = callback

    def cancel(self) -> None:
        self._owner._watches = [w for w in self._owner._watches if w is not self]


class InMemoryCoordinator:
    """Partition configurations, leases, watches and the controller key, in one process."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._revision = 0
        self._partitions: dict[str, PartitionConfig] = {}
        self._leases: dict[int, tuple[Lease, int]] = {}  # id -> (lease, expires_at_ms)
        self._nodes: dict[str, Lease] = {}  # registration key -> the lease it is attached to
        self._controller: tuple[str, int] | None = None  # (node, lease id)
        self._queues: dict[str, bytes] = {}
        self._draining: set[str] = set()
        self._secret: bytes | None = None
        self._next_lease_id = 1
        self._next_expiry: int | None = None  # the earliest lease expiry (a lower bound)
        self._history: deque[WatchEvent] = deque(maxlen=watch_history_events_max)
        self._watches: list[_Watch] = []

    # --- store internals ---------------------------------------------------------------
    def _emit(self, make: Callable[[int], WatchEvent]) -> None:
        self._revision += 1
        event = make(self._revision)
        self._history.append(event)
        for w in list(self._watches):
            w.callback(event)

    def revision(self) -> int:
        return self._revision

    # --- partitions -----------------------------------------------------------------------
    def get_partition(self, partition: str) -> PartitionConfig | None:
        self.expire()
        return self._partitions.get(partition)

    def list_partitions(self) -> list[PartitionConfig]:
        self.expire()
        return [self._partitions[p] for p in sorted(self._partitions)]

    def create_partition(self, config: PartitionConfig) -> CasResult:
        self.expire()
        current = self._partitions.get(config.partition)
        if current is not None:
            return CasResult(ok=False, current=current)
        return self._put(config)

    def cas_partition(self, expected_version: int, config: PartitionConfig) -> CasResult:
        self.expire()
        current = self._partitions.get(config.partition)
        if current is None or current.version != expected_version:
            return CasResult(ok=False, current=current)
        return self._put(config)

    def _put(self, config: PartitionConfig) -> CasResult:
        stored = config.replace(version=self._revision + 1)
        stored.check()
        self._partitions[config.partition] = stored
        self._emit(lambda rev: PartitionChanged(revision=rev, config=stored))
        assert stored.version == self._revision
        return CasResult(ok=True, current=stored)

    # --- leases ------------------------------------------------------------------------------
    def grant_lease(self, node: str, ttl_ms: int, info: bytes = b"") -> Lease:
        assert ttl_ms >= lease_ttl_ms_min, ttl_ms
        self.expire()
        lease = Lease(id=self._next_lease_id, node=node, ttl_ms=ttl_ms, info=info)
        self._next_lease_id += 1
        self._set_expiry(lease, self._clock() + ttl_ms)
        self._nodes[node] = lease
        self._emit(lambda rev: NodeUp(revision=rev, lease=lease))
        return lease

    def keep_alive(self, lease_id: int) -> Lease | None:
        self.expire()
        entry = self._leases.get(lease_id)
        if entry is None:
            return None
        lease = entry[0]
        self._set_expiry(lease, self._clock() + lease.ttl_ms)
        return lease

    def _set_expiry(self, lease: Lease, expires_at: int) -> None:
        self._leases[lease.id] = (lease, expires_at)
        if self._next_expiry is None or expires_at < self._next_expiry:
            self._next_expiry = expires_at

    def revoke_lease(self, lease_id: int) -> None:
        self.expire()
        self._drop_lease(lease_id)

    def lease_expires_at(self, lease_id: int) -> int | None:
        """When the coordinator will expire the lease unless renewed (tests, simulator)."""
        entry = self._leases.get(lease_id)
        return None if entry is None else entry[1]

    def live_nodes(self) -> dict[str, Lease]:
        self.expire()
        return dict(self._nodes)

    def next_expiry(self) -> int | None:
        """No lease expires before this time (``None``: no lease)."""
        return self._next_expiry

    def expire(self) -> list[Lease]:
        """Drop every lease whose TTL has run out; return them (oldest expiry first)."""
        now = self._clock()
        if self._next_expiry is None or now < self._next_expiry:
            return []
        due = sorted((exp, lease_id) for lease_id, (_, exp) in self._leases.items() if exp <= now)
        gone = []
        for _, lease_id in due:
            gone.append(self._leases[lease_id][0])
            self._drop_lease(lease_id)
        self._next_expiry = min((exp for _, exp in self._leases.values()), default=None)
        return gone

    def _drop_lease(self, lease_id: int) -> None:
        entry = self._leases.pop(lease_id, None)
        if entry is None:
            return
        lease = entry[0]
        registered = self._nodes.get(lease.node)
        if registered is not None and registered.id == lease_id:
            del self._nodes[lease.node]
            self._emit(lambda rev: NodeDown(revision=rev, node=lease.node, lease_id=lease_id))
        if self._controller is not None and self._controller[1] == lease_id:
            self._controller = None
            self._emit(lambda rev: ControllerChanged(revision=rev, node=None))

    # --- controller election ------------------------------------------------------------------
    def campaign(self, lease_id: int) -> str | None:
        self.expire()
        if self._controller is None:
            entry = self._leases.get(lease_id)
            if entry is None:
                return None
            node = entry[0].node
            self._controller = (node, lease_id)
            self._emit(lambda rev: ControllerChanged(revision=rev, node=node))
        return self._controller[0]

    def controller(self) -> str | None:
        self.expire()
        return None if self._controller is None else self._controller[0]

    def controller_lease(self) -> int | None:
        return None if self._controller is None else self._controller[1]

    # --- the queue catalog ---------------------------------------------------------------------
    def put_queue(self, name: str, value: bytes, *, overwrite: bool = False) -> bool:
        self.expire()
        if name in self._queues and not overwrite:
            return False
        self._queues[name] = value
        self._emit(lambda rev: QueueChanged(revision=rev, name=name, value=value))
        return True

    def get_queue(self, name: str) -> bytes | None:
        self.expire()
        return self._queues.get(name)

    def list_queues(self) -> dict[str, bytes]:
        self.expire()
        return {name: self._queues[name] for name in sorted(self._queues)}

    def delete_queue(self, name: str) -> bool:
        self.expire()
        if self._queues.pop(name, None) is None:
            return False
        self._emit(lambda rev: QueueChanged(revision=rev, name=name, value=None))
        return True

    # --- the cluster's secret -------------------------------------------------------------------
    def cluster_secret(self, proposal: bytes) -> bytes:
        self.expire()
        if self._secret is None:
            self._secret = proposal
            self._revision += 1
        return self._secret

    # --- drains --------------------------------------------------------------------------------
    def set_draining(self, node: str, draining: bool) -> None:
        self.expire()
        if draining and node not in self._draining:
            self._draining.add(node)
            self._revision += 1
        elif not draining and node in self._draining:
            self._draining.discard(node)
            self._revision += 1

    def draining(self) -> set[str]:
        self.expire()
        return set(self._draining)

    # --- watches -------------------------------------------------------------------------------
    def watch(
        self,
        start_revision: int,
        callback: Callable[[WatchEvent], None],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> _Watch:
        """See :meth:`Coordinator.watch`; ``on_error`` is never called here."""
        oldest = self._history[0].revision if self._history else self._revision + 1
        if start_revision < self._revision and start_revision + 1 < oldest:
            raise Compacted(f"revision {start_revision} is compacted (oldest {oldest})")
        w = _Watch(self, callback)
        for event in list(self._history):
            if event.revision > start_revision:
                callback(event)
        self._watches.append(w)
        return w
