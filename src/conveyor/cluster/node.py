"""A node of a Conveyor cluster: its lease, its replicas, the catalog and the controller.

:class:`ClusterNode` runs inside ``conveyor serve --cluster ...`` next to the broker. It

* registers the node in the coordinator under a lease (with the addresses other nodes
  and clients reach it at) and keeps the lease alive; every replica learns each renewal
  (``Replica.on_lease``), so a node that cannot renew stops leading before its lease
  could have expired anywhere else (DESIGN.md §4, rule 2);
* watches the coordinator and keeps a cache of the queue catalog, the partition
  configurations and the live nodes; a queue with a replica here is opened in the local
  broker (``Broker.adopt_queue``) with a :class:`~conveyor.cluster.driver.ReplicatedLog`
  under each partition, and each configuration change goes to that partition's replica;
* carries replication messages between replicas over the native protocol
  (``ReplicateRequest`` frames, one connection per peer, pipelined);
* ticks every replica, and, while it holds the controller key, runs the controller:
  leader elections from the ISR when a leader's lease is gone.

Queue creation writes the queue's record and one configuration per partition, placing
the replicas on the live nodes with the fewest replicas.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import secrets
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from conveyor import errors, limits
from conveyor.broker.broker import Broker
from conveyor.broker.catalog import QueueMeta, new_uid
from conveyor.broker.partition import Partition
from conveyor.client.aio import AsyncClient
from conveyor.client.retry import RetryPolicy
from conveyor.cluster.driver import ReplicaDriver, ReplicatedLog, monotonic_ms
from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.controller import Controller
from conveyor.coordination.coordinator import (
    Compacted,
    ControllerChanged,
    Coordinator,
    NodeDown,
    NodeUp,
    PartitionChanged,
    QueueChanged,
    WatchEvent,
)
from conveyor.coordination.placement import rebalance
from conveyor.partition import records as R
from conveyor.protocol import native as n
from conveyor.queue import make_config, update_config, validate_name
from conveyor.replication import LogRecord, Message, ReplicaSettings, Role, RoleChanged
from conveyor.replication.messages import decode as decode_message
from conveyor.replication.messages import encode as encode_message
from conveyor.storage import CheckpointStore, FileLog

log = logging.getLogger("conveyor.cluster")

moves_every_passes = 5  # replica moves are planned every 5th controller pass (1 s)


class ClusterSettings(msgspec.Struct, frozen=True, kw_only=True):
    node_id: str
    advertise_http: str  # host:port other nodes and clients reach this node's HTTP at
    advertise_native: str  # host:port of its native protocol
    lease_ttl_ms: int = 3_000
    tick_ms: int = 20
    controller_interval_ms: int = 200
    replication_factor: int = 3
    min_insync: int = 2
    forward_timeout_s: float = 10.0
    replace_after_ms: int = 60_000  # a node gone this long has its replicas replaced
    start_timeout_s: float = 60.0  # how long a starting node waits for the coordinator


class NodeAddresses(msgspec.Struct, frozen=True, kw_only=True):
    """What a node registers beside its lease."""

    http: str
    native: str


class ClusterQueue(msgspec.Struct, kw_only=True):
    """A queue's record in the coordinator's catalog."""

    meta: QueueMeta
    replication_factor: int


_queue_codec = msgspec.json.Decoder(ClusterQueue)
_addresses_codec = msgspec.json.Decoder(NodeAddresses)


def partition_name(uid: str, index: int) -> str:
    return f"{uid}-p{index}"


def place(
    replication_factor: int,
    partitions: int,
    live: Sequence[str],
    load: dict[str, int],
    leading: dict[str, int] | None = None,
) -> list[tuple[str, ...]]:
    """Replica lists for a new queue's partitions: the least loaded live nodes, led (first
    in the list) by the one of them that leads the fewest partitions, so a queue's
    partitions get different leaders where there are enough nodes."""
    if len(live) < replication_factor:
        raise errors.Unavailable(
            f"replication factor {replication_factor} needs {replication_factor} live nodes; "
            f"{len(live)} are up"
        )
    load = dict(load)
    leading = dict(leading or {})
    out = []
    for _ in range(partitions):
        ranked = sorted(live, key=lambda node: (load.get(node, 0), node))
        chosen = sorted(ranked[:replication_factor], key=lambda n: (leading.get(n, 0), n))
        for node in chosen:
            load[node] = load.get(node, 0) + 1
        leading[chosen[0]] = leading.get(chosen[0], 0) + 1
        out.append(tuple(chosen))
    return out


CLEAN_STOP_FILE = "clean-stop"


def mark_clean_stop(data_dir: Path) -> None:
    """Record that the node stopped after flushing everything (its broker is closed)."""
    path = data_dir / CLEAN_STOP_FILE
    with open(path, "w") as f:
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _incarnation(data_dir: Path) -> int:
    """A number that grows every time this node's process starts (kept in the data dir)."""
    path = data_dir / "incarnation"
    value = int(path.read_text()) + 1 if path.exists() else 1
    tmp = path.with_name("incarnation.tmp")
    with open(tmp, "w") as f:
        f.write(str(value))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return value


