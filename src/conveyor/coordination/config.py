"""A partition's replication configuration, as the coordinator stores it.

One :class:`PartitionConfig` per partition lives in the coordinator (etcd in a cluster).
Every change is a compare-and-set on :attr:`PartitionConfig.version`; data nodes never
change it on their own (DESIGN.md §4, rule 1).

Fields:

* ``replicas``      the nodes that host a replica, in preference order
* ``leader``        the node that leads ``epoch``; ``None`` while none may lead
* ``leader_lease``  the coordinator lease the leader held when it was elected; a leader
                    that restarted (new lease) or lost its lease may not lead this epoch
* ``epoch``         the leader epoch; bumped by every change of leader
* ``isr``           the in-sync replicas: every member has every committed record durably
* ``version``       the coordinator's revision of the last change (etcd: ``mod_revision``)
"""

from __future__ import annotations

import msgspec


class PartitionConfig(msgspec.Struct, frozen=True, kw_only=True):
    partition: str
    replicas: tuple[str, ...]
    leader: str | None = None
    leader_lease: int = 0
    epoch: int = 0
    isr: tuple[str, ...] = ()
    version: int = 0

    def check(self) -> None:
        """Assert the configuration is well formed (the coordinator checks every write)."""
        assert self.partition, "a partition needs a name"
        assert len(set(self.replicas)) == len(self.replicas), self.replicas
        assert len(set(self.isr)) == len(self.isr), self.isr
        assert set(self.isr) <= set(self.replicas), (self.isr, self.replicas)
        assert self.epoch >= 0 and self.version >= 0
        if self.leader is not None:
            assert self.leader in self.replicas, (self.leader, self.replicas)
            assert self.leader in self.isr, (self.leader, self.isr)
        else:
            assert self.leader_lease == 0

    def replace(self, **changes: object) -> PartitionConfig:
        return msgspec.structs.replace(self, **changes)
