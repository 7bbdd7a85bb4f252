"""A hand-driven cluster for unit tests of the replication core.

Unlike the simulator nothing here is random: a test decides which messages are delivered,
which disks sync, when time passes and when the controller runs. Every node's clock is
the harness clock. Effects are carried out as the real driver would: ``Send`` goes to an
inbox, ``Persist`` to the node's disk (durable only after :meth:`Cluster.sync`),
``ProposeConfig`` to the coordinator (answered at once, unless held), ``Apply`` to the
node's applied list, ``Reply`` to the node's replies.
"""

from __future__ import annotations

from collections.abc import Callable

from conveyor.coordination import Controller, InMemoryCoordinator, PartitionConfig
from conveyor.replication import (
    Apply,
    Buggify,
    Effect,
    LogRecord,
    Message,
    Persist,
    ProposeConfig,
    Replica,
    ReplicaSettings,
    Reply,
    RoleChanged,
    Send,
    Truncate,
    decode,
    encode,
    is_control,
)

PARTITION = "p0"
TTL_MS = 3_000
SETTINGS = ReplicaSettings(
    min_insync=2,
    fetch_wait_ms_max=100,
    fetch_timeout_ms=300,
    replica_lag_ms_max=1_000,
    config_retry_ms=200,
    client_timeout_ms=2_000,
    clock_drift_ppm_max=0,
    lease_margin_ms=0,
)


class Node:
    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.disk: list[LogRecord] = []
        self.synced = 0
        self.log_version = 0
        self.incarnation = 0
        self.lease_id: int | None = None
        self.applied: list[LogRecord] = []
        self.replies: list[Reply] = []
        self.roles: list[RoleChanged] = []
        self.proposals: list[ProposeConfig] = []
        self.replica = self.boot()

    def boot(self, *, unclean: bool = False) -> Replica:
        self.incarnation += 1
        self.log_version = 0
        self.applied = []
        self.lease_id = None
        self.replica = Replica(
            self.name,
            PARTITION,
            settings=self.cluster.settings,
            incarnation=self.incarnation,
            recovered=list(self.disk),
            read_old=lambda start, end: self.disk[start:end],
            unclean=unclean,
            buggify=self.cluster.buggify,
        )
        return self.replica

    def crash(self, *, keep_unsynced: bool = False) -> None:
        """Power loss: unsynced records are gone (unless ``keep_unsynced``)."""
        if not keep_unsynced:
            del self.disk[self.synced :]
        self.synced = len(self.disk)
        self.cluster.down.add(self.name)

    def restart(self, *, unclean: bool = False) -> None:
        self.cluster.down.discard(self.name)
        self.boot(unclean=unclean)
        self.cluster.run(self, self.replica.on_config(self.cluster.config(), self.cluster.now))

    @property
    def payloads(self) -> list[bytes]:
        return [r.payload for r in self.applied if not is_control(r.type)]


