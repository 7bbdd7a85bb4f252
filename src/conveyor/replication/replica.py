"""One partition replica's replication protocol, without I/O.

A :class:`Replica` is driven by its node (the asyncio server, or the simulator). Inputs:

* :meth:`Replica.on_config`    the coordinator's configuration of the partition (watch
                               events and answers to proposed changes)
* :meth:`Replica.on_lease`     the node's coordinator lease was granted or renewed
* :meth:`Replica.on_lease_lost` the lease is gone
* :meth:`Replica.on_message`   a message from another replica
* :meth:`Replica.on_persisted` records up to an offset are fsynced
* :meth:`Replica.append`       a client's records, on the leader
* :meth:`Replica.tick`         time passed (call it every few tens of milliseconds)

Every input takes ``now`` (milliseconds of this node's clock; the core reads no clock)
and returns a list of :mod:`~conveyor.replication.effects` for the driver to carry out in
order. The core never blocks and never waits: it remembers what it asked for.

Roles and how a replica moves between them (all decided in :meth:`Replica._reconcile`
from the configuration, the lease and the log)::

                    config names me leader, my lease is the one I was elected
                    under and still valid, the epoch is newer than my log's,
                    I am not catching up after an unclean restart
     FOLLOWER  ───────────────────────────────────────────────────────▶  LEADER
     CATCHING_UP ◀──────── config names another leader ─────────────────   │
        ▲   │                                                               │
        │   └─ in the ISR and caught up: FOLLOWER; else CATCHING_UP         │ lease
        │                                                                   │ runs out,
        └──────── newer config ─────────── FENCED ◀────────────────────────┘ newer epoch
                                                                              seen

The leader of epoch ``e`` first writes an ``EPOCH_START(e)`` record and serves nothing of
epoch ``e`` until that record is durable. A node therefore never leads an epoch twice:
after a restart its log either holds ``EPOCH_START(e)`` (and it refuses ``e``) or it never
sent a record of ``e`` to anyone.

Commit rule (the leader): offset ``o`` is committed when the ISR in the configuration has
at least ``min_insync`` members and every member of the *maximal* ISR (the configured ISR
plus the members of a proposed change not yet known to have failed or applied) has
persisted the records below ``o``, as reported in fetches validated against this leader's
log in this epoch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from conveyor.coordination.config import PartitionConfig
from conveyor.replication.buggify import NONE, Buggify
from conveyor.replication.effects import (
    Apply,
    Effect,
    Persist,
    ProposeConfig,
    Reply,
    ReplyError,
    Role,
    RoleChanged,
    Send,
    Truncate,
)
from conveyor.replication.messages import FetchRequest, FetchResponse, FetchStatus, Message
from conveyor.replication.records import (
    EPOCH_START,
    EpochHistory,
    LogRecord,
    check_dense,
    divergence_point,
    epoch_start,
    marker_epoch,
)
from conveyor.replication.settings import ReplicaSettings

Entry = tuple[int, int, bytes]  # (type, ts_ms, payload) of a record a client appends
ReadOld = Callable[[int, int], list[LogRecord]]  # (start, end) -> records, from storage


class _Window:
    """The replica's log: its newest records in memory, older ones in storage.

    Offsets are dense from 0. Records below ``base`` were dropped from memory
    (:meth:`Replica.forget_below`, committed records only) and are read back through
    ``read_old`` — the driver's storage — when a follower far behind fetches them.
    Without ``read_old`` nothing is ever dropped (the simulator keeps everything)."""

    __slots__ = ("base", "items", "read_old")

    def __init__(self, records: Sequence[LogRecord], base: int, read_old: ReadOld | None) -> None:
        self.base = base
        self.items = list(records)
        self.read_old = read_old

    def __len__(self) -> int:
        return self.base + len(self.items)

    def slice(self, start: int, end: int) -> list[LogRecord]:
        end = min(end, len(self))
        if start >= end:
            return []
        if start >= self.base:
            return self.items[start - self.base : end - self.base]
        assert self.read_old is not None
        old = self.read_old(start, min(end, self.base))
        return old + self.items[: max(0, end - self.base)]

    def payload_size(self, offset: int) -> int:
        if offset >= self.base:
            return len(self.items[offset - self.base].payload)
        return 0  # a cold read: counted as it comes (fetch_records_max bounds it)

    def extend(self, records: Sequence[LogRecord]) -> None:
        self.items.extend(records)

    def truncate(self, end: int) -> None:
        assert end >= self.base, (end, self.base)
        del self.items[end - self.base :]

    def forget_below(self, offset: int) -> None:
        if self.read_old is None or offset <= self.base:
            return
        offset = min(offset, len(self))
        del self.items[: offset - self.base]
        self.base = offset


class ReplicationInvariantError(AssertionError):
    """The core found its own state impossible (a bug, or a buggify switch at work)."""


class _Peer:
    """What a leader knows about one other replica during its epoch."""

    __slots__ = (
        "caught_up_at",
        "fetch_id",
        "incarnation",
        "log_end",
        "match_durable",
        "parked",
        "parked_deadline",
        "prev_fetch_at",
        "prev_leader_end",
        "unclean",
        "unserved",
        "validated",
    )

    def __init__(self, now: int) -> None:
        self.incarnation = -1
        self.fetch_id = -1
        self.validated = False  # its last fetch matched my log
        self.match_durable = 0  # its log equals mine and is persisted below this offset
        self.log_end = 0
        self.caught_up_at = now  # last time it had everything I had
        self.prev_fetch_at = now
        self.prev_leader_end = 0
        self.unclean = False
        self.parked: FetchRequest | None = None  # validated, waiting for news
        self.parked_deadline = 0
        self.unserved: FetchRequest | None = None  # arrived before I was ready


class _Pending:
    __slots__ = ("config", "expected_version", "sent_at")

    def __init__(self, expected_version: int, config: PartitionConfig, sent_at: int) -> None:
        self.expected_version = expected_version
        self.config = config
        self.sent_at = sent_at


class _Request:
    __slots__ = ("deadline", "first", "last", "request_id")

    def __init__(self, request_id: int, first: int, last: int, deadline: int) -> None:
        self.request_id = request_id
        self.first = first
        self.last = last
        self.deadline = deadline


class Replica:
    """The replication state machine of one partition replica on one node."""

    def __init__(
        self,
        node: str,
        partition: str,
        *,
        settings: ReplicaSettings | None = None,
        incarnation: int = 0,
        recovered: Sequence[LogRecord] = (),
        recovered_base: int = 0,
        history: EpochHistory | None = None,
        read_old: ReadOld | None = None,
        applied: int = 0,
        unclean: bool = False,
        buggify: Buggify = NONE,
    ) -> None:
        """A replica over the log storage recovered (``recovered``, all of it durable).

        ``incarnation`` must grow every time the node's process starts. ``applied`` is
        where the partition state already is (a checkpoint only holds committed records,
        so the replica treats it as committed). ``unclean``: the storage cannot vouch that
        every record this replica ever reported persisted is still there (it ran with a
        weaker fsync policy, or recovery cut into the synced part); the replica then
        neither leads nor counts in the ISR until it has caught up (rule 7).
        """
        self.node = node
        self.partition = partition
        self.settings = settings or ReplicaSettings()
        self.settings.check()
        self.buggify = buggify
        self.incarnation = incarnation
        check_dense(recovered, recovered_base)
        assert recovered_base == 0 or (history is not None and read_old is not None)
        self._log = _Window(recovered, recovered_base, read_old)
        assert 0 <= applied <= len(self._log), (applied, len(self._log))
        self._history = history if history is not None else EpochHistory.from_records(recovered)
        self._durable_end = len(self._log)
        self._log_version = 0
        self._commit = applied
        self._applied = applied
        self._unclean = unclean and not buggify.trust_unclean_restart
        self._config: PartitionConfig | None = None
        self._lease_id: int | None = None
        self._lease_deadline = 0
        self._epoch_seen = 0  # the newest epoch seen in a message
        self._role = Role.FENCED
        self._fence_reason = "no configuration yet"
        self._epoch = 0  # the epoch the current role acts in
        self._leader: str | None = None
        self._pending: _Pending | None = None  # a configuration change proposed
        # leader state
        self._led_epoch = 0  # the epoch this process became leader of (0: none)
        self._epoch_start = 0
        self._peers: dict[str, _Peer] = {}
        self._requests: deque[_Request] = deque()
        # follower state
        self._fetch_id = 0
        self._fetch_sent_at: int | None = None  # the outstanding fetch, if any
        self._next_fetch_at = 0
        self._leader_commit = -1  # the leader's commit point in its last answer
        self.invariants()

    # --- observers ---------------------------------------------------------------------
    @property
    def role(self) -> Role:
        return self._role

    @property
    def fence_reason(self) -> str:
        return self._fence_reason if self._role is Role.FENCED else ""

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def leader(self) -> str | None:
        return self._leader

    @property
    def config(self) -> PartitionConfig | None:
        return self._config

    @property
    def log_end(self) -> int:
        return len(self._log)

    @property
    def durable_end(self) -> int:
        return self._durable_end

    @property
    def commit(self) -> int:
        return self._commit

    @property
    def last_epoch(self) -> int:
        return self._history.last_epoch

    @property
    def unclean(self) -> bool:
        return self._unclean

    @property
    def lease_id(self) -> int | None:
        return self._lease_id

    @property
    def lease_deadline(self) -> int:
        return self._lease_deadline

    @property
    def is_serving(self) -> bool:
        """A leader whose epoch marker is durable: it accepts appends and serves fetches."""
        return self._role is Role.LEADER and self._durable_end > self._epoch_start

    def history(self) -> tuple[tuple[int, int], ...]:
        return self._history.entries()

    def records(self, start: int = 0, end: int | None = None) -> list[LogRecord]:
        return self._log.slice(start, self.log_end if end is None else end)

    def forget_below(self, offset: int) -> None:
        """Drop records below ``offset`` from memory (only committed ones; storage keeps
        them and ``read_old`` reads them back). A no-op without ``read_old``."""
        self._log.forget_below(min(offset, self._commit))

    @property
    def memory_base(self) -> int:
        """The oldest offset still held in memory."""
        return self._log.base

    def status(self) -> dict[str, object]:
        return {
            "node": self.node,
            "role": self._role.value,
            "fence_reason": self.fence_reason,
            "epoch": self._epoch,
            "leader": self._leader,
            "log_end": self.log_end,
            "durable_end": self._durable_end,
            "commit": self._commit,
            "history": self.history(),
            "version": None if self._config is None else self._config.version,
            "unclean": self._unclean,
        }

    # --- inputs ---------------------------------------------------------------------------
    def on_config(self, config: PartitionConfig, now: int) -> list[Effect]:
        """A configuration from the coordinator (older or repeated versions are ignored)."""
        out: list[Effect] = []
        if config.partition != self.partition:
            return out
        if self._config is not None and config.version <= self._config.version:
            return out
        self._config = config
        if self._pending is not None and config.version > self._pending.expected_version:
            self._pending = None  # applied, or can never apply: the version moved on
        self._reconcile(now, out)
        self._finish(now, out)
        return out

    def on_lease(self, lease_id: int, sent_at_ms: int, ttl_ms: int, now: int) -> list[Effect]:
        """The coordinator granted or renewed ``lease_id``; the request left at ``sent_at_ms``."""
        out: list[Effect] = []
        valid_ms = (
            ttl_ms if self.buggify.ignore_clock_drift else self.settings.lease_valid_ms(ttl_ms)
        )
        deadline = sent_at_ms + valid_ms
        if lease_id != self._lease_id:
            self._lease_id = lease_id
            self._lease_deadline = deadline
        else:
            self._lease_deadline = max(self._lease_deadline, deadline)
        self._reconcile(now, out)
        self._finish(now, out)
        return out

    def on_lease_lost(self, now: int) -> list[Effect]:
        """The coordinator no longer has the lease (expired or revoked)."""
        out: list[Effect] = []
        self._lease_deadline = min(self._lease_deadline, now)
        self._reconcile(now, out)
        self._finish(now, out)
        return out

    def on_message(self, sender: str, message: Message, now: int) -> list[Effect]:
        out: list[Effect] = []
        if message.partition != self.partition:
            return out
        self._check_lease(now, out)
        if isinstance(message, FetchRequest):
            if message.replica == sender:
                self._on_fetch(message, now, out)
        else:
            self._on_fetch_response(sender, message, now, out)
        self._finish(now, out)
        return out

    def on_persisted(self, upto: int, log_version: int, now: int) -> list[Effect]:
        """Records below ``upto`` are fsynced (under ``log_version``: see ``Persist``)."""
        out: list[Effect] = []
        if log_version != self._log_version:
            return out
        upto = min(upto, self.log_end)
        if upto <= self._durable_end:
            return out
        was_serving = self.is_serving
        self._durable_end = upto
        self._check_lease(now, out)
        if self._role is Role.LEADER:
            if self.is_serving and not was_serving:
                self._serve_unserved(now, out)
        elif self._role in (Role.FOLLOWER, Role.CATCHING_UP) and self._leader is not None:
            self._maybe_clean(now, out)
            if self._role in (Role.FOLLOWER, Role.CATCHING_UP) and self._leader is not None:
                self._send_fetch(now, out)  # tell the leader at once: it may commit
        self._finish(now, out)
        return out

    def append(self, request_id: int, entries: Sequence[Entry], now: int) -> list[Effect]:
        """A client's records (type, ts_ms, payload); answered by a ``Reply`` effect."""
        assert entries, "an append needs records"
        out: list[Effect] = []
        self._check_lease(now, out)
        config = self._config
        if not self.is_serving or config is None:
            out.append(self._refuse(request_id, ReplyError.NOT_LEADER))
        elif len(config.isr) < self.settings.min_insync:
            out.append(self._refuse(request_id, ReplyError.NOT_ENOUGH_REPLICAS))
        elif len(self._requests) >= self.settings.requests_pending_max:
            out.append(self._refuse(request_id, ReplyError.OVERLOADED))
        else:
            first = self.log_end
            records = []
            for i, (rtype, ts_ms, payload) in enumerate(entries):
                assert 0 <= rtype < EPOCH_START, rtype
                records.append(LogRecord(first + i, ts_ms, rtype, payload))
            self._append(records, out)
            deadline = now + self.settings.client_timeout_ms
            self._requests.append(_Request(request_id, first, self.log_end - 1, deadline))
            self._answer_parked(now, out)
        self._finish(now, out)
        return out

    def tick(self, now: int) -> list[Effect]:
        out: list[Effect] = []
        self._check_lease(now, out)
        if self._role is Role.LEADER:
            for peer in self._peers.values():
                if peer.parked is not None and peer.parked_deadline <= now:
                    self._respond_ok(peer, peer.parked, out)
            while self._requests and self._requests[0].deadline <= now:
                request = self._requests.popleft()
                out.append(self._refuse(request.request_id, ReplyError.UNKNOWN_OUTCOME))
        elif self._role is not Role.FENCED and self._leader is not None:
            sent = self._fetch_sent_at
            if sent is not None and now - sent >= self.settings.fetch_timeout_ms:
                self._fetch_sent_at = None  # lost: ask again
            if self._fetch_sent_at is None and now >= self._next_fetch_at:
                self._send_fetch(now, out)
        pending = self._pending
        if pending is not None and now - pending.sent_at >= self.settings.config_retry_ms:
            pending.sent_at = now
            out.append(ProposeConfig(pending.expected_version, pending.config))
        self._finish(now, out)
        return out

    # --- roles -------------------------------------------------------------------------------
    def _reconcile(self, now: int, out: list[Effect]) -> None:
        """Take the role the configuration, the lease and the log allow."""
        config = self._config
        if config is None:
            self._fence("no configuration yet", out)
            return
        if self.node not in config.replicas:
            self._fence("not a replica of the partition", out)
            return
        if self._epoch_seen > config.epoch:
            self._fence(f"configuration older than epoch {self._epoch_seen} seen", out)
            return
        if config.leader == self.node:
            why = self._cannot_lead(config, now)
            if why is None:
                if not (self._role is Role.LEADER and self._epoch == config.epoch):
                    self._become_leader(config, now, out)
                return
            if self._unclean:
                self._step_down(config, now, out)
            self._fence(why, out)
            return
        role = Role.FOLLOWER if self.node in config.isr and not self._unclean else Role.CATCHING_UP
        same_leader = (self._epoch, self._leader) == (config.epoch, config.leader)
        restart_fetching = self._role not in (Role.FOLLOWER, Role.CATCHING_UP) or not same_leader
        if self._role is Role.LEADER:
            self._drop_leadership(out)
        self._set_role(role, config.epoch, config.leader, "following", out)
        if restart_fetching:
            self._fetch_sent_at = None
            self._next_fetch_at = now
            self._leader_commit = -1
            if self._leader is not None:
                self._send_fetch(now, out)

    def _cannot_lead(self, config: PartitionConfig, now: int) -> str | None:
        if self._unclean:
            return "restarted uncleanly and not caught up: refusing leadership"
        if self._lease_id is None or self._lease_id != config.leader_lease:
            return "elected under a lease this process does not hold"
        if now >= self._lease_deadline:
            return "lease expired"
        last = self._history.last_epoch
        if config.epoch < last or (config.epoch == last and self._led_epoch != config.epoch):
            return f"epoch {config.epoch} is not newer than my log's epoch {last}"
        return None

    def _become_leader(self, config: PartitionConfig, now: int, out: list[Effect]) -> None:
        if self._led_epoch != config.epoch:
            self._led_epoch = config.epoch
            marker = epoch_start(self.log_end, now, config.epoch)
            self._epoch_start = marker.offset
            self._append([marker], out)
        else:  # resuming the epoch this process already leads (lease renewed in time)
            start = self._history.start_of(config.epoch)
            assert start is not None
            self._epoch_start = start
        self._peers = {r: _Peer(now) for r in config.replicas if r != self.node}
        self._fetch_sent_at = None
        self._set_role(Role.LEADER, config.epoch, self.node, "elected", out)

    def _step_down(self, config: PartitionConfig, now: int, out: list[Effect]) -> None:
        """Named leader but unclean: give the leadership back and leave the ISR (rule 7)."""
        if self._pending is not None:
            return
        isr = tuple(r for r in config.isr if r != self.node)
        new = config.replace(leader=None, leader_lease=0, epoch=config.epoch + 1, isr=isr)
        self._propose(new, now, out)

    def _fence(self, reason: str, out: list[Effect]) -> None:
        if self._role is Role.LEADER:
            self._drop_leadership(out)
        if self._role is not Role.FENCED or self._fence_reason != reason:
            self._fence_reason = reason
            self._set_role(Role.FENCED, self._epoch, self._leader, reason, out)
        self._fetch_sent_at = None

    def _drop_leadership(self, out: list[Effect]) -> None:
        while self._requests:
            request = self._requests.popleft()
            out.append(self._refuse(request.request_id, ReplyError.UNKNOWN_OUTCOME))
        self._peers = {}

    def _set_role(
        self, role: Role, epoch: int, leader: str | None, reason: str, out: list[Effect]
    ) -> None:
        if (self._role, self._epoch, self._leader) == (role, epoch, leader):
            return
        self._role, self._epoch, self._leader = role, epoch, leader
        out.append(RoleChanged(role=role, epoch=epoch, leader=leader, reason=reason))

    def _check_lease(self, now: int, out: list[Effect]) -> None:
        """A leader stops acting before its lease could have expired at the coordinator."""
        if self._role is Role.LEADER and now >= self._lease_deadline:
            self._fence("lease expired", out)

    # --- the log -----------------------------------------------------------------------------
    def _append(self, records: Sequence[LogRecord], out: list[Effect]) -> None:
        check_dense(records, self.log_end)
        for record in records:
            epoch = marker_epoch(record)
            if epoch is not None:
                self._history.append(epoch, record.offset)
        self._log.extend(records)
        out.append(Persist(tuple(records), self._log_version))

    def _truncate(self, end: int, out: list[Effect]) -> None:
        if end < self._commit:
            raise ReplicationInvariantError(
                f"{self.node}: truncating to {end} would cut committed records "
                f"(commit {self._commit})"
            )
        self._log_version += 1
        self._log.truncate(end)
        self._history.truncate(end)
        self._durable_end = min(self._durable_end, end)
        out.append(Truncate(end, self._log_version))

    def _set_commit(self, commit: int, out: list[Effect]) -> None:
        assert self._applied == self._commit <= commit <= self.log_end
        if commit == self._commit:
            return
        records = tuple(self._log.slice(self._applied, commit))
        self._commit = self._applied = commit
        out.append(Apply(records, commit))

    # --- leader: fetches -------------------------------------------------------------------
    def _on_fetch(self, req: FetchRequest, now: int, out: list[Effect]) -> None:
        skip = self.buggify.skip_epoch_check
        config = self._config
        if self._role is not Role.LEADER or config is None:
            if config is not None and req.epoch > config.epoch:
                self._epoch_seen = max(self._epoch_seen, req.epoch)
                self._reconcile(now, out)
            out.append(Send(req.replica, self._response(req, FetchStatus.NOT_LEADER)))
            return
        if req.epoch > self._epoch and not skip:
            self._epoch_seen = max(self._epoch_seen, req.epoch)
            self._reconcile(now, out)  # a newer leader exists: stop leading
            return
        if req.epoch < self._epoch and not skip:
            out.append(Send(req.replica, self._response(req, FetchStatus.STALE_EPOCH)))
            return
        peer = self._peers.get(req.replica)
        if peer is None:
            return
        if (req.incarnation, req.fetch_id) <= (peer.incarnation, peer.fetch_id):
            return  # a duplicate, or overtaken by a newer fetch of the same replica
        peer.incarnation, peer.fetch_id = req.incarnation, req.fetch_id
        peer.parked = None
        if not self.is_serving:
            peer.unserved = req
            return
        self._serve_fetch(peer, req, now, out)

    def _serve_unserved(self, now: int, out: list[Effect]) -> None:
        for peer in self._peers.values():
            req, peer.unserved = peer.unserved, None
            if req is not None:
                self._serve_fetch(peer, req, now, out)

    def _consistent(self, fetch_offset: int, last_epoch: int) -> bool:
        """Whether a log ending at ``fetch_offset`` with ``last_epoch`` is a prefix of mine."""
        if fetch_offset > self.log_end:
            return False
        if self.buggify.skip_epoch_check or fetch_offset == 0:
            return True
        return self._history.epoch_at(fetch_offset - 1) == last_epoch

    def _serve_fetch(self, peer: _Peer, req: FetchRequest, now: int, out: list[Effect]) -> None:
        if not self._consistent(req.fetch_offset, req.last_epoch):
            peer.validated = False
            peer.match_durable = 0
            out.append(Send(req.replica, self._response(req, FetchStatus.DIVERGING)))
            return
        peer.validated = True
        peer.match_durable = min(req.durable_end, req.fetch_offset)
        peer.log_end = req.fetch_offset
        peer.unclean = req.unclean
        # caught up: it had everything I had now, or everything I had at its last fetch
        if req.fetch_offset >= self.log_end:
            peer.caught_up_at = now
        elif req.fetch_offset >= peer.prev_leader_end:
            peer.caught_up_at = max(peer.caught_up_at, peer.prev_fetch_at)
        peer.prev_leader_end = self.log_end
        peer.prev_fetch_at = now
        self._advance_commit(now, out)
        if req.fetch_offset < self.log_end or req.commit < self._commit:
            self._respond_ok(peer, req, out)
        else:
            peer.parked = req
            peer.parked_deadline = now + self.settings.fetch_wait_ms_max

    def _respond_ok(self, peer: _Peer, req: FetchRequest, out: list[Effect]) -> None:
        peer.parked = None
        start = req.fetch_offset
        end = min(self.log_end, start + self.settings.fetch_records_max)
        size = 0
        for offset in range(start, end):
            size += self._log.payload_size(offset)
            if size > self.settings.fetch_bytes_max and offset > start:
                end = offset
                break
        records = tuple(self._log.slice(start, end))
        out.append(Send(req.replica, self._response(req, FetchStatus.OK, records)))

    def _answer_parked(self, now: int, out: list[Effect]) -> None:
        """New records or a new commit point: answer every fetch being held."""
        for peer in self._peers.values():
            if peer.parked is not None:
                self._respond_ok(peer, peer.parked, out)

    def _response(
        self, req: FetchRequest, status: FetchStatus, records: tuple[LogRecord, ...] = ()
    ) -> FetchResponse:
        diverging = status is FetchStatus.DIVERGING
        return FetchResponse(
            partition=self.partition,
            epoch=self._epoch if self._config is None else max(self._epoch, self._config.epoch),
            leader=self.node,
            incarnation=req.incarnation,
            fetch_id=req.fetch_id,
            fetch_offset=req.fetch_offset,
            last_epoch=req.last_epoch,
            status=status,
            records=records,
            commit=self._commit,
            log_end=self.log_end,
            history=self._history.entries() if diverging else (),
        )

    # --- leader: commit and ISR ------------------------------------------------------------------
    def _lagging(self, peer: _Peer, now: int) -> bool:
        return now - peer.caught_up_at > self.settings.replica_lag_ms_max

    def _isr_max(self) -> set[str]:
        assert self._config is not None
        members = set(self._config.isr)
        if self._pending is not None:
            members |= set(self._pending.config.isr)
        return members

    def _advance_commit(self, now: int, out: list[Effect]) -> None:
        config = self._config
        if not self.is_serving or config is None:
            return
        if self.buggify.commit_on_leader_fsync:
            new = self._durable_end
        else:
            if len(config.isr) < self.settings.min_insync:
                return
            new = self._durable_end
            for member in self._isr_max():
                if member == self.node:
                    continue
                peer = self._peers.get(member)
                if peer is None:
                    return
                if self.buggify.shrink_isr_silently and self._lagging(peer, now):
                    continue
                new = min(new, peer.match_durable if peer.validated else 0)
        if new <= self._commit:
            return
        self._set_commit(new, out)
        while self._requests and self._requests[0].last < self._commit:
            request = self._requests.popleft()
            out.append(Reply(request_id=request.request_id, offset=request.first))
        self._answer_parked(now, out)

    def _maybe_change_isr(self, now: int, out: list[Effect]) -> None:
        """Propose an ISR shrink (lagging or unclean members) or expansion (caught up)."""
        config = self._config
        if not self.is_serving or config is None or self._pending is not None:
            return
        drop = set()
        for member in config.isr:
            peer = self._peers.get(member)
            if peer is not None and (self._lagging(peer, now) or peer.unclean):
                drop.add(member)
        if drop and not self.buggify.shrink_isr_silently:
            isr = tuple(m for m in config.isr if m not in drop)
            self._propose(config.replace(isr=isr), now, out)
            return
        floor = max(self._commit, self._epoch_start + 1)
        add = {
            r
            for r, peer in self._peers.items()
            if r not in config.isr
            and peer.validated
            and not peer.unclean
            and peer.match_durable >= floor
            and not self._lagging(peer, now)
        }
        if add:
            isr = tuple(r for r in config.replicas if r in config.isr or r in add)
            self._propose(config.replace(isr=isr), now, out)

    def _propose(self, config: PartitionConfig, now: int, out: list[Effect]) -> None:
        current = self._config
        assert current is not None and self._pending is None
        self._pending = _Pending(current.version, config, now)
        out.append(ProposeConfig(current.version, config))

    def _refuse(self, request_id: int, error: ReplyError) -> Reply:
        leader = None if self._config is None else self._config.leader
        return Reply(request_id=request_id, error=error, leader=leader)

    # --- follower ----------------------------------------------------------------------------
    def _send_fetch(self, now: int, out: list[Effect]) -> None:
        assert self._leader is not None
        self._fetch_id += 1
        self._fetch_sent_at = now
        req = FetchRequest(
            partition=self.partition,
            epoch=self._epoch,
            replica=self.node,
            incarnation=self.incarnation,
            fetch_id=self._fetch_id,
            fetch_offset=self.log_end,
            last_epoch=self._history.last_epoch,
            durable_end=self._durable_end,
            commit=self._commit,
            unclean=self._unclean,
        )
        out.append(Send(self._leader, req))

    def _on_fetch_response(
        self, sender: str, resp: FetchResponse, now: int, out: list[Effect]
    ) -> None:
        skip = self.buggify.skip_epoch_check
        if resp.incarnation != self.incarnation:
            return  # an answer to my previous process
        if resp.fetch_id == self._fetch_id:
            self._fetch_sent_at = None
        if self._role not in (Role.FOLLOWER, Role.CATCHING_UP):
            return
        if resp.status is FetchStatus.STALE_EPOCH and resp.epoch > self._epoch:
            self._epoch_seen = max(self._epoch_seen, resp.epoch)
            self._reconcile(now, out)  # wait for the coordinator's newer configuration
            return
        if not skip and (resp.epoch != self._epoch or sender != self._leader):
            return
        if resp.status is FetchStatus.NOT_LEADER or resp.status is FetchStatus.STALE_EPOCH:
            self._next_fetch_at = now + self.settings.fetch_wait_ms_max
            return
        if resp.fetch_offset != self.log_end or resp.last_epoch != self._history.last_epoch:
            return  # it answers a log I no longer have
        if resp.status is FetchStatus.DIVERGING:
            theirs = EpochHistory(resp.history)
            self._truncate(divergence_point(self._history, self.log_end, theirs, resp.log_end), out)
        else:
            if resp.records:
                self._append(resp.records, out)
            self._leader_commit = resp.commit
            self._set_commit(max(self._commit, min(resp.commit, self.log_end)), out)
            self._maybe_clean(now, out)
        if (
            self._fetch_sent_at is None
            and self._role in (Role.FOLLOWER, Role.CATCHING_UP)
            and self._leader is not None
        ):
            self._send_fetch(now, out)

    def _maybe_clean(self, now: int, out: list[Effect]) -> None:
        """An unclean replica is caught up once it persisted the leader's epoch start and
        the leader's commit point: then it holds every committed record (those of earlier
        epochs precede the leader's epoch start, those of this epoch the commit point)."""
        if not self._unclean or self._leader_commit < 0:
            return
        start = self._history.start_of(self._epoch)
        caught_up = self._durable_end >= self._leader_commit
        if start is not None and self._durable_end > start and caught_up:
            self._unclean = False
            self._reconcile(now, out)

    # --- checks -----------------------------------------------------------------------------
    def _finish(self, now: int, out: list[Effect]) -> None:
        if self._role is Role.LEADER:
            self._advance_commit(now, out)
            self._maybe_change_isr(now, out)
        self.invariants()

    def invariants(self) -> None:
        log_end = self.log_end
        assert 0 <= self._applied == self._commit <= log_end, (self._commit, log_end)
        assert 0 <= self._durable_end <= log_end, (self._durable_end, log_end)
        last_start = self._history.last_start
        if last_start is not None:
            assert last_start < log_end, (last_start, log_end)
        else:
            assert log_end == 0 or self._log.base > 0 or self._log.items[0].type != EPOCH_START
        if self._role is Role.LEADER:
            config = self._config
            assert config is not None and config.leader == self.node
            assert self._epoch == config.epoch == self._history.last_epoch
            assert self._history.start_of(self._epoch) == self._epoch_start
            assert not self._unclean
        if self._requests:
            assert self._role is Role.LEADER
            assert self._requests[0].last >= self._commit
            assert self._requests[-1].last < log_end
