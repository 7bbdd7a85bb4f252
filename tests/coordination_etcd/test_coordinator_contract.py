"""The coordinator contract, against the in-memory coordinator and a real etcd alike.

Where the two may differ the tests say so: etcd grants whole-second leases of at least
its minimum TTL, expires them up to 500 ms late, deletes every key of an expired lease
at one revision, and delivers watch events from a thread.
"""

from __future__ import annotations

import threading

import pytest
from etcd_harness import LEASE_TTL_MS, Env, Events, config

from conveyor.coordination import (
    Compacted,
    ControllerChanged,
    NodeDown,
    NodeUp,
    PartitionChanged,
    PartitionConfig,
    QueueChanged,
    WatchEvent,
)

EXPIRY_SLACK_MS = 2_500  # etcd checks for expired leases every 500 ms


def kinds_by_revision(events: list[WatchEvent]) -> list[set[str]]:
    """Event kinds grouped by revision, in order (one etcd revision may hold several)."""
    out: list[set[str]] = []
    last = None
    for e in events:
        if e.revision != last:
            out.append(set())
            last = e.revision
        out[-1].add(type(e).__name__)
    return out


def test_create_if_absent_then_compare_and_set_on_version(env: Env) -> None:
    c = env.coordinator
    created = c.create_partition(config())
    assert created.ok and created.current is not None
    v1 = created.current.version
    assert v1 == c.revision() and v1 > 0
    again = c.create_partition(config(epoch=7))
    assert not again.ok and again.current == created.current  # exists: answers what is stored
    moved = c.cas_partition(v1, config(leader="a", leader_lease=5, epoch=1))
    assert moved.ok and moved.current is not None and moved.current.version > v1
    assert moved.current.version == c.revision()
    stale = c.cas_partition(v1, config(leader="b", leader_lease=6, epoch=1))
    assert not stale.ok and stale.current == moved.current  # refused, with the current one
    assert c.get_partition("q:0") == moved.current


def test_compare_and_set_on_a_missing_partition_fails(env: Env) -> None:
    c = env.coordinator
    for version in (0, 1, c.revision()):
        result = c.cas_partition(version, config(partition="nowhere"))
        assert not result.ok and result.current is None
    assert c.get_partition("nowhere") is None


def test_versions_are_store_revisions(env: Env) -> None:
    c = env.coordinator
    a = c.create_partition(config(partition="q:0")).current
    b = c.create_partition(config(partition="q:1")).current
    assert a is not None and b is not None and b.version > a.version
    assert c.list_partitions() == [a, b]


def test_malformed_configurations_are_refused(env: Env) -> None:
    with pytest.raises(AssertionError):
        env.coordinator.create_partition(config(leader="a", isr=("b",)))  # leader outside ISR
    assert env.coordinator.get_partition("q:0") is None


