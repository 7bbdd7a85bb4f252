"""The controller's replica moves: drain, re-replication and balance, step by step."""

from __future__ import annotations

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.placement import load_of, rebalance

LIVE = {"a": 1, "b": 2, "c": 3}


def config(
    name: str, replicas: tuple[str, ...], leader: str, isr: tuple[str, ...] | None = None
) -> PartitionConfig:
    return PartitionConfig(
        partition=name,
        replicas=replicas,
        leader=leader,
        leader_lease={"a": 1, "b": 2, "c": 3, "d": 4}[leader],
        epoch=5,
        isr=replicas if isr is None else isr,
        version=10,
    )


def test_balanced_cluster_stays_put() -> None:
    configs = [config(f"p{i}", ("a", "b", "c"), "abc"[i % 3]) for i in range(6)]
    assert rebalance(configs, {}, LIVE) == []


def test_new_node_gets_replicas_one_step_at_a_time() -> None:
    live = {**LIVE, "d": 4}
    configs = [config(f"p{i}", ("a", "b", "c"), "abc"[i % 3]) for i in range(6)]
    rf = {c.partition: 3 for c in configs}
    writes = rebalance(configs, rf, live, moves_max=1)
    assert len(writes) == 1
    (added,) = writes
    assert added.replicas == ("a", "b", "c", "d")
    assert added.isr == ("a", "b", "c")  # catching up: not in the ISR yet
    assert added.leader == configs[0].leader and added.epoch == 6
    # while d catches up nothing else moves (moves_max 1) and the move waits
    configs[0] = added
    assert rebalance(configs, rf, live, moves_max=1) == []
    # d caught up: the leader put it in the ISR; the fullest member leaves
    configs[0] = added.replace(isr=("a", "b", "c", "d"))
    (removed,) = rebalance(configs, rf, live, moves_max=1)
    assert len(removed.replicas) == 3 and "d" in removed.replicas
    assert set(removed.isr) == set(removed.replicas)
    assert removed.epoch == 7


def test_leaving_leader_hands_over_first() -> None:
    live = {**LIVE, "d": 4}
    moving = config("p0", ("a", "b", "c", "d"), "c", isr=("a", "b", "c", "d"))
    (step,) = rebalance([moving], {"p0": 3}, live, draining={"c"})
    assert step.leader in ("a", "b", "d") and step.replicas == moving.replicas
    assert step.leader_lease == live[step.leader]
    (last,) = rebalance([step], {"p0": 3}, live, draining={"c"})
    assert "c" not in last.replicas and "c" not in last.isr


def test_drain_moves_every_replica_off_the_node() -> None:
    live = {**LIVE, "d": 4}
    configs = [config(f"p{i}", ("a", "b", "c"), "a") for i in range(3)]
    rf = {c.partition: 3 for c in configs}
    for _ in range(20):
        writes = rebalance(configs, rf, live, draining={"c"}, moves_max=3)
        by_name = {w.partition: w for w in writes}
        # followers catch up at once in this model: the leader adds them to the ISR
        configs = [
            by_name.get(c.partition, c).replace(isr=by_name.get(c.partition, c).replicas)
            for c in configs
        ]
        if not writes:
            break
    assert all("c" not in c.replicas for c in configs)
    assert all(len(c.replicas) == 3 for c in configs)
    assert load_of(configs)["d"] == 3


def test_gone_node_is_replaced_once_a_live_node_is_free() -> None:
    live = {"a": 1, "b": 2, "d": 4}  # c has no lease
    stale = config("p0", ("a", "b", "c"), "a", isr=("a", "b"))
    (added,) = rebalance([stale], {"p0": 3}, live, gone={"c"})
    assert added.replicas == ("a", "b", "c", "d")
    assert rebalance([added], {"p0": 3}, live, gone={"c"}) == []  # d catching up
    caught_up = added.replace(isr=("a", "b", "d"))
    (done,) = rebalance([caught_up], {"p0": 3}, live, gone={"c"})
    assert done.replicas == ("a", "b", "d") and done.isr == ("a", "b", "d")


def test_no_moves_without_a_leader_or_a_free_node() -> None:
    leaderless = config("p0", ("a", "b", "c"), "a").replace(leader=None, leader_lease=0)
    assert rebalance([leaderless], {"p0": 3}, LIVE, draining={"c"}) == []
    full = config("p1", ("a", "b", "c"), "a")
    assert rebalance([full], {"p1": 3}, LIVE, draining={"c"}) == []  # nowhere to go