class _Hosted:
    """One partition replica hosted here: where its driver and partition are."""

    __slots__ = ("driver", "index", "partition", "queue")

    def __init__(self, queue: str, index: int, driver: ReplicaDriver, partition: Partition) -> None:
        self.queue = queue
        self.index = index
        self.driver = driver
        self.partition = partition


class ClusterNode:
    """The cluster side of one ``conveyor serve`` process (see the module doc)."""

    def __init__(
        self,
        settings: ClusterSettings,
        coordinator: Coordinator,
        data_dir: Path,
        *,
        fsync: str = "always",
        replica_settings: ReplicaSettings | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.coord = coordinator
        self.data_dir = data_dir
        self.fsync = fsync
        self.replica_settings = replica_settings or ReplicaSettings(min_insync=settings.min_insync)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.incarnation = _incarnation(data_dir)
        # With fsync=always every record a replica reported persisted is on disk, crash
        # or not. With a weaker policy that holds only after a clean stop (marked by a
        # file the stop writes); otherwise the replicas rejoin as unclean and may lead
        # again only once caught up (DESIGN.md §4, rule 7).
        marker = data_dir / CLEAN_STOP_FILE
        first_start = self.incarnation == 1
        self.unclean = fsync != "always" and not first_start and not marker.exists()
        marker.unlink(missing_ok=True)
        self.broker: Broker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lease_id: int | None = None
        self._lock = threading.Lock()
        self.hosted: dict[str, _Hosted] = {}  # partition name -> replica here
        self.configs: dict[str, PartitionConfig] = {}
        self.queues: dict[str, ClusterQueue] = {}
        self.nodes: dict[str, NodeAddresses] = {}
        self.node_leases: dict[str, int] = {}
        self.controller_node: str | None = None
        self._peers: dict[str, AsyncClient] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._watch: Any = None
        self._events: asyncio.Queue[WatchEvent | _Resync | None] = asyncio.Queue()
        self._controller = Controller(coordinator, self.node_id)
        self._missing_since: dict[str, int] = {}  # node -> when its lease was first missed
        self._passes = 0
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    def receipt_secret(self) -> bytes:
        """The cluster's receipt-handle secret (blocking: asks the coordinator, waiting
        out a coordinator that does not answer yet)."""
        proposal = secrets.token_bytes(32)
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            try:
                return self.coord.cluster_secret(proposal)
            except errors.CoordinatorUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("waiting for the coordinator", extra={"error": str(exc)})
                time.sleep(0.5)

    def partition_factory(self, meta: QueueMeta, index: int, path: Path | None) -> Partition:
        """Open a replicated partition (the broker calls this for each partition)."""
        assert path is not None, "cluster mode needs a data directory"
        path.mkdir(parents=True, exist_ok=True)
        wal = FileLog(path / "log", fsync=self.fsync)
        store = CheckpointStore(path / "checkpoints")
        state, ckpt = Partition.load_checkpoint(
            store, fifo=meta.config.fifo, dedup_scope=meta.config.dedup_scope
        )
        name = partition_name(meta.uid, index)
        # the state holds the checkpoint only: records after it may not be committed, so
        # they reach the state through the replica's Apply once they are
        driver = ReplicaDriver(
            node=self.node_id,
            partition=name,
            log=wal,
            applied=ckpt + 1,
            hooks=self,
            settings=self._replica_settings(meta.name),
            incarnation=self.incarnation,
            unclean=self.unclean,
        )
        part = Partition(index, state, wal, store, ckpt)
        part.log = ReplicatedLog(driver, ready=lambda: part.state.next_offset == driver.log_end)
        with self._lock:
            self.hosted[name] = _Hosted(meta.name, index, driver, part)
            config = self.configs.get(name)
        if config is not None:
            driver.on_config(config)
        return part

    def _replica_settings(self, queue: str) -> ReplicaSettings:
        """The node's replica settings, with ``min_insync`` capped at the queue's
        replication factor (a queue with one replica commits on its own fsync)."""
        record = self.queues.get(queue)
        if record is None:  # opening the queues on disk, before the catalog is read
            try:
                raw = self.coord.get_queue(queue)
            except errors.CoordinatorUnavailable:
                raw = None
            record = None if raw is None else _queue_codec.decode(raw)
        rf = record.replication_factor if record is not None else self.settings.replication_factor
        if rf >= self.replica_settings.min_insync:
            return self.replica_settings
        return msgspec.structs.replace(self.replica_settings, min_insync=rf)

    async def start(self, broker: Broker, http_port: int, native_port: int) -> None:
        """Join: register (with the ports the listeners got), read the state, watch."""
        self.broker = broker
        self.loop = asyncio.get_running_loop()
        broker.remote_mover = self.remote_move
        host = self.settings.advertise_native.rpartition(":")[0]
        self.settings = msgspec.structs.replace(
            self.settings,
            advertise_http=f"{host}:{http_port}",
            advertise_native=f"{host}:{native_port}",
        )
        addresses = NodeAddresses(
            http=self.settings.advertise_http, native=self.settings.advertise_native
        )
        sent_at = self._now_ms()
        info = msgspec.json.encode(addresses)
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            try:
                lease = await asyncio.to_thread(
                    lambda: self.coord.grant_lease(self.node_id, self.settings.lease_ttl_ms, info)
                )
                break
            except errors.CoordinatorUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("waiting for the coordinator", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                sent_at = self._now_ms()
        self.lease_id = lease.id
        for hosted in self._all_hosted():
            hosted.driver.on_lease(lease.id, sent_at, lease.ttl_ms)
        await self._resync_until_done()
        self._tasks = [
            asyncio.create_task(self._apply_events(), name="cluster-watch"),
            asyncio.create_task(self._keep_alive(), name="cluster-lease"),
            asyncio.create_task(self._tick(), name="cluster-tick"),
            asyncio.create_task(self._control(), name="cluster-controller"),
        ]
        log.info(
            "joined the cluster",
            extra={"node": self.node_id, "lease": lease.id, "incarnation": self.incarnation},
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._watch is not None:
            self._watch.cancel()
        if self.lease_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.coord.revoke_lease, self.lease_id)
        for client in self._peers.values():
            await client.close()
        self._peers.clear()

    def _all_hosted(self) -> list[_Hosted]:
        with self._lock:
            return list(self.hosted.values())

    @staticmethod
    def _now_ms() -> int:
        return monotonic_ms()

    # ------------------------------------------------------------------ coordinator state
    async def _resync(self) -> None:
        """Read the whole state and watch from there (at start, and after a compaction)."""
        revision, queues, configs, nodes, controller = await asyncio.to_thread(self._read_all)
        self.queues = queues
        self.configs = {c.partition: c for c in configs}
        self._set_nodes(nodes)
        self.controller_node = controller
        await asyncio.to_thread(self._reconcile_queues)
        for hosted in self._all_hosted():
            config = self.configs.get(hosted.driver.partition)
            if config is not None:
                hosted.driver.on_config(config)
        if self._watch is not None:
            self._watch.cancel()
        loop = self.loop
        assert loop is not None

        def deliver(event: WatchEvent) -> None:
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        def broken(exc: Exception) -> None:
            log.warning(
                "coordinator watch broke; reading the state again", extra={"error": str(exc)}
            )
            loop.call_soon_threadsafe(self._events.put_nowait, _RESYNC)

        try:
            self._watch = await asyncio.to_thread(
                lambda: self.coord.watch(revision, deliver, on_error=broken)
            )
        except Compacted:
            await self._resync()

    def _read_all(
        self,
    ) -> tuple[int, dict[str, ClusterQueue], list[PartitionConfig], dict[str, Any], str | None]:
        revision = self.coord.revision()
        queues = {name: _queue_codec.decode(v) for name, v in self.coord.list_queues().items()}
        configs = self.coord.list_partitions()
        nodes = self.coord.live_nodes()
        return revision, queues, configs, nodes, self.coord.controller()

    def _set_nodes(self, nodes: dict[str, Any]) -> None:
        self.nodes = {}
        self.node_leases = {}
        for name, lease in nodes.items():
            self.node_leases[name] = lease.id
            if lease.info:
                self.nodes[name] = _addresses_codec.decode(lease.info)

    async def _apply_events(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                if isinstance(event, _Resync):
                    await self._resync_until_done()
                else:
                    await self._on_event(event)
            except Exception:
                log.exception("applying a coordinator event failed")

    async def _resync_until_done(self) -> None:
        while True:
            try:
                await self._resync()
                return
            except errors.ConveyorError as exc:
                log.warning("reading the coordinator failed", extra={"error": str(exc)})
                await asyncio.sleep(0.5)

    async def _on_event(self, event: WatchEvent) -> None:
        if isinstance(event, PartitionChanged):
            config = event.config
            self.configs[config.partition] = config
            with self._lock:
                hosted = self.hosted.get(config.partition)
            if hosted is not None:
                hosted.driver.on_config(config)
            elif self.node_id in config.replicas:  # a replica moved here: open its queue
                await asyncio.to_thread(self._reconcile_queues)
        elif isinstance(event, QueueChanged):
            if event.value is None:
                self.queues.pop(event.name, None)
            else:
                self.queues[event.name] = _queue_codec.decode(event.value)
            await asyncio.to_thread(self._reconcile_queues)
        elif isinstance(event, NodeUp):
            self.node_leases[event.lease.node] = event.lease.id
            if event.lease.info:
                self.nodes[event.lease.node] = _addresses_codec.decode(event.lease.info)
        elif isinstance(event, NodeDown):
            if self.node_leases.get(event.node) == event.lease_id:
                self.node_leases.pop(event.node, None)
            if event.node == self.node_id and event.lease_id == self.lease_id:
                for hosted in self._all_hosted():
                    hosted.driver.on_lease_lost()
        elif isinstance(event, ControllerChanged):
            self.controller_node = event.node

    def _hosts(self, queue: ClusterQueue) -> bool:
        """Whether this node holds a replica of any of the queue's partitions."""
        for i in range(queue.meta.config.partitions):
            config = self.configs.get(partition_name(queue.meta.uid, i))
            if config is not None and self.node_id in config.replicas:
                return True
        return False

    def _reconcile_queues(self) -> None:
        """Open here every queue with a replica here; drop the ones that have none."""
        broker = self.broker
        assert broker is not None
        wanted = {name: q for name, q in self.queues.items() if self._hosts(q)}
        for meta in broker.local_metas():
            if meta.name not in wanted or wanted[meta.name].meta.uid != meta.uid:
                self._forget(meta)
                broker.drop_queue(meta.name)
        for q in wanted.values():
            broker.adopt_queue(q.meta)

    def _forget(self, meta: QueueMeta) -> None:
        with self._lock:
            for i in range(meta.config.partitions):
                self.hosted.pop(partition_name(meta.uid, i), None)

    # ------------------------------------------------------------------ background loops
    async def _keep_alive(self) -> None:
        interval = self.settings.lease_ttl_ms / 3 / 1000
        while True:
            await asyncio.sleep(interval)
            lease_id = self.lease_id
            assert lease_id is not None
            sent_at = self._now_ms()
            try:
                lease = await asyncio.wait_for(
                    asyncio.to_thread(self.coord.keep_alive, lease_id), interval * 2
                )
            except (errors.ConveyorError, TimeoutError, OSError) as exc:
                log.warning("lease renewal failed", extra={"error": str(exc)})
                continue  # the replicas' lease deadlines run out on their own
            if lease is None:
                log.error("lease lost; registering again", extra={"lease": lease_id})
                for hosted in self._all_hosted():
                    hosted.driver.on_lease_lost()
                await self._register_again()
                continue
            for hosted in self._all_hosted():
                hosted.driver.on_lease(lease.id, sent_at, lease.ttl_ms)

    async def _register_again(self) -> None:
        addresses = NodeAddresses(
            http=self.settings.advertise_http, native=self.settings.advertise_native
        )
        sent_at = self._now_ms()
        info = msgspec.json.encode(addresses)
        try:
            lease = await asyncio.to_thread(
                lambda: self.coord.grant_lease(self.node_id, self.settings.lease_ttl_ms, info)
            )
        except errors.ConveyorError as exc:
            log.warning("registering failed", extra={"error": str(exc)})
            return
        self.lease_id = lease.id
        for hosted in self._all_hosted():
            hosted.driver.on_lease(lease.id, sent_at, lease.ttl_ms)

    async def _tick(self) -> None:
        interval = self.settings.tick_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for hosted in self._all_hosted():
                hosted.driver.tick()

    async def _control(self) -> None:
        interval = self.settings.controller_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            lease_id = self.lease_id
            if lease_id is None:
                continue
            try:
                await asyncio.to_thread(self._control_step, lease_id)
            except errors.ConveyorError as exc:
                log.warning("controller step failed", extra={"error": str(exc)})

    def _control_step(self, lease_id: int) -> None:
        # the watch keeps controller_node current: only the controller and a node that
        # sees the key free talk to etcd on each pass
        if self.controller_node is None:
            self.controller_node = self.coord.campaign(lease_id)
        if self.controller_node != self.node_id:
            self._missing_since.clear()
            return
        for config in self._controller.step():  # elections: every pass
            _log_config("controller: new leader", config)
        self._passes += 1
        if self._passes % moves_every_passes == 0:
            self._move_replicas()

    def _move_replicas(self) -> None:
        """Drain, re-replicate and balance (``coordination.placement``)."""
        live = {node: lease.id for node, lease in self.coord.live_nodes().items()}
        configs = self.coord.list_partitions()
        now = self._now_ms()
        hosting = {r for c in configs for r in c.replicas}
        for node in hosting - set(live):
            self._missing_since.setdefault(node, now)
        for node in list(self._missing_since):
            if node in live:
                del self._missing_since[node]
        grace = self.settings.replace_after_ms
        gone = {n for n, since in self._missing_since.items() if now - since >= grace}
        rf = {
            partition_name(q.meta.uid, i): q.replication_factor
            for q in self.queues.values()
            for i in range(q.meta.config.partitions)
        }
        moves = rebalance(configs, rf, live, draining=self.coord.draining(), gone=gone)
        by_name = {c.partition: c for c in configs}
        for new in moves:
            result = self.coord.cas_partition(by_name[new.partition].version, new)
            if result.ok and result.current is not None:
                _log_config("controller: replicas moved", result.current)

    def set_draining(self, node: str, draining: bool) -> int:
        """Mark a node as leaving (or not); returns how many replicas it still holds."""
        if draining and node not in self.nodes and node not in self.node_leases:
            held = sum(1 for c in self.configs.values() if node in c.replicas)
            if not held:
                raise errors.InvalidParameterValue(f"no node {node!r} in the cluster")
        self.coord.set_draining(node, draining)
        return sum(1 for c in self.coord.list_partitions() if node in c.replicas)

    # ------------------------------------------------------------------ driver hooks
    def send(self, to: str, message: Message) -> None:
        loop = self.loop
        if loop is None or self._stopping:
            return
        data = encode_message(message)
        loop.call_soon_threadsafe(self._send_soon, to, data)

    def _send_soon(self, to: str, data: bytes) -> None:
        client = self.peer(to)
        if client is None:
            return
        req = n.ReplicateRequest(id=0, sender=self.node_id, data=data)
        if client.send_nowait(req):
            return  # the common case: written on the open connection, no task
        task = asyncio.ensure_future(self._send(to, data))  # connect first, or wait a slot
        task.add_done_callback(_ignore_result)

    async def _send(self, to: str, data: bytes) -> None:
        client = self.peer(to)
        if client is None:
            return
        req = n.ReplicateRequest(id=0, sender=self.node_id, data=data)
        with contextlib.suppress(errors.ConveyorError, TimeoutError, OSError):
            await client.request(req, timeout_s=5.0)

    def peer(self, node: str) -> AsyncClient | None:
        """The client of another node's native port (None: its address is not known).
        One connection per peer carries replication, forwarded requests and moves; it
        never retries (whoever asked retries, if that is safe)."""
        client = self._peers.get(node)
        if client is None:
            addresses = self.nodes.get(node)
            if addresses is None:
                return None
            client = AsyncClient(
                addresses.native,
                client_name="conveyor-node/" + self.node_id,
                timeout_s=self.settings.forward_timeout_s,
                retry=RetryPolicy(attempts=1),
            )
            self._peers[node] = client
        return client

    def on_replicate(self, req: n.ReplicateRequest) -> None:
        """A replication message from another node (the native server calls this)."""
        message = decode_message(req.data)
        with self._lock:
            hosted = self.hosted.get(message.partition)
        if hosted is not None:
            hosted.driver.on_message(req.sender, message)

    def propose(
        self, driver: ReplicaDriver, expected_version: int, config: PartitionConfig
    ) -> None:
        loop = self.loop
        if loop is None:
            return

        def cas() -> None:
            try:
                result = self.coord.cas_partition(expected_version, config)
            except errors.ConveyorError as exc:
                log.warning("configuration change failed", extra={"error": str(exc)})
                return
            if result.current is not None:
                driver.on_config(result.current)

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(asyncio.to_thread(cas)))

    def apply(self, driver: ReplicaDriver, records: Sequence[LogRecord]) -> None:
        broker = self.broker
        with self._lock:
            hosted = self.hosted.get(driver.partition)
        if hosted is None or broker is None:
            return
        q = broker._queues.get(hosted.queue)
        if q is None:
            return
        with q.lock:
            state = hosted.partition.state
            woke = False
            for rec in records:
                if rec.offset < state.next_offset:
                    continue  # the leader applied its own appends already
                state.apply(rec.offset, rec.ts_ms, R.decode(rec.type, rec.payload))
                woke = True
            if woke:
                q.wake()

    def role_changed(self, driver: ReplicaDriver, change: RoleChanged, commit: int) -> None:
        broker = self.broker
        with self._lock:
            hosted = self.hosted.get(driver.partition)
        if hosted is None or broker is None:
            return
        q = broker._queues.get(hosted.queue)
        if q is None:
            return
        if change.role is not Role.LEADER:
            with q.lock:
                part = hosted.partition
                if part.state.next_offset > commit:
                    # applied past the commit point as leader: go back to what is committed
                    part.rebuild_state(commit)
                q.wake()

    # ------------------------------------------------------------------ moves
    def remote_move(self, dest_uid: str, records: list[R.Append]) -> str:
        """The broker's ``remote_mover``: append moved messages on the leaders of the
        destination's partitions (blocking; a worker thread, never the event loop).
        Returns the destination's name; raises if any part could not be placed."""
        record = next((q for q in self.queues.values() if q.meta.uid == dest_uid), None)
        if record is None:
            raise errors.Unavailable(f"the destination queue {dest_uid} is not known here")
        n_parts = record.meta.config.partitions
        by_part: dict[int, list[R.Append]] = {}
        for rec in records:
            if record.meta.config.fifo:
                p = zlib.crc32((rec.group_id or "").encode()) % n_parts
            else:
                led_here = [
                    i for i in range(n_parts) if self.leader_of(record.meta.name, i) == self.node_id
                ]
                p = led_here[0] if led_here else 0
            by_part.setdefault(p, []).append(rec)
        broker, loop = self.broker, self.loop
        assert broker is not None and loop is not None
        for p, recs in by_part.items():
            leader = self.leader_of(record.meta.name, p)
            if leader is None:
                raise errors.Unavailable(f"partition {p} of {record.meta.name!r} has no leader")
            if leader == self.node_id:
                broker.accept_moves(dest_uid, p, recs)
                continue
            client = self.peer(leader)
            if client is None:
                raise errors.Unavailable(f"the leader {leader} is not reachable from here")
            req = n.MoveInRequest(
                id=0,
                queue_uid=dest_uid,
                partition=p,
                records=[R.encode(rec)[1] for rec in recs],
            )
            future = asyncio.run_coroutine_threadsafe(client.request(req), loop)
            try:
                future.result(self.settings.forward_timeout_s + 1)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise errors.Unavailable(f"moving to {leader} timed out") from None
        return record.meta.name

    # ------------------------------------------------------------------ the catalog
    def create_queue(
        self, name: str, config: dict[str, Any] | None, tags: dict[str, str] | None
    ) -> tuple[QueueMeta, bool]:
        """Write a new queue and its partitions' configurations (blocking; a thread)."""
        validate_name(name)
        config = dict(config or {})
        rf = config.pop("replication_factor", self.settings.replication_factor)
        if isinstance(rf, bool) or not isinstance(rf, int) or not 1 <= rf <= 7:
            raise errors.InvalidAttributeValue("replication_factor must be between 1 and 7")
        cfg = make_config(name, config)
        existing = self.coord.get_queue(name)
        if existing is not None:
            current = _queue_codec.decode(existing)
            if current.meta.config != cfg:
                raise errors.QueueAlreadyExists(
                    f"a queue named {name!r} already exists with different attributes"
                )
            return current.meta, False
        if cfg.redrive is not None and cfg.redrive.dead_letter_queue not in self.queues:
            raise errors.InvalidAttributeValue(
                f"dead-letter queue {cfg.redrive.dead_letter_queue!r} does not exist"
            )
        now = _wall_ms()
        meta = QueueMeta(
            name=name,
            uid=new_uid(),
            config=cfg,
            created_ms=now,
            modified_ms=now,
            tags=dict(tags or {}),
        )
        live = self.coord.live_nodes()
        load: dict[str, int] = {}
        leading: dict[str, int] = {}
        for c in self.coord.list_partitions():
            for r in c.replicas:
                load[r] = load.get(r, 0) + 1
            if c.leader is not None:
                leading[c.leader] = leading.get(c.leader, 0) + 1
        placed = place(rf, cfg.partitions, sorted(live), load, leading)
        for i, replicas in enumerate(placed):
            leader = replicas[0]
            pc = PartitionConfig(
                partition=partition_name(meta.uid, i),
                replicas=replicas,
                leader=leader,
                leader_lease=live[leader].id,
                epoch=1,
                isr=replicas,
            )
            created = self.coord.create_partition(pc)
            if created.current is not None:
                self.configs.setdefault(created.current.partition, created.current)
        record = ClusterQueue(meta=meta, replication_factor=rf)
        if not self.coord.put_queue(name, msgspec.json.encode(record)):
            return self.create_queue(name, {**config, "replication_factor": rf}, tags)
        # known here at once (the watch confirms it), so this node routes it right away
        self.queues.setdefault(name, record)
        log.info("queue created", extra={"queue": name, "uid": meta.uid, "rf": rf})
        return meta, True

    def update_queue(
        self,
        name: str,
        changes: dict[str, Any] | None,
        tags: dict[str, str] | None,
        remove: Sequence[str],
    ) -> None:
        """Change a queue's attributes or tags in the catalog (blocking; a thread).

        Every node hosting the queue picks the new record up from its watch."""
        raw = self.coord.get_queue(name)
        if raw is None:
            raise errors.QueueDoesNotExist(f"the queue {name!r} does not exist")
        record = _queue_codec.decode(raw)
        meta = record.meta
        if changes:
            cfg = update_config(name, meta.config, changes)
            if cfg.fifo != meta.config.fifo or cfg.partitions != meta.config.partitions:
                raise errors.InvalidAttributeValue(
                    "fifo and partitions cannot change after a queue is created"
                )
            if cfg.redrive is not None and cfg.redrive.dead_letter_queue not in self.queues:
                raise errors.InvalidAttributeValue(
                    f"dead-letter queue {cfg.redrive.dead_letter_queue!r} does not exist"
                )
            meta = msgspec.structs.replace(meta, config=cfg, modified_ms=_wall_ms())
        if tags is not None or remove:
            new_tags = {k: v for k, v in meta.tags.items() if k not in set(remove)}
            new_tags.update(tags or {})
            if len(new_tags) > limits.queue_tags_max:
                raise errors.InvalidParameterValue(
                    f"a queue may have at most {limits.queue_tags_max} tags"
                )
            meta = msgspec.structs.replace(meta, tags=new_tags)
        record = ClusterQueue(meta=meta, replication_factor=record.replication_factor)
        self.coord.put_queue(name, msgspec.json.encode(record), overwrite=True)
        self.queues[name] = record

    def delete_queue(self, name: str) -> None:
        if self.coord.get_queue(name) is None:
            raise errors.QueueDoesNotExist(f"the queue {name!r} does not exist")
        self.coord.delete_queue(name)

    # ------------------------------------------------------------------ routing
    def leader_of(self, queue: str, index: int = 0) -> str | None:
        """The node leading one partition of the queue, as the cache knows it."""
        q = self.queues.get(queue)
        if q is None:
            return None
        config = self.configs.get(partition_name(q.meta.uid, index))
        return None if config is None else config.leader

    def partitions_of(self, queue: str) -> int:
        q = self.queues.get(queue)
        return 0 if q is None else q.meta.config.partitions

    def leads(self, queue: str, index: int | None = 0) -> bool:
        """Whether this node has the queue open, leads the partition (any partition when
        ``index`` is None), and has applied its log (a new leader first commits its
        epoch's first record)."""
        q = self.queues.get(queue)
        if q is None:
            return False
        indexes = range(q.meta.config.partitions) if index is None else (index,)
        with self._lock:
            for i in indexes:
                hosted = self.hosted.get(partition_name(q.meta.uid, i))
                if hosted is not None and hosted.partition.writable:
                    return True
        return False

    def status(self) -> dict[str, Any]:
        """Nodes, partitions, leaders, ISR and lag, as this node sees them."""
        parts = []
        for name, q in sorted(self.queues.items()):
            for i in range(q.meta.config.partitions):
                pname = partition_name(q.meta.uid, i)
                config = self.configs.get(pname)
                with self._lock:
                    hosted = self.hosted.get(pname)
                entry: dict[str, Any] = {
                    "queue": name,
                    "partition": i,
                    "name": pname,
                    "replicas": list(config.replicas) if config else [],
                    "leader": config.leader if config else None,
                    "epoch": config.epoch if config else 0,
                    "isr": list(config.isr) if config else [],
                }
                if hosted is not None:
                    local = hosted.driver.status()
                    entry["local"] = {
                        k: local[k] for k in ("role", "log_end", "commit", "durable_end")
                    }
                parts.append(entry)
        held: dict[str, int] = {}
        for config in self.configs.values():
            for r in config.replicas:
                held[r] = held.get(r, 0) + 1
        return {
            "node": self.node_id,
            "controller": self.controller_node,
            "nodes": [
                {
                    "id": node,
                    "http": addr.http,
                    "native": addr.native,
                    "lease": self.node_leases.get(node),
                    "replicas": held.get(node, 0),
                }
                for node, addr in sorted(self.nodes.items())
                if node in self.node_leases
            ],
            "partitions": parts,
        }


class _Resync:
    """A watch event of our own: the watch broke, read everything again."""


_RESYNC = _Resync()


def _log_config(what: str, config: PartitionConfig) -> None:
    log.info(
        what,
        extra={
            "partition": config.partition,
            "replicas": list(config.replicas),
            "leader": config.leader,
            "epoch": config.epoch,
            "isr": list(config.isr),
        },
    )


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
