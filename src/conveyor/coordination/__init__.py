"""Cluster metadata: partition configurations, node leases, watches, the controller.

:class:`Coordinator` is the interface (etcd in a cluster, see ``coordinator.py`` for the
mapping); :class:`InMemoryCoordinator` implements it for tests and the simulator,
``conveyor.coordination.etcd.EtcdCoordinator`` on etcd (``docs/cluster.md``), and
``conveyor.coordination.aio.AsyncCoordinator`` wraps either for asyncio code;
:class:`Controller` moves leadership when a leader's lease is gone.
"""

from __future__ import annotations

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.controller import Controller, decide
from conveyor.coordination.coordinator import (
    CasResult,
    Compacted,
    ControllerChanged,
    Coordinator,
    Lease,
    NodeDown,
    NodeUp,
    PartitionChanged,
    QueueChanged,
    WatchEvent,
    WatchHandle,
)
from conveyor.coordination.memory import InMemoryCoordinator

__all__ = [
    "CasResult",
    "Compacted",
    "Controller",
    "ControllerChanged",
    "Coordinator",
    "InMemoryCoordinator",
    "Lease",
    "NodeDown",
    "NodeUp",
    "PartitionChanged",
    "PartitionConfig",
    "QueueChanged",
    "WatchEvent",
    "WatchHandle",
    "decide",
]
