"""The coordinator: where partition configurations, node leases and the controller live.

In a cluster this is etcd; tests and the simulator use :class:`~conveyor.coordination.
memory.InMemoryCoordinator`. The interface is shaped so that each call is one etcd v3
request, with nothing etcd-specific leaking upward:

==========================  ======================================================
call                        etcd v3
==========================  ======================================================
``get_partition``           ``Range /conveyor/partitions/<p>``; ``version`` is the
                            key's ``mod_revision``
``create_partition``        ``Txn(If create_revision(key) == 0, Then Put)``
``cas_partition``           ``Txn(If mod_revision(key) == expected_version, Then Put,
                            Else Range)``; the new ``version`` is the revision the
                            transaction committed at
``grant_lease``             ``LeaseGrant(ttl)`` + ``Put /conveyor/nodes/<n>`` attached
                            to the lease
``keep_alive``              one ``LeaseKeepAlive`` round trip (``TTL == 0``: gone)
``revoke_lease``            ``LeaseRevoke``: its keys are deleted at once
``live_nodes``              ``Range /conveyor/nodes/`` (each value names its lease)
``campaign``                ``Txn(If create_revision(/conveyor/controller) == 0,
                            Then Put(node, lease), Else Range)``
``watch``                   ``Watch(prefix /conveyor/, start_revision)``; a lease
                            expiry shows as the deletion of the keys attached to it
==========================  ======================================================

Versions are coordinator revisions (one counter for the whole store, as etcd's), so
"newer" is comparable across keys and a watch can resume from the last revision seen.
Every method is synchronous and returns plain values; the asyncio server wraps the etcd
client (gRPC) in coroutines with the same names and turns a watch into an async iterator
of :data:`WatchEvent` (see ``docs/replication.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from conveyor.coordination.config import PartitionConfig


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """A node's lease. ``ttl_ms`` is what the coordinator counts from each keep-alive."""

    id: int
    node: str
    ttl_ms: int


class CasResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a compare-and-set: whether it applied, and the config now stored."""

    ok: bool
    current: PartitionConfig | None


class PartitionChanged(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    config: PartitionConfig


class NodeUp(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    lease: Lease


class NodeDown(msgspec.Struct, frozen=True, kw_only=True):
    """A node's registration went away: its lease expired or was revoked."""

    revision: int
    node: str
    lease_id: int


class ControllerChanged(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    node: str | None


WatchEvent = PartitionChanged | NodeUp | NodeDown | ControllerChanged


class Compacted(Exception):
    """A watch asked to start at a revision the coordinator no longer keeps history for.

    The watcher re-reads the current state (``list_partitions``, ``live_nodes``) and
    watches from the revision that read returned (etcd: ``ErrCompacted``).
    """


class WatchHandle(Protocol):
    def cancel(self) -> None: ...


class Coordinator(Protocol):
    """Partition configurations with compare-and-set, node leases, watches, an election."""

    # --- partition configurations ---------------------------------------------------
    def revision(self) -> int:
        """The store's current revision (every write increments it)."""
        ...

    def get_partition(self, partition: str) -> PartitionConfig | None: ...

    def list_partitions(self) -> list[PartitionConfig]: ...

    def create_partition(self, config: PartitionConfig) -> CasResult:
        """Store a new partition's configuration if none exists (its version is ignored)."""
        ...

    def cas_partition(self, expected_version: int, config: PartitionConfig) -> CasResult:
        """Replace the configuration if its version is still ``expected_version``."""
        ...

    # --- node leases -----------------------------------------------------------------
    def grant_lease(self, node: str, ttl_ms: int) -> Lease:
        """A new lease, and the node registered under it (replacing an older lease's)."""
        ...

    def keep_alive(self, lease_id: int) -> Lease | None:
        """Renew: the lease lives ``ttl_ms`` from now. ``None``: it expired or was revoked."""
        ...

    def revoke_lease(self, lease_id: int) -> None: ...

    def live_nodes(self) -> dict[str, Lease]:
        """Each registered node and the lease it is registered under."""
        ...

    # --- controller election -------------------------------------------------------
    def campaign(self, lease_id: int) -> str | None:
        """Become controller if there is none; return the controller's node either way."""
        ...

    def controller(self) -> str | None: ...

    # --- watches -------------------------------------------------------------------
    def watch(self, start_revision: int, callback: Callable[[WatchEvent], None]) -> WatchHandle:
        """Call ``callback`` for every event after ``start_revision``, in revision order.

        Events already in the history are delivered before this returns. Raises
        :class:`Compacted` when ``start_revision`` is older than the history kept.
        """
        ...


def partition_key(partition: str) -> str:
    """The etcd key of a partition's configuration."""
    return f"/conveyor/partitions/{partition}"


def node_key(node: str) -> str:
    """The etcd key a node registers under, attached to its lease."""
    return f"/conveyor/nodes/{node}"


CONTROLLER_KEY = "/conveyor/controller"