class Cluster:
    def __init__(
        self,
        n: int = 3,
        *,
        settings: ReplicaSettings = SETTINGS,
        buggify: Buggify | None = None,
    ) -> None:
        self.now = 0
        self.settings = settings
        self.buggify = buggify or Buggify()
        self.coord = InMemoryCoordinator(lambda: self.now)
        self.down: set[str] = set()
        self.hold_proposals = False
        self.inbox: list[tuple[str, str, bytes]] = []
        self.node: dict[str, Node] = {}
        names = tuple(f"n{i + 1}" for i in range(n))
        config = PartitionConfig(partition=PARTITION, replicas=names, isr=names)
        assert self.coord.create_partition(config).ok
        for name in names:
            self.node[name] = Node(self, name)
        self.request = 0

    # --- coordinator ---------------------------------------------------------------------
    def config(self) -> PartitionConfig:
        config = self.coord.get_partition(PARTITION)
        assert config is not None
        return config

    def grant_leases(self, *names: str) -> None:
        for name in names or tuple(self.node):
            node = self.node[name]
            lease = self.coord.grant_lease(name, TTL_MS)
            node.lease_id = lease.id
            self.run(node, node.replica.on_lease(lease.id, self.now, TTL_MS, self.now))

    def renew(self, *names: str, regrant: bool = True) -> None:
        """Keep leases alive; a lost lease is reported, then (``regrant``) replaced."""
        for name in names or tuple(self.node):
            node = self.node[name]
            if name in self.down or node.lease_id is None:
                continue
            lease = self.coord.keep_alive(node.lease_id)
            if lease is not None:
                self.run(node, node.replica.on_lease(lease.id, self.now, TTL_MS, self.now))
                continue
            self.run(node, node.replica.on_lease_lost(self.now))
            node.lease_id = None
            if regrant:
                self.grant_leases(name)

    def broadcast_config(self, *names: str) -> None:
        config = self.config()
        for name in names or tuple(self.node):
            if name not in self.down:
                node = self.node[name]
                self.run(node, node.replica.on_config(config, self.now))

    def elect(self, controller: str = "n1") -> PartitionConfig:
        """Run the controller once (campaigning with ``controller``'s lease) and broadcast."""
        lease = self.node[controller].lease_id
        assert lease is not None
        self.coord.campaign(lease)
        holder = self.coord.controller()
        assert holder is not None
        Controller(self.coord, holder).step()
        self.broadcast_config()
        return self.config()

    def bootstrap(self) -> str:
        """Leases for all, elect a leader, let its epoch marker become durable."""
        self.grant_leases()
        config = self.elect()
        assert config.leader is not None
        self.settle()
        return config.leader

    # --- effects ------------------------------------------------------------------------------
    def run(self, node: Node, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.inbox.append((node.name, effect.to, encode(effect.message)))
            elif isinstance(effect, Persist):
                assert effect.records[0].offset == len(node.disk)
                node.disk.extend(effect.records)
                node.log_version = effect.log_version
            elif isinstance(effect, Truncate):
                del node.disk[effect.next_offset :]
                node.synced = min(node.synced, effect.next_offset)
                node.log_version = effect.log_version
            elif isinstance(effect, Apply):
                node.applied.extend(effect.records)
            elif isinstance(effect, ProposeConfig):
                node.proposals.append(effect)
                if not self.hold_proposals:
                    self.answer_proposal(node, effect)
            elif isinstance(effect, Reply):
                node.replies.append(effect)
            elif isinstance(effect, RoleChanged):
                node.roles.append(effect)

    def answer_proposal(self, node: Node, effect: ProposeConfig) -> None:
        result = self.coord.cas_partition(effect.expected_version, effect.config)
        if result.ok:
            self.broadcast_config()
        elif result.current is not None:
            self.run(node, node.replica.on_config(result.current, self.now))

    def sync(self, *names: str) -> None:
        for name in names or tuple(self.node):
            node = self.node[name]
            if name in self.down or node.synced == len(node.disk):
                continue
            node.synced = len(node.disk)
            self.run(node, node.replica.on_persisted(node.synced, node.log_version, self.now))

    def deliver(self, keep: Callable[[str, str, Message], bool] = lambda s, t, m: True) -> int:
        """Deliver everything in the inbox now (``keep`` false: the message is lost)."""
        batch, self.inbox = self.inbox, []
        delivered = 0
        for sender, to, data in batch:
            message = decode(data)
            if to in self.down or sender in self.down or not keep(sender, to, message):
                continue
            node = self.node[to]
            self.run(node, node.replica.on_message(sender, message, self.now))
            delivered += 1
        return delivered

    def settle(
        self,
        keep: Callable[[str, str, Message], bool] = lambda s, t, m: True,
        rounds_max: int = 200,
        sync: tuple[str, ...] = (),
    ) -> None:
        """Deliver and sync until nothing moves (``sync``: only these disks sync)."""
        for _ in range(rounds_max):
            before = [(len(n.disk), n.synced) for n in self.node.values()]
            self.sync(*sync)
            moved = self.deliver(keep)
            after = [(len(n.disk), n.synced) for n in self.node.values()]
            if not moved and before == after:
                return
        raise AssertionError("the cluster did not settle")

    def advance(self, ms: int, step_ms: int = 50, *, renew: bool = True, live: bool = True) -> None:
        """Let time pass in steps: tick every replica, renew leases, and (``live``)
        deliver messages and sync disks after each step."""
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + step_ms)
            if renew:
                self.renew()
            for name, node in self.node.items():
                if name not in self.down:
                    self.run(node, node.replica.tick(self.now))
            if live:
                self.settle()

    # --- clients ---------------------------------------------------------------------------------
    def write(self, leader: str, payload: bytes) -> int:
        self.request += 1
        node = self.node[leader]
        self.run(node, node.replica.append(self.request, [(1, self.now, payload)], self.now))
        return self.request

    def reply(self, leader: str, request: int) -> Reply | None:
        for reply in self.node[leader].replies:
            if reply.request_id == request:
                return reply
        return None
