"""What only a real etcd shows: failover, outages, restarts, compaction, the controller
electing through etcd, and the asyncio layer over it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_harness import LEASE_TTL_MS, Events, config, require_etcd, wait_real

from conveyor.coordination import (
    Compacted,
    Controller,
    ControllerChanged,
    InMemoryCoordinator,
    Lease,
    NodeDown,
    NodeUp,
    PartitionChanged,
    QueueChanged,
    WatchEvent,
)
from conveyor.coordination.aio import AsyncCoordinator, LeaseKeeper
from conveyor.coordination.etcd import EtcdCoordinator, parse_endpoints
from conveyor.coordination.etcd_server import EtcdServer
from conveyor.errors import CoordinatorUnavailable, Unavailable
from conveyor.testing import free_port


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of this test's own, to stop, kill and restart."""
    binary = require_etcd()
    with EtcdServer(tmp_path / "etcd", binary=binary) as server:
        yield server


def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:10]}/"


def test_endpoints_are_parsed() -> None:
    assert parse_endpoints("http://10.0.0.1:2379, 10.0.0.2:2380,h3") == [
        "10.0.0.1:2379",
        "10.0.0.2:2380",
        "h3:2379",
    ]
    assert parse_endpoints("etcd://a:1,b:2") == ["a:1", "b:2"]
    with pytest.raises(ValueError):
        parse_endpoints([])
    with pytest.raises(ValueError):
        parse_endpoints("https://secure:2379")


def test_fails_over_when_the_first_endpoint_is_dead(etcd_server: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with EtcdCoordinator([dead, etcd_server.endpoint], prefix=prefix(), timeout_s=2) as c:
        events = Events()
        c.watch(c.revision(), events)
        created = c.create_partition(config()).current
        assert created is not None and c.get_partition("q:0") == created
        lease = c.grant_lease("a", LEASE_TTL_MS)
        assert c.keep_alive(lease.id) == lease and c.campaign(lease.id) == "a"
        wait_real(lambda: len(events.all) == 3, 5, "the watch, through the live endpoint")
        assert [type(e) for e in events.all] == [PartitionChanged, NodeUp, ControllerChanged]


def test_no_live_endpoint_raises_coordinator_unavailable() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with EtcdCoordinator(dead, timeout_s=1) as c:
        started = time.monotonic()
        with pytest.raises(CoordinatorUnavailable) as info:
            c.revision()
        assert time.monotonic() - started < 5
        assert dead[0] in str(info.value) and dead[1] in str(info.value)
        assert isinstance(info.value, Unavailable) and info.value.retriable
        with pytest.raises(CoordinatorUnavailable):
            c.create_partition(config())


def test_unavailable_while_etcd_is_stopped_then_recovers_after_restart(
    own_etcd: EtcdServer,
) -> None:
    with EtcdCoordinator([own_etcd.endpoint], prefix=prefix(), timeout_s=1) as c:
        created = c.create_partition(config()).current
        assert created is not None
        assert c.put_queue("orders", b"record")
        events = Events()
        c.watch(c.revision(), events, on_error=events.on_error)

        own_etcd.stop()
        for call in (c.revision, c.live_nodes, lambda: c.put_queue("other", b"x")):
            with pytest.raises(CoordinatorUnavailable):
                call()

        own_etcd.restart()  # same data directory: the state survives

        def answers() -> bool:
            try:
                c.revision()
            except CoordinatorUnavailable:
                return False
            return True

        wait_real(answers, 10, "etcd to answer again")
        assert c.get_partition("q:0") == created
        assert c.get_queue("orders") == b"record"
        # the watch reconnected by itself and resumes where it was
        moved = c.cas_partition(created.version, config(epoch=1)).current
        wait_real(lambda: events.all, 10, "the watch to resume")
        assert [e.config for e in events.of(PartitionChanged)] == [moved]
        assert len(events.all) == 1
        assert events.errors == []


def test_state_survives_a_crash_of_etcd(own_etcd: EtcdServer) -> None:
    with EtcdCoordinator([own_etcd.endpoint], prefix=prefix(), timeout_s=1) as c:
        created = c.create_partition(config()).current
        own_etcd.kill()
        own_etcd.restart()
        wait_real(lambda: c.get_partition("q:0") == created, 10, "the state after a crash")


def test_a_watch_that_falls_behind_a_compaction_reports_it(etcd: EtcdCoordinator) -> None:
    old = etcd.revision()
    etcd.put_queue("a", b"1")
    etcd.put_queue("b", b"2")
    etcd.compact()
    with pytest.raises(Compacted):
        etcd.watch(old, lambda e: None)
    events = Events()
    etcd.start_watch(old, events, on_error=events.on_error)  # no check first
    wait_real(lambda: events.errors, 5, "the compaction error")
    assert isinstance(events.errors[0], Compacted) and events.all == []


def test_controller_elects_a_new_leader_through_etcd(etcd: EtcdCoordinator) -> None:
    c = etcd
    leases = {n: c.grant_lease(n, LEASE_TTL_MS) for n in ("a", "b", "c")}
    created = c.create_partition(config()).current
    assert created is not None
    first = c.cas_partition(
        created.version, config(leader="a", leader_lease=leases["a"].id, epoch=1)
    ).current
    assert first is not None
    assert c.campaign(leases["c"].id) == "c"
    controller = Controller(c, "c")
    assert Controller(c, "b").step() == []  # only the controller acts
    assert controller.step() == []  # a is alive: nothing to do

    stop = threading.Event()

    def keep_b_and_c_alive() -> None:
        while not stop.wait(0.5):
            c.keep_alive(leases["b"].id)
            c.keep_alive(leases["c"].id)

    keeper = threading.Thread(target=keep_b_and_c_alive)
    keeper.start()
    try:
        events = Events()
        c.watch(c.revision(), events)
        written: list[object] = []
        deadline = time.monotonic() + (LEASE_TTL_MS + 3_000) / 1000
        while not written and time.monotonic() < deadline:
            written = list(controller.step())
            time.sleep(0.1)
        assert written, "the controller did not move leadership after a's lease expired"
        now = c.get_partition("q:0")
        assert now is not None and now == written[0]
        assert (now.leader, now.leader_lease, now.epoch) == ("b", leases["b"].id, 2)
        assert now.isr == ("b", "c") and now.version > first.version
        assert controller.step() == []  # settled
        wait_real(lambda: events.of(PartitionChanged), 5, "the new configuration")
        assert isinstance(events.of(NodeDown)[0], NodeDown)
    finally:
        stop.set()
        keeper.join()


def test_async_coordinator_over_etcd(etcd: EtcdCoordinator) -> None:
    async def main() -> None:
        c = AsyncCoordinator(etcd)
        start = await c.revision()
        watch = await c.watch(start)
        created = (await c.create_partition(config())).current
        assert created is not None and await c.get_partition("q:0") == created
        moved = await c.cas_partition(created.version, config(epoch=1))
        assert moved.ok and (await c.list_partitions()) == [moved.current]
        assert await c.put_queue("q", b"v") and await c.get_queue("q") == b"v"
        assert await c.list_queues() == {"q": b"v"} and await c.delete_queue("q")
        lease = await c.grant_lease("a", LEASE_TTL_MS, b"i")
        assert await c.keep_alive(lease.id) == lease
        assert await c.campaign(lease.id) == "a" and await c.controller() == "a"
        assert await c.live_nodes() == {"a": lease}
        await c.revoke_lease(lease.id)
        assert await c.keep_alive(lease.id) is None
        got: list[WatchEvent] = []
        async with watch:
            async for event in watch:
                got.append(event)
                if len(got) == 8:
                    break
        kinds = [type(e).__name__ for e in got]
        assert kinds[:6] == [
            "PartitionChanged",
            "PartitionChanged",
            "QueueChanged",
            "QueueChanged",
            "NodeUp",
            "ControllerChanged",
        ]
        assert set(kinds[6:]) == {"NodeDown", "ControllerChanged"}
        await etcd_compacted(c)

    async def etcd_compacted(c: AsyncCoordinator) -> None:
        old = await c.revision()
        await c.put_queue("x", b"1")
        etcd.compact()
        with pytest.raises(Compacted):
            await c.watch(old - 1)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "etcd"])
