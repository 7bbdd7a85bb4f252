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
``watch``                   ``Watch(prefix /conveyor/, start_revision + 1)``; a lease
                            expiry shows as the deletion of the keys attached to it
``put_queue``               ``Txn(If create_revision(/conveyor/queues/<q>) == 0,
                            Then Put)`` (``overwrite``: a plain ``Put``)
``get_queue``               ``Range /conveyor/queues/<q>``
``list_queues``             ``Range /conveyor/queues/``
``delete_queue``            ``DeleteRange /conveyor/queues/<q>``
``set_draining``            ``Put`` / ``DeleteRange /conveyor/draining/<n>``
``draining``                ``Range /conveyor/draining/``
``cluster_secret``          ``Txn(If create_revision(/conveyor/secret) == 0, Then Put,
                            Else Range)``
==========================  ======================================================

Versions are coordinator revisions (one counter for the whole store, as etcd's), so
"newer" is comparable across keys and a watch can resume from the last revision seen.
Every method is synchronous and returns plain values; :class:`~conveyor.coordination.aio.
AsyncCoordinator` offers the same calls as coroutines for the asyncio server and turns a
watch into an async iterator of :data:`WatchEvent`. The etcd implementation is
:class:`~conveyor.coordination.etcd.EtcdCoordinator` (``docs/cluster.md``); every etcd
failure surfaces as :class:`~conveyor.errors.CoordinatorUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from conveyor.coordination.config import PartitionConfig


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """A node's lease. ``ttl_ms`` is what the coordinator counts from each keep-alive.

    ``info`` is what the node registered beside it (opaque to the coordinator: the node
    runtime stores the addresses other nodes and clients reach it at).
    """

    id: int
    node: str
    ttl_ms: int
    info: bytes = b""


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


class QueueChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A queue's catalog record was written (``value``) or deleted (``None``)."""

    revision: int
    name: str
    value: bytes | None


WatchEvent = PartitionChanged | NodeUp | NodeDown | ControllerChanged | QueueChanged


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
    def grant_lease(self, node: str, ttl_ms: int, info: bytes = b"") -> Lease:
        """A new lease, and the node registered under it (replacing an older lease's).

        The lease lives at least ``ttl_ms`` (etcd counts whole seconds and has a minimum;
        the returned ``ttl_ms`` is what the coordinator granted).
        """
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

    # --- the queue catalog -----------------------------------------------------------
    def put_queue(self, name: str, value: bytes, *, overwrite: bool = False) -> bool:
        """Store a queue's record if none exists (``overwrite``: in any case).

        Returns whether it was written.
        """
        ...

    def get_queue(self, name: str) -> bytes | None: ...

    def list_queues(self) -> dict[str, bytes]:
        """Every queue's record, by name (in name order)."""
        ...

    def delete_queue(self, name: str) -> bool:
        """Delete a queue's record; returns whether there was one."""
        ...

    # --- the cluster's secret ----------------------------------------------------
    def cluster_secret(self, proposal: bytes) -> bytes:
        """The secret every node signs receipt handles with: ``proposal`` if none was
        stored yet (create-if-absent), else the stored one."""
        ...

    # --- drains --------------------------------------------------------------------
    def set_draining(self, node: str, draining: bool) -> None:
        """Mark ``node`` as leaving (the controller moves its replicas away), or not."""
        ...

    def draining(self) -> set[str]:
        """The nodes marked as leaving."""
        ...

    # --- watches -------------------------------------------------------------------
    def watch(
        self,
        start_revision: int,
        callback: Callable[[WatchEvent], None],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> WatchHandle:
        """Call ``callback`` for every event after ``start_revision``, in revision order.

        Raises :class:`Compacted` when ``start_revision`` is older than the history kept.
        The in-memory coordinator delivers the events already in the history before this
        returns, and later ones as they happen, on the caller's thread. etcd delivers
        them all from one thread of the watch (so the callback may call the coordinator),
        with the events of one revision together: a lease expiry deletes the node's
        registration and the controller key at one revision. If the watch cannot go on
        (etcd compacted the history while it was reconnecting), ``on_error`` gets
        :class:`Compacted` and no more events come: re-read and watch again.
        """
        ...


def queue_key(name: str) -> str:
    """The etcd key of a queue's catalog record."""
    return f"/conveyor/queues/{name}"


def partition_key(partition: str) -> str:
    """The etcd key of a partition's configuration."""
    return f"/conveyor/partitions/{partition}"


def node_key(node: str) -> str:
    """The etcd key a node registers under, attached to its lease."""
    return f"/conveyor/nodes/{node}"


CONTROLLER_KEY = "/conveyor/controller"
