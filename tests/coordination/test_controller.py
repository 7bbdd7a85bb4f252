"""The controller's election rule (rule 5) and its driver."""

from __future__ import annotations

from conveyor.coordination import Controller, InMemoryCoordinator, PartitionConfig, decide


def cfg(**changes: object) -> PartitionConfig:
    base = PartitionConfig(
        partition="q:0",
        replicas=("a", "b", "c"),
        leader="a",
        leader_lease=1,
        epoch=4,
        isr=("a", "b"),
        version=10,
    )
    return base.replace(**changes)


def test_healthy_leader_is_left_alone() -> None:
    assert decide(cfg(), {"a": 1, "b": 2, "c": 3}) is None


def test_dead_leader_is_replaced_from_the_isr_with_a_new_epoch() -> None:
    new = decide(cfg(), {"b": 2, "c": 3})
    assert new is not None
    assert (new.leader, new.leader_lease, new.epoch, new.isr) == ("b", 2, 5, ("b",))


def test_never_elects_outside_the_isr() -> None:
    new = decide(cfg(isr=("a",)), {"b": 2, "c": 3})
    assert new is not None
    assert new.leader is None and new.isr == ("a",) and new.epoch == 5  # wait for a
    assert decide(new.replace(leader_lease=0), {"b": 2, "c": 3}) is None


def test_the_unclean_switch_does_elect_outside_the_isr() -> None:
    new = decide(cfg(isr=("a",)), {"b": 2, "c": 3}, elect_outside_isr=True)
    assert new is not None and new.leader == "b"


def test_restarted_leader_is_re_elected_in_a_new_epoch() -> None:
    # a restarted with a new lease: the epoch it led is over, even if it leads again
    new = decide(cfg(isr=("a",)), {"a": 7})
    assert new is not None and (new.leader, new.leader_lease, new.epoch) == ("a", 7, 5)


def test_prefers_a_replica_that_did_not_just_fail() -> None:
    new = decide(cfg(), {"a": 9, "b": 2})
    assert new is not None and new.leader == "b"


def test_leaderless_partition_gets_a_leader_when_an_isr_member_returns() -> None:
    new = decide(cfg(leader=None, leader_lease=0, isr=("a", "b")), {"b": 2})
    assert new is not None and new.leader == "b"


def test_controller_acts_only_while_it_holds_the_controller_key() -> None:
    now = [0]
    coord = InMemoryCoordinator(lambda: now[0])
    coord.create_partition(cfg(leader=None, leader_lease=0, isr=("a", "b", "c")))
    a = coord.grant_lease("a", 1_000)
    b = coord.grant_lease("b", 1_000)
    coord.campaign(b.id)
    assert Controller(coord, "a").step() == []
    written = Controller(coord, "b").step()
    assert [(c.leader, c.epoch) for c in written] == [("a", 5)]
    assert written[0].leader_lease == a.id


def test_unclean_election_is_an_explicit_operator_action() -> None:
    coord = InMemoryCoordinator(lambda: 0)
    coord.create_partition(cfg(leader=None, leader_lease=0, isr=("a",)))
    c = coord.grant_lease("c", 1_000)
    coord.campaign(c.id)
    controller = Controller(coord, "c")
    assert controller.step() == []  # a is the only ISR member and it is gone
    result = controller.unclean_elect("q:0", "c")
    assert result.ok and result.current is not None
    assert (result.current.leader, result.current.isr) == ("c", ("c",))
