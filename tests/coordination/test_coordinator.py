"""The coordinator contract, run against every implementation (today: in-memory).

An etcd implementation joins the ``coordinator`` fixture's parameters when cluster mode
lands; every test here must pass against it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.coordination import (
    Compacted,
    ControllerChanged,
    InMemoryCoordinator,
    NodeDown,
    NodeUp,
    PartitionChanged,
    PartitionConfig,
    WatchEvent,
)
from conveyor.coordination import memory as memory_module


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory"])
def coordinator(request: pytest.FixtureRequest, clock: Clock) -> Iterator[InMemoryCoordinator]:
    assert request.param == "memory"
    yield InMemoryCoordinator(clock)


def config(**changes: object) -> PartitionConfig:
    base = PartitionConfig(partition="q:0", replicas=("a", "b", "c"), isr=("a", "b", "c"))
    return base.replace(**changes)


def test_create_then_compare_and_set_on_version(coordinator: InMemoryCoordinator) -> None:
    created = coordinator.create_partition(config())
    assert created.ok and created.current is not None
    v1 = created.current.version
    assert v1 == coordinator.revision()
    assert not coordinator.create_partition(config()).ok  # exists already
    moved = coordinator.cas_partition(v1, config(leader="a", leader_lease=5, epoch=1))
    assert moved.ok and moved.current is not None and moved.current.version > v1
    stale = coordinator.cas_partition(v1, config(leader="b", leader_lease=6, epoch=1))
    assert not stale.ok
    assert stale.current == moved.current  # a failed CAS answers with what is stored
    assert coordinator.get_partition("q:0") == moved.current


def test_versions_are_store_revisions(coordinator: InMemoryCoordinator) -> None:
    a = coordinator.create_partition(config(partition="q:0")).current
    b = coordinator.create_partition(config(partition="q:1")).current
    assert a is not None and b is not None and b.version > a.version
    assert [c.partition for c in coordinator.list_partitions()] == ["q:0", "q:1"]


def test_cas_on_a_missing_partition_fails(coordinator: InMemoryCoordinator) -> None:
    result = coordinator.cas_partition(0, config())
    assert not result.ok and result.current is None


def test_malformed_configurations_are_refused(coordinator: InMemoryCoordinator) -> None:
    with pytest.raises(AssertionError):
        coordinator.create_partition(config(leader="a", isr=("b",)))  # leader outside ISR


def test_leases_expire_without_keep_alive(coordinator: InMemoryCoordinator, clock: Clock) -> None:
    lease = coordinator.grant_lease("a", 1_000)
    assert coordinator.live_nodes() == {"a": lease}
    clock.now += 900
    assert coordinator.keep_alive(lease.id) == lease  # renewed: lives 1000 ms from now
    clock.now += 900
    assert "a" in coordinator.live_nodes()
    clock.now += 100
    assert coordinator.expire() == [lease]
    assert coordinator.live_nodes() == {}
    assert coordinator.keep_alive(lease.id) is None


def test_a_new_lease_replaces_a_restarted_nodes_registration(
    coordinator: InMemoryCoordinator, clock: Clock
) -> None:
    old = coordinator.grant_lease("a", 1_000)
    new = coordinator.grant_lease("a", 1_000)
    assert new.id != old.id
    assert coordinator.live_nodes()["a"] == new
    clock.now += 600
    coordinator.keep_alive(new.id)
    clock.now += 500  # the old lease expires; the registration belongs to the new one
    coordinator.expire()
    assert coordinator.live_nodes()["a"] == new


def test_revoke_drops_registration_and_controller(coordinator: InMemoryCoordinator) -> None:
    lease = coordinator.grant_lease("a", 1_000)
    assert coordinator.campaign(lease.id) == "a"
    coordinator.revoke_lease(lease.id)
    assert coordinator.live_nodes() == {}
    assert coordinator.controller() is None


def test_controller_election_follows_leases(coordinator: InMemoryCoordinator, clock: Clock) -> None:
    a = coordinator.grant_lease("a", 1_000)
    b = coordinator.grant_lease("b", 1_000)
    assert coordinator.campaign(a.id) == "a"
    assert coordinator.campaign(b.id) == "a"  # taken
    clock.now += 800
    coordinator.keep_alive(b.id)
    clock.now += 300  # a's lease is gone, and the controller key with it
    assert coordinator.controller() is None
    assert coordinator.campaign(b.id) == "b"
    assert coordinator.campaign(a.id) == "b"  # a dead lease cannot campaign


def test_watch_delivers_every_change_in_revision_order(
    coordinator: InMemoryCoordinator, clock: Clock
) -> None:
    events: list[WatchEvent] = []
    coordinator.watch(coordinator.revision(), events.append)
    created = coordinator.create_partition(config()).current
    assert created is not None
    lease = coordinator.grant_lease("a", 500)
    coordinator.campaign(lease.id)
    coordinator.cas_partition(created.version, config(leader="a", leader_lease=lease.id, epoch=1))
    clock.now += 600
    coordinator.expire()
    kinds = [type(e) for e in events]
    assert kinds == [
        PartitionChanged,
        NodeUp,
        ControllerChanged,
        PartitionChanged,
        NodeDown,
        ControllerChanged,
    ]
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_watch_resumes_from_a_revision(coordinator: InMemoryCoordinator) -> None:
    coordinator.create_partition(config(partition="q:0"))
    seen_at = coordinator.revision()
    coordinator.create_partition(config(partition="q:1"))
    events: list[WatchEvent] = []
    handle = coordinator.watch(seen_at, events.append)
    assert [e.revision for e in events] == [seen_at + 1]  # replayed before returning
    handle.cancel()
    coordinator.create_partition(config(partition="q:2"))
    assert len(events) == 1


def test_watch_from_a_compacted_revision_fails(coordinator: InMemoryCoordinator) -> None:
    for i in range(memory_module.watch_history_events_max + 5):
        coordinator.create_partition(config(partition=f"q:{i}"))
    with pytest.raises(Compacted):
        coordinator.watch(1, lambda e: None)
    coordinator.watch(coordinator.revision() - 3, lambda e: None)  # recent: fine
