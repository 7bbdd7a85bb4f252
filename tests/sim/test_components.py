"""The simulator's parts: disk, network, checkers, toy state."""

from __future__ import annotations

import random

import pytest

from conveyor.replication.records import LogRecord
from conveyor.sim import Checker, SimDisk, ToyState, Violation
from conveyor.sim.network import Network, NetworkParams


def records(start: int, n: int) -> tuple[LogRecord, ...]:
    return tuple(LogRecord(start + i, start + i, 1, b"r%d" % (start + i)) for i in range(n))


def test_disk_keeps_the_synced_prefix_through_power_loss() -> None:
    for seed in range(50):
        disk = SimDisk()
        disk.write(records(0, 5))
        disk.sync()
        disk.write(records(5, 5))
        disk.crash(random.Random(seed))
        recovered = disk.recover()
        assert recovered[:5] == list(records(0, 5))
        assert 5 <= len(recovered) <= 10
        assert recovered == list(records(0, len(recovered)))  # torn tails are cut off


def test_disk_crash_can_tear_the_tail() -> None:
    torn = 0
    for seed in range(200):
        disk = SimDisk()
        disk.write(records(0, 3))
        disk.crash(random.Random(seed))
        disk.recover()
        torn += disk.torn_tails
    assert torn > 0


def test_disk_truncate_cuts_synced_records_too() -> None:
    disk = SimDisk()
    disk.write(records(0, 4))
    disk.sync()
    disk.truncate(2)
    assert disk.synced == 2 and disk.end == 2


def test_partitions_nest_and_heal() -> None:
    params = NetworkParams(random.Random(1))
    params.drop = 0.0
    net = Network(random.Random(1), params)
    net.cut([("a", "b")])
    net.cut([("b", "a")])
    assert net.delays("a", "b") == []
    net.restore([("a", "b")])
    assert net.is_cut("a", "b")
    net.restore([("a", "b")])
    assert not net.is_cut("a", "b")
    assert len(net.delays("a", "b")) >= 1


def test_checker_sees_a_changed_commit() -> None:
    checker = Checker()
    checker.on_commit("n1", list(records(0, 2)), 0, leader_epoch=1)
    changed = [LogRecord(1, 0, 1, b"other")]
    with pytest.raises(Violation) as info:
        checker.on_commit("n2", changed, 1, leader_epoch=None)
    assert info.value.kind == "changed-commit"


def test_checker_sees_two_leaders_in_one_epoch() -> None:
    checker = Checker()
    checker.on_commit("n1", list(records(0, 1)), 0, leader_epoch=3)
    with pytest.raises(Violation) as info:
        checker.on_commit("n2", list(records(1, 1)), 1, leader_epoch=3)
    assert info.value.kind == "two-leaders"


def test_checker_sees_an_isr_member_missing_a_committed_record() -> None:
    checker = Checker()
    checker.on_commit("n1", list(records(0, 3)), 0, leader_epoch=1)
    checker.check_isr_durable("n2", list(records(0, 3)), 3)
    with pytest.raises(Violation) as info:
        checker.check_isr_durable("n3", list(records(0, 3)), 2)
    assert info.value.kind == "lost-commit"


def test_checker_sees_an_ack_of_something_else() -> None:
    checker = Checker()
    checker.on_commit("n1", list(records(0, 2)), 0, leader_epoch=1)
    checker.on_ack(1, 1, b"r1")
    with pytest.raises(Violation):
        checker.on_ack(2, 1, b"not it")


def test_toy_state_digest_depends_on_every_record() -> None:
    a, b = ToyState(), ToyState()
    for r in records(0, 3):
        a.apply(r.offset, r.type, r.ts_ms, r.payload)
        b.apply(r.offset, r.type, r.ts_ms, r.payload)
    assert a.digest() == b.digest()
    b.apply(3, 1, 0, b"x")
    assert a.digest() != b.digest()
