"""Cluster mode's start-up: from the node's settings to a :class:`ClusterNode`."""

from __future__ import annotations

from pathlib import Path

from conveyor.cluster.node import ClusterNode, ClusterSettings
from conveyor.coordination.coordinator import Coordinator
from conveyor.server.settings import Settings


def cluster_node(settings: Settings, coordinator: Coordinator | None = None) -> ClusterNode:
    """The cluster side of a node (blocking: connects to etcd)."""
    if not settings.node_id:
        raise ValueError("cluster mode needs --node-id (a name unique in the cluster)")
    if coordinator is None:
        from conveyor.coordination.etcd import EtcdCoordinator, parse_endpoints

        coordinator = EtcdCoordinator(parse_endpoints(settings.cluster))
    host = settings.advertise or settings.host
    cluster = ClusterSettings(
        node_id=settings.node_id,
        advertise_http=f"{host}:{settings.port}",
        advertise_native=f"{host}:{settings.native_port}",
        lease_ttl_ms=settings.lease_ttl_ms,
        replace_after_ms=int(settings.replace_after_s * 1000),
        replication_factor=settings.replication_factor,
        min_insync=settings.min_insync,
    )
    return ClusterNode(cluster, coordinator, Path(settings.data_dir), fsync=settings.fsync)