def test_lease_is_kept_alive_then_expires(env: Env) -> None:
    c = env.coordinator
    lease = c.grant_lease("a", LEASE_TTL_MS, b"addr-a")
    assert lease.ttl_ms >= LEASE_TTL_MS and lease.info == b"addr-a"
    assert c.live_nodes() == {"a": lease}
    for _ in range(3):  # 1.5 TTLs in all, renewed every half TTL
        env.sleep_ms(LEASE_TTL_MS // 2)
        assert c.keep_alive(lease.id) == lease
    assert "a" in c.live_nodes()
    env.wait_for(lambda: "a" not in c.live_nodes(), LEASE_TTL_MS + EXPIRY_SLACK_MS, "expiry")
    assert c.keep_alive(lease.id) is None


def test_short_ttls_are_raised_to_what_the_coordinator_grants(env: Env) -> None:
    lease = env.coordinator.grant_lease("a", 300)
    assert lease.ttl_ms >= 300
    if env.kind == "etcd":
        assert lease.ttl_ms % 1000 == 0 and lease.ttl_ms >= 2_000  # whole seconds, minimum
    renewed = env.coordinator.keep_alive(lease.id)
    assert renewed is not None and renewed.ttl_ms == lease.ttl_ms


def test_a_new_lease_replaces_a_restarted_nodes_registration(env: Env) -> None:
    c = env.coordinator
    old = c.grant_lease("a", LEASE_TTL_MS, b"first")
    new = c.grant_lease("a", LEASE_TTL_MS, b"second")
    assert new.id != old.id
    assert c.live_nodes()["a"] == new
    c.revoke_lease(old.id)  # the old lease goes; the registration is the new one's
    assert c.live_nodes()["a"] == new
    assert c.keep_alive(old.id) is None and c.keep_alive(new.id) == new


def test_revoke_deletes_the_registration_and_the_controller_key(env: Env) -> None:
    c = env.coordinator
    lease = c.grant_lease("a", LEASE_TTL_MS)
    assert c.campaign(lease.id) == "a"
    c.revoke_lease(lease.id)
    assert c.live_nodes() == {}
    assert c.controller() is None
    c.revoke_lease(lease.id)  # revoking twice is harmless
    assert c.campaign(lease.id) is None  # a dead lease cannot campaign


def test_controller_hands_over_when_its_lease_expires(env: Env) -> None:
    c = env.coordinator
    events = Events()
    c.watch(c.revision(), events)
    a = c.grant_lease("a", LEASE_TTL_MS)
    b = c.grant_lease("b", LEASE_TTL_MS)
    assert c.campaign(a.id) == "a"
    assert c.campaign(b.id) == "a"  # taken

    def b_alive_and_a_gone() -> bool:
        assert c.keep_alive(b.id) is not None
        return c.controller() is None

    env.wait_for(b_alive_and_a_gone, LEASE_TTL_MS + EXPIRY_SLACK_MS, "a's lease to expire")
    assert c.campaign(b.id) == "b"
    assert c.campaign(a.id) == "b"  # a dead lease cannot campaign
    assert set(c.live_nodes()) == {"b"}
    env.wait_for(lambda: len(events.of(ControllerChanged)) == 3, 2_000, "watch events")
    holders = [e.node for e in events.of(ControllerChanged)]
    assert holders == ["a", None, "b"]
    downs = events.of(NodeDown)
    assert [(e.node, e.lease_id) for e in downs] == [("a", a.id)]


def test_watch_delivers_every_change_in_revision_order(env: Env) -> None:
    c = env.coordinator
    events = Events()
    c.watch(c.revision(), events)
    created = c.create_partition(config()).current
    assert created is not None
    lease = c.grant_lease("a", LEASE_TTL_MS, b"addr")
    c.campaign(lease.id)
    moved = c.cas_partition(created.version, config(leader="a", leader_lease=lease.id, epoch=1))
    assert moved.ok
    env.wait_for(lambda: events.of(NodeDown), LEASE_TTL_MS + EXPIRY_SLACK_MS, "NodeDown")
    env.wait_for(lambda: len(events.all) == 6, 2_000, "every event")
    got = events.all
    revisions = [e.revision for e in got]
    assert revisions == sorted(revisions)
    assert kinds_by_revision(got)[:4] == [
        {"PartitionChanged"},
        {"NodeUp"},
        {"ControllerChanged"},
        {"PartitionChanged"},
    ]
    # the lease's expiry deletes registration and controller key: one revision in etcd
    expiry = kinds_by_revision(got)[4:]
    assert set().union(*expiry) == {"NodeDown", "ControllerChanged"}
    assert len(expiry) == (1 if env.kind == "etcd" else 2)
    changed = [e for e in got if isinstance(e, PartitionChanged)]
    assert [e.config for e in changed] == [created, moved.current]
    assert all(e.config.version == e.revision for e in changed)
    up = got[1]
    assert isinstance(up, NodeUp) and up.lease == lease and up.lease.info == b"addr"
    down = next(e for e in got if isinstance(e, NodeDown))
    assert (down.node, down.lease_id) == ("a", lease.id)


def test_watch_resumes_from_a_revision(env: Env) -> None:
    c = env.coordinator
    c.create_partition(config(partition="q:0"))
    seen_at = c.revision()
    q1 = c.create_partition(config(partition="q:1")).current
    q2 = c.create_partition(config(partition="q:2")).current
    events = Events()
    handle = c.watch(seen_at, events)
    env.wait_for(lambda: len(events.all) >= 2, 2_000, "the history after seen_at")
    assert [e.config for e in events.of(PartitionChanged)] == [q1, q2]
    assert len(events.all) == 2
    handle.cancel()
    c.create_partition(config(partition="q:3"))
    env.sleep_ms(200)
    assert len(events.all) == 2


def test_watch_from_a_lost_revision_raises_compacted(env: Env) -> None:
    c = env.coordinator
    c.create_partition(config())
    old = c.revision()
    c.put_queue("q", b"1")
    env.lose_history()
    with pytest.raises(Compacted):
        c.watch(old - 1, lambda e: None)
    events = Events()
    c.watch(c.revision(), events).cancel()  # recent: fine
    assert events.errors == []


def test_watch_callbacks_may_call_the_coordinator(env: Env) -> None:
    c = env.coordinator
    seen: list[PartitionConfig | None] = []
    threads: set[str] = set()

    def callback(event: WatchEvent) -> None:
        threads.add(threading.current_thread().name)
        if isinstance(event, PartitionChanged):
            seen.append(c.get_partition(event.config.partition))

    c.watch(c.revision(), callback)
    created = c.create_partition(config()).current
    env.wait_for(lambda: seen, 5_000, "the callback's read")
    assert seen == [created]
    if env.kind == "etcd":
        assert threads == {"conveyor-etcd-watch"}


def test_queue_catalog(env: Env) -> None:
    c = env.coordinator
    events = Events()
    c.watch(c.revision(), events)
    assert c.get_queue("orders") is None
    assert c.put_queue("orders", b"v1")
    assert not c.put_queue("orders", b"v2")  # create-if-absent
    assert c.get_queue("orders") == b"v1"
    assert c.put_queue("orders", b"v3", overwrite=True)
    assert c.put_queue("alpha.fifo", b"a")
    assert c.list_queues() == {"alpha.fifo": b"a", "orders": b"v3"}
    assert list(c.list_queues()) == ["alpha.fifo", "orders"]
    assert c.delete_queue("orders")
    assert not c.delete_queue("orders")
    assert c.list_queues() == {"alpha.fifo": b"a"}
    env.wait_for(lambda: len(events.all) == 4, 2_000, "queue events")
    got = [(e.name, e.value) for e in events.all if isinstance(e, QueueChanged)]
    assert got == [("orders", b"v1"), ("orders", b"v3"), ("alpha.fifo", b"a"), ("orders", None)]
    assert c.list_partitions() == []  # queues and partitions do not mix


def test_live_nodes_carry_what_each_node_registered(env: Env) -> None:
    c = env.coordinator
    a = c.grant_lease("a", LEASE_TTL_MS, b'{"http":"127.0.0.1:1"}')
    b = c.grant_lease("b", LEASE_TTL_MS)
    nodes = c.live_nodes()
    assert nodes == {"a": a, "b": b}
    assert nodes["a"].info == b'{"http":"127.0.0.1:1"}' and nodes["b"].info == b""


def test_drain_marks(env: Env) -> None:
    c = env.coordinator
    assert c.draining() == set()
    c.set_draining("a", True)
    c.set_draining("b", True)
    c.set_draining("a", True)  # twice: still one mark
    assert c.draining() == {"a", "b"}
    c.set_draining("a", False)
    c.set_draining("c", False)  # never marked: nothing to undo
    assert c.draining() == {"b"}
    assert c.live_nodes() == {} and c.list_queues() == {}  # marks are neither


def test_cluster_secret_is_the_first_proposal(env: Env) -> None:
    c = env.coordinator
    first = b"s" * 32
    assert c.cluster_secret(first) == first
    assert c.cluster_secret(b"t" * 32) == first  # later proposals lose
