"""Where partition replicas live, and how the controller moves them (without I/O).

The controller calls :func:`rebalance` on every pass, after the elections of
``controller.decide``. It moves replicas for three reasons, in this order:

1. **Drain** — an operator asked a node to leave (``conveyor node drain ID``): every
   replica on it is replaced.
2. **Re-replication** — a node has been gone (no lease) for longer than the grace period:
   its replicas are replaced on live nodes, restoring the replication factor.
3. **Balance** — a node holds at least two replicas fewer than another (a node that
   joined holds none): one replica moves from the fullest node to it.

A move never lowers the number of in-sync copies. It goes in steps, each one
compare-and-set of the partition's configuration by the controller:

* *add* — the new node joins ``replicas`` (not the ISR) under a new epoch with the same
  leader; it replicates from the leader as a catching-up member, and the leader adds it
  to the ISR once it has everything committed (``Replica._maybe_change_isr``);
* *hand over* — if the replica that leaves is the leader, the leadership moves to another
  live ISR member first (a new epoch);
* *remove* — once every staying replica is in the ISR, the leaving one is dropped from
  ``replicas`` and ``isr`` under a new epoch.

A partition with more replicas than its factor is in the middle of a move; which
replica leaves is decided again on each pass from the same rules, so a controller that
fails over half-way finishes the move. At most ``moves_max`` partitions are moved at
once, so that catching up does not starve the cluster's disks and network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Final

from conveyor.coordination.config import PartitionConfig

moves_max_default: Final = 2


def load_of(configs: Sequence[PartitionConfig]) -> dict[str, int]:
    """How many replicas each node holds."""
    load: dict[str, int] = {}
    for config in configs:
        for node in config.replicas:
            load[node] = load.get(node, 0) + 1
    return load


def _leaving(
    config: PartitionConfig, out: Set[str], load: Mapping[str, int], rf: int
) -> str | None:
    """The replica that leaves a partition with more replicas than its factor."""
    if len(config.replicas) <= rf:
        return None
    for node in config.replicas:
        if node in out:
            return node
    # a balancing move: the fullest member, but never the one that just joined (last)
    candidates = list(config.replicas[:-1])
    return max(candidates, key=lambda node: (load.get(node, 0), node))


def rebalance(
    configs: Sequence[PartitionConfig],
    replication_factor: Mapping[str, int],
    live: Mapping[str, int],
    *,
    draining: Set[str] = frozenset(),
    gone: Set[str] = frozenset(),
    moves_max: int = moves_max_default,
) -> list[PartitionConfig]:
    """The configurations to write so replicas move as the module doc says.

    ``replication_factor`` maps a partition to its factor (missing: its replica count);
    ``live`` maps each node with a lease to the lease id; ``draining`` are nodes asked to
    leave; ``gone`` are nodes without a lease for longer than the grace period. Returns at
    most one new configuration per partition, each to be written with compare-and-set
    on the partition's current version.
    """
    out_nodes = set(draining) | set(gone)
    targets = [n for n in sorted(live) if n not in out_nodes]  # where replicas may go
    load = load_of(configs)
    writes: list[PartitionConfig] = []
    moving = sum(
        1 for c in configs if len(c.replicas) > replication_factor.get(c.partition, len(c.replicas))
    )
    for config in configs:
        rf = replication_factor.get(config.partition, len(config.replicas))
        if config.leader is None or config.leader not in live:
            continue  # elections first (controller.decide)
        leaving = _leaving(config, out_nodes, load, rf)
        if leaving is not None:
            new = _finish_move(config, leaving, live)
            if new is not None:
                writes.append(new)
            continue
        if moving >= moves_max:
            continue
        new_node = _pick_addition(config, out_nodes, targets, load)
        if new_node is None:
            continue
        writes.append(config.replace(replicas=(*config.replicas, new_node), epoch=config.epoch + 1))
        load[new_node] = load.get(new_node, 0) + 1
        moving += 1
    return writes


def _pick_addition(
    config: PartitionConfig, out_nodes: Set[str], targets: Sequence[str], load: Mapping[str, int]
) -> str | None:
    """The node to add to a partition at its factor, or None to leave it."""
    free = [n for n in targets if n not in config.replicas]
    if not free:
        return None
    coolest = min(free, key=lambda n: (load.get(n, 0), n))
    if any(node in out_nodes for node in config.replicas):
        return coolest  # drain or re-replication
    hottest = max(config.replicas, key=lambda n: (load.get(n, 0), n))
    if load.get(hottest, 0) - load.get(coolest, 0) >= 2:
        return coolest  # balance
    return None


def _finish_move(
    config: PartitionConfig, leaving: str, live: Mapping[str, int]
) -> PartitionConfig | None:
    """The next step of a move whose leaving replica is ``leaving``."""
    staying = [n for n in config.replicas if n != leaving]
    if config.leader == leaving:
        successors = [n for n in staying if n in config.isr and n in live]
        if not successors:
            return None  # wait for the new replica to catch up
        chosen = successors[0]
        return config.replace(leader=chosen, leader_lease=live[chosen], epoch=config.epoch + 1)
    if not all(n in config.isr for n in staying):
        return None  # the new replica is still catching up
    return config.replace(
        replicas=tuple(staying),
        isr=tuple(n for n in config.isr if n != leaving),
        epoch=config.epoch + 1,
    )
