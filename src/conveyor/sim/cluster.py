"""A whole replicated partition in one process, driven by one ``random.Random(seed)``.

The simulation has N nodes (each a :class:`~conveyor.replication.Replica` with a
simulated disk, a toy partition state and a skewed clock), the in-memory coordinator
(true time; leases expire on it), the controller (run by whichever node holds the
controller key), a lossy network and a client that keeps writing. Time is simulated: an
event heap, nothing sleeps.

Phases:

1. **Safety** (``safety_ms``): faults are injected at random: power loss (unsynced
   writes lost, torn tails) and process crashes with later restarts, partitions of one
   node, of a node from the coordinator only or from its peers only, random splits,
   fsync stalls, loss bursts. The network drops, duplicates, delays and reorders all
   along. Tuning values (timeouts, TTLs, batch sizes, loss rates, clock drift) are drawn
   from the seed too, so rare paths get exercised.
2. **Heal**: every node is restarted, partitions healed, the network made reliable.
   The client writes for a while, then stops; the replicas must converge: one serving
   leader, every replica in the ISR with the same log, durable and committed, the same
   partition state, and client writes acknowledged after healing.

:mod:`~conveyor.sim.checkers` runs after every event. A violation stops the run; the
result names it, with the seed and the command that replays it exactly.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.controller import Controller
from conveyor.coordination.coordinator import Lease, PartitionChanged, WatchEvent
from conveyor.coordination.memory import InMemoryCoordinator
from conveyor.partition import records as partition_records
from conveyor.partition.state import PartitionState
from conveyor.replication.buggify import NONE, Buggify
from conveyor.replication.effects import (
    Apply,
    Effect,
    Persist,
    ProposeConfig,
    Reply,
    Role,
    RoleChanged,
    Send,
    Truncate,
)
from conveyor.replication.messages import FetchResponse, decode, encode
from conveyor.replication.replica import Replica
from conveyor.replication.settings import ReplicaSettings
from conveyor.replication.state import AppliedState, PartitionApplier
from conveyor.sim.checkers import Checker, Violation
from conveyor.sim.disk import SimDisk
from conveyor.sim.network import Network, NetworkParams
from conveyor.sim.state import ToyState

PARTITION = "p0"
COORD = "coord"
CLIENT = "client"
DATA = 1  # the record type the client writes

steps_max = 3_000_000  # a run that needs more is a liveness bug in itself
trace_lines_max = 400
heal_writes_ms = 3_000  # the client keeps writing this long after healing
check_interval_ms = 100  # how often the heal phase looks for convergence
controller_interval_ms = 50
safety_ms_default = 15_000


class SimOptions(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    nodes: int = 3
    safety_ms: int = safety_ms_default
    heal_ms_max: int = 40_000
    progress_acks_min: int = 3  # acknowledged writes required after healing
    buggify: Buggify = NONE
    elect_outside_isr: bool = False  # the controller's unclean election, as a fault
    lazy_disk: bool | None = None  # one node's disk lies about fsync; None: the seed decides
    faults: bool = True
    isr_check: bool = True  # off: only losses that actually happen are reported
    partition_state: bool = False  # replicate real Append records into PartitionState
    trace: bool = False  # print every trace line as it happens

    def replay_args(self) -> str:
        args = [f"--seed {self.seed}"]
        if self.nodes != 3:
            args.append(f"--nodes {self.nodes}")
        if self.safety_ms != safety_ms_default:
            args.append(f"--safety-ms {self.safety_ms}")
        for name in self.buggify.names():
            args.append(f"--buggify {name}")
        if self.elect_outside_isr:
            args.append("--buggify elect_outside_isr")
        if self.lazy_disk is not None:
            args.append("--lazy-disk" if self.lazy_disk else "--no-lazy-disk")
        if not self.faults:
            args.append("--no-faults")
        if not self.isr_check:
            args.append("--no-isr-check")
        if self.partition_state:
            args.append("--partition-state")
        return " ".join(args)


class SimResult(msgspec.Struct, kw_only=True):
    options: SimOptions
    ok: bool
    kind: str = ""
    detail: str = ""
    sim_ms: int = 0
    steps: int = 0
    committed: int = 0
    acked: int = 0
    stats: dict[str, int] = {}
    trace: list[str] = []

    def replay_command(self) -> str:
        return f".venv/bin/python -m conveyor.sim {self.options.replay_args()}"

    def describe(self) -> str:
        head = f"seed {self.options.seed}: "
        if self.ok:
            return head + (
                f"ok ({self.steps} steps, {self.sim_ms} ms simulated, "
                f"{self.committed} committed, {self.acked} acked)"
            )
        lines = [
            head + f"VIOLATION {self.kind}: {self.detail}",
            f"  at {self.sim_ms} ms simulated, step {self.steps}",
            f"  replay: {self.replay_command()}",
        ]
        if self.options.replay_args() == f"--seed {self.options.seed}":
            lines.append(f"      or: .venv/bin/pytest tests/sim --seed {self.options.seed}")
        return "\n".join(lines)


class _Node:
    """One simulated node: its clock, disk, and (while up) its replica and state."""

    def __init__(self, name: str, rng: random.Random, drift_ppm_max: int, lazy: bool) -> None:
        self.name = name
        self.clock_offset_ms = rng.randint(-100_000, 100_000)
        self.drift_ppm = rng.randint(-drift_ppm_max, drift_ppm_max)
        self.disk = SimDisk(lazy=lazy)
        self.up = False
        self.incarnation = 0
        self.replica: Replica | None = None
        self.state: AppliedState = ToyState()
        self.commit_seen = 0
        self.log_version = 0
        self.sync_pending = False
        self.stall_until = 0
        self.lease_id: int | None = None
        self.lease_requested = False
        self.watch_queue: deque[PartitionConfig] = deque()
        self.watch_pumping = False
        self.controller: Controller | None = None

    def local(self, true_ms: int) -> int:
        return self.clock_offset_ms + true_ms + (true_ms * self.drift_ppm) // 1_000_000

    def true_delay(self, local_ms: int) -> int:
        """How much true time passes while this node's clock advances ``local_ms``."""
        return max(1, (local_ms * 1_000_000) // (1_000_000 + self.drift_ppm))


class Simulation:
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.rng = rng = random.Random(options.seed)
        self.now = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.steps = 0
        self.trace: deque[str] = deque(maxlen=trace_lines_max)
        self.checker = Checker()
        self.coord = InMemoryCoordinator(lambda: self.now)
        self.net = Network(rng, NetworkParams(rng))
        # tuning drawn from the seed
        self.drift_ppm_max = rng.choice([0, 1_000, 20_000, 50_000])
        self.ttl_ms = rng.choice([400, 1_000, 2_000])
        self.keepalive_ms = self.ttl_ms // rng.choice([3, 4, 6])
        self.tick_ms = rng.choice([10, 20, 40])
        self.fsync_ms_max = rng.choice([1, 5, 20, 60])
        self.client_interval_ms = rng.choice([5, 20, 60])
        self.fault_interval_ms = rng.choice([300, 800, 2_000])
        self.lazy_sync_ms = rng.choice([50, 200])
        fetch_wait = rng.choice([20, 100, 300])
        fetch_timeout = fetch_wait * 2 + 2 * self.net.params.delay_ms_max + 50
        self.settings = ReplicaSettings(
            min_insync=min(2, options.nodes),
            fetch_wait_ms_max=fetch_wait,
            fetch_timeout_ms=fetch_timeout,
            replica_lag_ms_max=max(2 * fetch_timeout, rng.choice([300, 1_000, 3_000])),
            config_retry_ms=rng.choice([100, 500]),
            client_timeout_ms=rng.choice([500, 2_000]),
            fetch_records_max=rng.choice([2, 16, 256]),
            fetch_bytes_max=rng.choice([256, 65_536]),
            clock_drift_ppm_max=self.drift_ppm_max,
            lease_margin_ms=1,
        )
        lazy = options.lazy_disk if options.lazy_disk is not None else rng.random() < 0.2
        lazy = lazy and options.nodes > 1  # one lying disk among honest ones
        lazy_node = rng.randrange(options.nodes) if lazy else -1
        self.nodes = [
            _Node(f"n{i + 1}", rng, self.drift_ppm_max, lazy=i == lazy_node)
            for i in range(options.nodes)
        ]
        self.by_name = {n.name: n for n in self.nodes}
        self.phase = "safety"
        self.writing = True
        self.requests: dict[int, bytes] = {}
        self.next_request = 0
        self.acked_after_heal = 0
        self.client_leader: str | None = None
        self.stats: dict[str, int] = {
            "crashes": 0,
            "partitions": 0,
            "leader_changes": 0,
            "truncations": 0,
            "torn_tails": 0,
        }

    # --- event loop ------------------------------------------------------------------------
    def at(self, delay_ms: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + max(0, delay_ms), self._seq, fn, args))

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def log(self, line: str) -> None:
        text = f"{self.now:>7} {line}"
        self.trace.append(text)
        if self.options.trace:
            print(text)

    def run(self) -> SimResult:
        try:
            self._setup()
            self._loop()
            return self._result(ok=True)
        except Violation as v:
            self.log(f"VIOLATION {v.kind}: {v.detail}")
            return self._result(ok=False, kind=v.kind, detail=v.detail)
        except AssertionError as e:
            self.log(f"CORE INVARIANT: {e!r}")
            return self._result(ok=False, kind="core-invariant", detail=repr(e))

    def _result(self, *, ok: bool, kind: str = "", detail: str = "") -> SimResult:
        stats = dict(self.stats)
        stats.update(
            sent=self.net.sent,
            dropped=self.net.dropped,
            duplicated=self.net.duplicated,
            torn_tails=sum(n.disk.torn_tails for n in self.nodes),
        )
        return SimResult(
            options=self.options,
            ok=ok,
            kind=kind,
            detail=detail,
            sim_ms=self.now,
            steps=self.steps,
            committed=len(self.checker.committed),
            acked=self.checker.acked,
            stats=stats,
            trace=list(self.trace),
        )

    def _setup(self) -> None:
        names = tuple(n.name for n in self.nodes)
        config = PartitionConfig(partition=PARTITION, replicas=names, isr=names)
        assert self.coord.create_partition(config).ok
        self.coord.watch(self.coord.revision(), self._on_watch)
        for node in self.nodes:
            self._boot(node)
            self.at(0, self._keepalive, node, node.incarnation)
        self.at(controller_interval_ms, self._controller_step)
        self.at(0, self._client_write)
        if self.options.faults:
            self.at(self._fault_gap(), self._fault)
        self.at(self.options.safety_ms, self._heal)

    def _loop(self) -> None:
        deadline = self.options.safety_ms + self.options.heal_ms_max
        while self._heap:
            when, _, fn, args = heapq.heappop(self._heap)
            if when > deadline:
                self.now = deadline
                raise Violation("no-convergence", self._convergence_report())
            self.now = when
            self._expire_leases()
            fn(*args)
            self.steps += 1
            self._check()
            if self.phase == "done":
                return
            if self.steps > steps_max:
                raise Violation("no-convergence", f"more than {steps_max} steps")
        raise Violation("no-convergence", "nothing left to do")

    # --- checks ----------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.options.isr_check:
            return
        config = self.coord.get_partition(PARTITION)
        assert config is not None
        for member in config.isr:
            node = self.by_name[member]
            if node.disk.lazy:
                if node.replica is None or node.replica.unclean or not node.up:
                    continue  # rule 7: it does not count until it has caught up
                durable = node.disk.end
            else:
                durable = node.disk.synced
            self.checker.check_isr_durable(member, node.disk.written, durable)

    def _expire_leases(self) -> None:
        first = self.coord.next_expiry()
        if first is None or self.now < first:
            return
        due = {}
        for node in self.nodes:
            if node.lease_id is not None:
                exp = self.coord.lease_expires_at(node.lease_id)
                if exp is not None and exp <= self.now:
                    due[node.lease_id] = exp
        for lease in self.coord.expire():
            self._check_lease_expiry(lease, due.get(lease.id, self.now))

    def _check_lease_expiry(self, lease: Lease, expired_at: int) -> None:
        """Rule 2: when the coordinator expires a lease, its holder has stopped leading."""
        node = self.by_name[lease.node]
        replica = node.replica
        self.log(f"coordinator: lease {lease.id} of {lease.node} expired")
        if replica is None or not node.up or replica.lease_id != lease.id:
            return
        local = node.local(expired_at)
        if replica.role is Role.LEADER and replica.lease_deadline > local:
            raise Violation(
                "lease",
                f"{node.name} leads until {replica.lease_deadline} (its clock) on lease "
                f"{lease.id}, which the coordinator expired at its clock's {local}",
            )

    # --- nodes -------------------------------------------------------------------------------
    def _boot(self, node: _Node) -> None:
        node.up = True
        node.incarnation += 1
        recovered = node.disk.recover()
        self.checker.forget_disk(node.name, len(recovered))
        node.replica = Replica(
            node.name,
            PARTITION,
            settings=self.settings,
            incarnation=node.incarnation,
            recovered=recovered,
            unclean=node.disk.lazy and node.disk.crashes > 0,
            buggify=self.options.buggify,
        )
        node.state = self._new_state()
        node.commit_seen = 0
        node.log_version = 0
        node.sync_pending = False
        node.lease_id = None
        node.lease_requested = False
        node.watch_queue.clear()
        node.watch_pumping = False  # a pump scheduled for the previous process is void
        node.controller = Controller(
            self.coord, node.name, elect_outside_isr=self.options.elect_outside_isr
        )
        self.log(f"{node.name} boots (incarnation {node.incarnation}, log {len(recovered)})")
        inc = node.incarnation
        self._rpc(node, lambda: self.coord.get_partition(PARTITION), self._on_config_reply)
        self.at(0, self._tick, node, inc)
        if node.disk.lazy:
            self.at(self.lazy_sync_ms, self._lazy_sync, node, inc)

    def _new_state(self) -> AppliedState:
        if self.options.partition_state:
            return PartitionApplier(PartitionState(fifo=False))
        return ToyState()

    def _crash(self, node: _Node, power_loss: bool) -> None:
        node.up = False
        node.replica = None
        node.controller = None
        if power_loss:
            node.disk.crash(self.rng)
        elif node.disk.lazy:
            node.disk.sync()  # the process died, the kernel still writes its pages
        self.checker.forget_disk(node.name, node.disk.end)
        self.stats["crashes"] += 1
        kind = "loses power" if power_loss else "crashes"
        self.log(f"{node.name} {kind} (disk {node.disk.synced}/{node.disk.end} synced)")

    def _alive(self, node: _Node, inc: int) -> Replica | None:
        if node.up and node.incarnation == inc:
            return node.replica
        return None

    def _tick(self, node: _Node, inc: int) -> None:
        replica = self._alive(node, inc)
        if replica is None:
            return
        self._run(node, replica.tick(node.local(self.now)))
        self.at(node.true_delay(self.tick_ms), self._tick, node, inc)

    def _sync(self, node: _Node, inc: int) -> None:
        replica = self._alive(node, inc)
        if replica is None:
            return
        node.sync_pending = False
        durable = node.disk.sync()
        self._run(node, replica.on_persisted(durable, node.log_version, node.local(self.now)))

    def _lazy_persisted(self, node: _Node, inc: int, end: int, version: int) -> None:
        replica = self._alive(node, inc)
        if replica is not None:
            self._run(node, replica.on_persisted(end, version, node.local(self.now)))

    def _lazy_sync(self, node: _Node, inc: int) -> None:
        if self._alive(node, inc) is None:
            return
        node.disk.sync()
        self.at(self.lazy_sync_ms, self._lazy_sync, node, inc)

    def _run(self, node: _Node, effects: list[Effect]) -> None:
        """Carry out a replica's effects, in order."""
        replica = node.replica
        assert replica is not None
        inc = node.incarnation
        for effect in effects:
            if isinstance(effect, Send):
                message = effect.message
                if isinstance(message, FetchResponse):
                    self._count(f"fetch_{message.status.name.lower()}")
                data = encode(message)
                for delay in self.net.delays(node.name, effect.to):
                    self.at(delay, self._deliver, node.name, effect.to, data)
            elif isinstance(effect, Persist):
                node.disk.write(effect.records)
                node.log_version = effect.log_version
                if node.disk.lazy:
                    end = effect.records[-1].offset + 1
                    self.at(0, self._lazy_persisted, node, inc, end, effect.log_version)
                elif not node.sync_pending:
                    node.sync_pending = True
                    delay = self.rng.randint(0, self.fsync_ms_max)
                    if node.stall_until > self.now:
                        delay += node.stall_until - self.now
                    self.at(delay, self._sync, node, inc)
            elif isinstance(effect, Truncate):
                self.log(f"{node.name} truncates to {effect.next_offset}")
                self.stats["truncations"] += 1
                node.disk.truncate(effect.next_offset)
                node.log_version = effect.log_version
                self.checker.forget_disk(node.name, effect.next_offset)
            elif isinstance(effect, Apply):
                self._apply(node, replica, effect)
            elif isinstance(effect, ProposeConfig):
                self._count(f"propose_{_change_kind(replica.config, effect.config)}")
                self.log(
                    f"{node.name} proposes {_short(effect.config)} over v{effect.expected_version}"
                )
                self._rpc(node, self._cas_call(effect), self._on_config_reply)
            elif isinstance(effect, Reply):
                for delay in self.net.delays(node.name, CLIENT):
                    self.at(delay, self._client_reply, effect)
            elif isinstance(effect, RoleChanged):
                self.log(
                    f"{node.name} is {effect.role.value} in epoch {effect.epoch} "
                    f"(leader {effect.leader}): {effect.reason}"
                )
                if effect.role is Role.LEADER:
                    self.stats["leader_changes"] += 1

    def _apply(self, node: _Node, replica: Replica, effect: Apply) -> None:
        start = node.commit_seen
        for record in effect.records:
            node.state.apply(record.offset, record.type, record.ts_ms, record.payload)
        leader_epoch = replica.epoch if replica.role is Role.LEADER else None
        self.checker.on_commit(
            node.name, replica.records(start, effect.commit), start, leader_epoch
        )
        node.commit_seen = effect.commit
        self.checker.on_digest(node.name, effect.commit, node.state.digest())

    def _deliver(self, sender: str, to: str, data: bytes) -> None:
        node = self.by_name[to]
        if not node.up or node.replica is None or self.net.is_cut(sender, to):
            return
        message = decode(data)
        self._run(node, node.replica.on_message(sender, message, node.local(self.now)))

    # --- coordinator traffic --------------------------------------------------------------------
    def _rpc(
        self, node: _Node, call: Callable[[], Any], on_reply: Callable[[_Node, int, Any], None]
    ) -> None:
        """A request to the coordinator and its answer, both over the node's link."""
        inc = node.incarnation

        def arrive() -> None:
            if self.net.is_cut(node.name, COORD):
                return
            result = call()
            for delay in self.net.delays(COORD, node.name)[:1]:
                self.at(delay, answer, result)

        def answer(result: Any) -> None:
            if self._alive(node, inc) is not None and not self.net.is_cut(node.name, COORD):
                on_reply(node, inc, result)

        for delay in self.net.delays(node.name, COORD)[:1]:
            self.at(delay, arrive)

    def _cas_call(self, effect: ProposeConfig) -> Callable[[], PartitionConfig | None]:
        def call() -> PartitionConfig | None:
            return self.coord.cas_partition(effect.expected_version, effect.config).current

        return call

    def _on_config_reply(self, node: _Node, inc: int, config: PartitionConfig | None) -> None:
        replica = self._alive(node, inc)
        if replica is not None and config is not None:
            self._run(node, replica.on_config(config, node.local(self.now)))

    def _on_watch(self, event: WatchEvent) -> None:
        if not isinstance(event, PartitionChanged):
            return
        self.log(f"coordinator: {_short(event.config)}")
        for node in self.nodes:
            if node.up:
                node.watch_queue.append(event.config)
                if not node.watch_pumping:
                    node.watch_pumping = True
                    self.at(self._watch_delay(), self._watch_pump, node, node.incarnation)

    def _watch_delay(self) -> int:
        p = self.net.params
        return self.rng.randint(p.delay_ms_min, p.delay_ms_max)

    def _watch_pump(self, node: _Node, inc: int) -> None:
        """Watch events reach a node in order; a cut link holds them (the watch resumes)."""
        replica = self._alive(node, inc)
        if replica is None:
            return  # the node crashed (and maybe restarted: its new process pumps anew)
        if self.net.is_cut(node.name, COORD):
            self.at(self._watch_delay() + 20, self._watch_pump, node, inc)
            return
        config = node.watch_queue.popleft()
        self._run(node, replica.on_config(config, node.local(self.now)))
        if node.watch_queue:
            self.at(self._watch_delay(), self._watch_pump, node, inc)
        else:
            node.watch_pumping = False

    def _keepalive(self, node: _Node, inc: int) -> None:
        replica = self._alive(node, inc)
        if replica is None:
            return
        if replica.config is None:  # the first read was lost: read again
            self._rpc(node, lambda: self.coord.get_partition(PARTITION), self._on_config_reply)
        sent_at = node.local(self.now)
        lease_id = node.lease_id
        if lease_id is None:
            if not node.lease_requested or self.rng.random() < 0.3:
                node.lease_requested = True
                self._rpc(
                    node,
                    lambda: self.coord.grant_lease(node.name, self.ttl_ms),
                    lambda n, i, lease: self._on_granted(n, i, lease, sent_at),
                )
        else:

            def renew() -> tuple[Lease | None, bool]:
                lease = self.coord.keep_alive(lease_id)
                if lease is not None:
                    self.coord.campaign(lease_id)
                registered = self.coord.live_nodes().get(node.name)
                return lease, registered is not None and registered.id == lease_id

            self._rpc(node, renew, lambda n, i, r: self._on_renewed(n, i, lease_id, r, sent_at))
        self.at(node.true_delay(self.keepalive_ms), self._keepalive, node, inc)

    def _on_granted(self, node: _Node, inc: int, lease: Lease, sent_at: int) -> None:
        replica = self._alive(node, inc)
        if replica is None or node.lease_id is not None:
            return  # a second grant answered: the first one stands (the other expires)
        node.lease_id = lease.id
        self.log(f"{node.name} holds lease {lease.id}")
        self._run(node, replica.on_lease(lease.id, sent_at, lease.ttl_ms, node.local(self.now)))

    def _on_renewed(
        self,
        node: _Node,
        inc: int,
        lease_id: int,
        result: tuple[Lease | None, bool],
        sent_at: int,
    ) -> None:
        replica = self._alive(node, inc)
        if replica is None or node.lease_id != lease_id:
            return
        lease, registered = result
        now = node.local(self.now)
        if lease is not None and registered:
            self._run(node, replica.on_lease(lease.id, sent_at, lease.ttl_ms, now))
            return
        self.log(f"{node.name} lost lease {lease_id}")
        node.lease_id = None
        node.lease_requested = False
        self._run(node, replica.on_lease_lost(now))

    def _controller_step(self) -> None:
        holder = self.coord.controller()
        if holder is not None:
            node = self.by_name[holder]
            if node.up and node.controller is not None and not self.net.is_cut(holder, COORD):
                for config in node.controller.step():
                    self.log(f"controller {holder} wrote {_short(config)}")
        self.at(controller_interval_ms, self._controller_step)

    # --- client ------------------------------------------------------------------------------------
    def _client_write(self) -> None:
        if not self.writing:
            return
        self.next_request += 1
        request = self.next_request
        payload = b"w%d:" % request + self.rng.randbytes(self.rng.randint(0, 24))
        rtype = DATA
        if self.options.partition_state:
            append = partition_records.Append(
                message_id=f"m{request}", body_bytes=len(payload), body=payload
            )
            rtype, payload = partition_records.encode(append)
        self.requests[request] = payload
        config = self.coord.get_partition(PARTITION)
        if self.client_leader is not None and self.rng.random() < 0.7:
            target = self.client_leader
        elif config is not None and config.leader is not None and self.rng.random() < 0.8:
            target = config.leader
        else:
            target = self.rng.choice(self.nodes).name
        for delay in self.net.delays(CLIENT, target)[:1]:
            self.at(delay, self._client_arrive, target, request, rtype, payload)
        gap = max(1, int(self.rng.expovariate(1 / self.client_interval_ms)))
        self.at(gap, self._client_write)

    def _client_arrive(self, target: str, request: int, rtype: int, payload: bytes) -> None:
        node = self.by_name[target]
        if not node.up or node.replica is None:
            return
        now = node.local(self.now)
        self._run(node, node.replica.append(request, [(rtype, now, payload)], now))

    def _client_reply(self, reply: Reply) -> None:
        if reply.ok:
            self.checker.on_ack(reply.request_id, reply.offset, self.requests[reply.request_id])
            if self.phase != "safety":
                self.acked_after_heal += 1
        else:
            self.client_leader = reply.leader

    # --- faults ------------------------------------------------------------------------------------
    def _fault_gap(self) -> int:
        return max(1, int(self.rng.expovariate(1 / self.fault_interval_ms)))

    def _fault(self) -> None:
        if self.phase != "safety":
            return
        rng = self.rng
        kind = rng.choices(
            ["power", "crash", "isolate", "coord", "peers", "split", "stall", "burst"],
            weights=[3, 2, 2, 2, 1, 2, 1, 1],
        )[0]
        duration = rng.choice([100, 400, 1_500, 4_000])
        node = rng.choice(self.nodes)
        others = [n.name for n in self.nodes if n is not node]
        if kind in ("power", "crash"):
            if node.up:
                self._crash(node, power_loss=kind == "power")
                self.at(rng.randint(10, duration), self._restart, node)
        elif kind == "stall":
            node.stall_until = self.now + duration
            self.log(f"{node.name}'s disk stalls for {duration} ms")
        elif kind == "burst":
            params = self.net.params
            before = params.drop
            params.drop = 0.5
            self.log(f"network loses half the messages for {duration} ms")
            self.at(duration, self._end_burst, before)
        else:
            if kind == "isolate":
                pairs = [(node.name, o) for o in [*others, COORD, CLIENT]]
            elif kind == "coord":
                pairs = [(node.name, COORD)]
            elif kind == "peers":
                pairs = [(node.name, o) for o in others]
            else:
                names = [n.name for n in self.nodes] + [COORD]
                rng.shuffle(names)
                cut = rng.randint(1, len(names) - 1)
                pairs = [(a, b) for a in names[:cut] for b in names[cut:]]
            self.net.cut(pairs)
            self.stats["partitions"] += 1
            self.log(f"partition ({kind}, {duration} ms): {sorted(pairs)}")
            self.at(duration, self.net.restore, pairs)
        self.at(self._fault_gap(), self._fault)

    def _end_burst(self, drop: float) -> None:
        if self.phase == "safety":
            self.net.params.drop = drop

    def _restart(self, node: _Node) -> None:
        if node.up:
            return
        self._boot(node)
        self.at(0, self._keepalive, node, node.incarnation)

    # --- heal and converge ---------------------------------------------------------------------------
    def _heal(self) -> None:
        self.phase = "heal"
        self.net.heal()
        self.log("heal: network repaired, every node restarted")
        for node in self.nodes:
            node.stall_until = 0
            if not node.up:
                self._restart(node)
        self.at(heal_writes_ms, self._stop_writing)
        self.at(check_interval_ms, self._check_converged)

    def _stop_writing(self) -> None:
        if self.acked_after_heal < self.options.progress_acks_min:
            self.at(check_interval_ms, self._stop_writing)  # until writes make progress
            return
        self.writing = False
        self.log("client stops writing")

    def _check_converged(self) -> None:
        self._operator()
        if self.writing or not self._converged():
            self.at(check_interval_ms, self._check_converged)
            return
        for node in self.nodes:
            self.checker.check_final(node.name, node.disk.written)
        if self.acked_after_heal < self.options.progress_acks_min:
            raise Violation(
                "no-convergence",
                f"only {self.acked_after_heal} writes acknowledged after healing",
            )
        self.log(f"converged: {len(self.checker.committed)} records committed everywhere")
        self.phase = "done"

    def _operator(self) -> None:
        """The operator's unclean election, when no ISR member may lead (rule 7 at work).

        Only a lying disk gets a partition here: its node restarted unclean while it was
        the whole ISR. The operator picks the clean replica with the newest log (highest
        last epoch, then longest); the checkers keep watching what that costs.
        """
        config = self.coord.get_partition(PARTITION)
        if config is None or config.leader is not None:
            return
        clean = [n for n in self.nodes if n.up and n.replica is not None and not n.replica.unclean]
        if any(n.name in config.isr for n in clean) or not clean:
            return
        best = max(
            clean, key=lambda n: (n.replica.last_epoch, n.replica.log_end) if n.replica else (0, 0)
        )
        holder = self.coord.controller()
        controller = self.by_name[holder].controller if holder is not None else None
        if controller is None:
            return
        result = controller.unclean_elect(PARTITION, best.name)
        if result.ok:
            self._count("operator_elections")
            self.log(f"operator: unclean election of {best.name} (no clean ISR member)")

    def _converged(self) -> bool:
        config = self.coord.get_partition(PARTITION)
        if config is None or config.leader is None or len(config.isr) != len(self.nodes):
            return False
        leader = self.by_name[config.leader].replica
        if leader is None or not leader.is_serving:
            return False
        end = leader.log_end
        for node in self.nodes:
            r = node.replica
            if r is None or r.log_end != end or r.commit != end or node.disk.synced != end:
                return False
        return True

    def _convergence_report(self) -> str:
        config = self.coord.get_partition(PARTITION)
        parts = [f"did not converge; config {_short(config) if config else None}"]
        for node in self.nodes:
            r = node.replica
            if r is None:
                parts.append(f"{node.name} down")
            else:
                parts.append(
                    f"{node.name} {r.role.value}{'/' + r.fence_reason if r.fence_reason else ''} "
                    f"e{r.epoch} end {r.log_end} durable {r.durable_end} commit {r.commit} "
                    f"unclean {r.unclean}"
                )
        parts.append(f"acked after heal {self.acked_after_heal}")
        return "; ".join(parts)


def _change_kind(old: PartitionConfig | None, new: PartitionConfig) -> str:
    if old is None or new.leader != old.leader:
        return "step_down"
    return "isr_shrink" if len(new.isr) < len(old.isr) else "isr_expand"


def _short(config: PartitionConfig) -> str:
    return (
        f"v{config.version} epoch {config.epoch} leader {config.leader} "
        f"(lease {config.leader_lease}) isr {','.join(config.isr)}"
    )


def run(options: SimOptions) -> SimResult:
    return Simulation(options).run()
