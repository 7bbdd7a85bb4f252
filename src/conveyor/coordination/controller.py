"""The controller: moves partition leadership when a leader's lease is gone.

One node at a time is the controller (it holds the controller key through its lease,
:meth:`Coordinator.campaign`). It watches node leases and partition configurations, and
when a partition's leader no longer holds the lease it was elected under (it crashed,
restarted, or could not renew), it elects a new leader **from the ISR** (DESIGN.md §4,
rule 5) by compare-and-set, bumping the epoch. Dead ISR members leave the ISR in the same
change; if no ISR member is alive the partition stays leaderless (the ISR is kept, so
the first member to come back is elected) until an operator runs an unclean election.

:func:`decide` is the pure rule; :class:`Controller` applies it through a coordinator.
"""

from __future__ import annotations

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.coordinator import CasResult, Coordinator


def decide(
    config: PartitionConfig, live: dict[str, int], *, elect_outside_isr: bool = False
) -> PartitionConfig | None:
    """The configuration the controller writes for ``config``, or ``None`` to leave it.

    ``live`` maps each node with a live lease to that lease's id. ``elect_outside_isr``
    is a fault switch for the simulator (an unclean election without an operator).
    """
    if config.leader is not None and live.get(config.leader) == config.leader_lease:
        return None
    pool = config.replicas if elect_outside_isr else config.isr
    candidates = [r for r in config.replicas if r in pool and r in live]
    # prefer a replica that did not just lose the leadership
    candidates.sort(key=lambda r: r == config.leader)
    if candidates:
        chosen = candidates[0]
        isr = tuple(r for r in config.replicas if (r in config.isr and r in live) or r == chosen)
        return config.replace(
            leader=chosen, leader_lease=live[chosen], epoch=config.epoch + 1, isr=isr
        )
    if config.leader is not None:
        # depose the dead leader; keep the ISR so a returning member can be elected
        return config.replace(leader=None, leader_lease=0, epoch=config.epoch + 1)
    return None


class Controller:
    """Runs :func:`decide` over every partition while this node holds the controller key."""

    def __init__(
        self, coordinator: Coordinator, node: str, *, elect_outside_isr: bool = False
    ) -> None:
        self.coordinator = coordinator
        self.node = node
        self.elect_outside_isr = elect_outside_isr

    def is_active(self) -> bool:
        return self.coordinator.controller() == self.node

    def step(self) -> list[PartitionConfig]:
        """One pass; returns the configurations written. Does nothing unless controller."""
        if not self.is_active():
            return []
        live = {node: lease.id for node, lease in self.coordinator.live_nodes().items()}
        written = []
        for config in self.coordinator.list_partitions():
            new = decide(config, live, elect_outside_isr=self.elect_outside_isr)
            if new is None:
                continue
            result = self.coordinator.cas_partition(config.version, new)
            if result.ok and result.current is not None:
                written.append(result.current)
        return written

    def unclean_elect(self, partition: str, node: str) -> CasResult:
        """Operator action: make ``node`` leader even if it is not in the ISR.

        Records committed only on the lost ISR members are gone; the new ISR is the new
        leader alone, and the others rejoin by truncating to its log.
        """
        config = self.coordinator.get_partition(partition)
        if config is None:
            return CasResult(ok=False, current=None)
        live = self.coordinator.live_nodes()
        if node not in config.replicas or node not in live:
            return CasResult(ok=False, current=config)
        new = config.replace(
            leader=node, leader_lease=live[node].id, epoch=config.epoch + 1, isr=(node,)
        )
        return self.coordinator.cas_partition(config.version, new)