def test_async_watch_and_lease_keeper(kind: str, request: pytest.FixtureRequest) -> None:
    sync = InMemoryCoordinator(lambda: 0) if kind == "memory" else request.getfixturevalue("etcd")

    async def main() -> None:
        c = AsyncCoordinator(sync)
        watch = await c.watch(await c.revision())
        lease = await c.grant_lease("a", LEASE_TTL_MS)
        renewed: list[tuple[Lease, int]] = []
        lost: list[Lease] = []
        keeper = LeaseKeeper(
            c,
            lease,
            on_lost=lost.append,
            on_renewed=lambda lease, sent_at: renewed.append((lease, sent_at)),
            interval_ms=200 if kind == "memory" else None,
        ).start()
        # etcd: alive past its TTL only thanks to the keeper
        await asyncio.sleep(LEASE_TTL_MS / 1000 + 0.7 if kind == "etcd" else 0.5)
        assert (await c.live_nodes()).keys() == {"a"} and not lost
        assert len(renewed) >= 2 and renewed[0][0] == lease
        assert renewed == sorted(renewed, key=lambda r: r[1])
        await c.revoke_lease(lease.id)  # taken away: the keeper tells once, and stops
        for _ in range(100):
            if lost:
                break
            await asyncio.sleep(0.05)
        assert lost == [lease] and keeper.lost
        await keeper.stop()
        got: list[str] = []
        async for event in watch:
            got.append(type(event).__name__)
            if "NodeDown" in got:
                watch.cancel()
        assert got[0] == "NodeUp" and "NodeDown" in got
        assert [e async for e in watch] == []  # cancelled: the iteration is over

    asyncio.run(main())


def test_queue_changes_reach_an_async_watch_in_order(etcd: EtcdCoordinator) -> None:
    async def main() -> None:
        c = AsyncCoordinator(etcd)
        watch = await c.watch(await c.revision())
        for i in range(20):
            await c.put_queue(f"q{i:02}", str(i).encode())
        seen: list[QueueChanged] = []
        async for event in watch:
            assert isinstance(event, QueueChanged)
            seen.append(event)
            if len(seen) == 20:
                watch.cancel()
        assert [e.name for e in seen] == [f"q{i:02}" for i in range(20)]
        assert [e.revision for e in seen] == sorted({e.revision for e in seen})

    asyncio.run(main())
