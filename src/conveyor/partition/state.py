"""A partition's state: the pure function of its log.

:class:`PartitionState` is sans-IO and deterministic. ``apply`` folds one record into the
state and reads no clock: time comes from the record's timestamp. The ``decide_*``
methods are the leader's half: given ``now`` they return the records that carry out a
command, without changing the semantic state (the caller appends those records to the
log and applies them). Followers, recovery and the leader all go through ``apply``.

Memory. A partition may hold millions of messages, so no Python object exists per
message. Per-message fields live in fixed-size columnar chunks (``array``/``bytearray``
of :data:`CHUNK_SLOTS` log offsets each, about 45 bytes a slot); a chunk is freed when
none of its messages is live. Bodies stay in the log and are read on delivery.

Status of a message (one byte):

* ``READY``    visible: may be delivered now
* ``INFLIGHT`` delivered; invisible until ``visible_at``
* ``DELAYED``  sent with a delay; invisible until ``visible_at``
* ``MOVING``   leaving for another queue (dead-letter or redrive); never delivered
* ``GONE``     deleted, expired, purged or moved

``INFLIGHT``/``DELAYED`` turn ``READY`` when time passes ``visible_at``; that step
(:meth:`PartitionState.poll`) is driven by record timestamps in ``apply`` and by ``now``
in ``decide_*``. It only moves messages between internal ready structures; what a
message *is* (its ``visible_at``, receive count, whether it is live) changes only
through records.

Standard queues hand out READY messages lowest offset first (a cursor over offsets that
were never delivered, plus a heap of offsets that became visible again). FIFO queues keep
one deque of offsets per message group; a group is blocked while any of its messages is
in flight or moving, and groups are served in the order of their head message.

Receive attempts (FIFO). A ``Deliver`` record carries the receive's attempt id (SQS's
``ReceiveRequestAttemptId``); the state remembers, per attempt id, the last delivery
made under it for :data:`receive_attempt_window_ms` (by record time). A receive that
repeats the attempt id within the window gets the messages of that delivery that are
still in flight under it, with the same receive counts (so the same receipt handles),
and a ``Visibility`` record that resets their visibility timeout; when none is, it is a
new receive. Being folded from the log like the rest, this survives restarts and is the
same on every replica.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from conveyor import errors, limits
from conveyor.partition import records as R

CHUNK_BITS: Final = 12
CHUNK_SLOTS: Final = 1 << CHUNK_BITS
_CHUNK_MASK: Final = CHUNK_SLOTS - 1

GONE: Final = 0
READY: Final = 1
INFLIGHT: Final = 2
DELAYED: Final = 3
MOVING: Final = 4
_LIVE_RUN: Final = re.compile(rb"[^\x00]+")  # a run of live slots in a chunk's status
_READY_RUN: Final = bytes([READY]) * CHUNK_SLOTS

# the columns of a chunk, as a snapshot stores them: name and array type code
_COLUMNS: Final = (
    ("status", "b"),
    ("visible_at", "q"),
    ("sent_at", "q"),
    ("first_rc", "q"),
    ("lease_start", "q"),
    ("rc", "i"),
    ("size", "i"),
    ("group", "i"),
)

STATUS_NAMES: Final = {
    GONE: "gone",
    READY: "ready",
    INFLIGHT: "inflight",
    DELAYED: "delayed",
    MOVING: "moving",
}

dedup_window_ms: Final = limits.dedup_window_s * 1000
receive_attempt_window_ms: Final = limits.receive_attempt_window_s * 1000
receive_attempts_kept_max: Final = 100_000  # per partition; the oldest are forgotten first
expire_batch_max: Final = 10_000  # offsets in one Expire record
visibility_total_ms_max: Final = limits.visibility_timeout_s_max * 1000


class _Chunk:
    """Columns for CHUNK_SLOTS consecutive offsets."""

    __slots__ = (
        "first_rc",
        "group",
        "lease_start",
        "live",
        "rc",
        "sent_at",
        "size",
        "status",
        "visible_at",
    )

    def __init__(self) -> None:
        self.status = bytearray(CHUNK_SLOTS)
        self.visible_at = array("q", bytes(8 * CHUNK_SLOTS))
        self.sent_at = array("q", bytes(8 * CHUNK_SLOTS))
        self.first_rc = array("q", bytes(8 * CHUNK_SLOTS))
        self.lease_start = array("q", bytes(8 * CHUNK_SLOTS))
        self.rc = array("i", bytes(4 * CHUNK_SLOTS))
        self.size = array("i", bytes(4 * CHUNK_SLOTS))
        self.group = array("i", bytes(4 * CHUNK_SLOTS))
        self.live = 0


class MessageView(msgspec.Struct, frozen=True):
    """What the state knows about one live message (the body is in the log)."""

    offset: int
    status: int
    visible_at_ms: int
    sent_ms: int
    receive_count: int
    first_receive_ms: int
    lease_start_ms: int
    size_bytes: int
    group_id: str | None


class Delivery(msgspec.Struct, frozen=True):
    offset: int
    receive_count: int


class _Attempt(msgspec.Struct, frozen=True):
    """The last delivery made under one FIFO receive attempt id."""

    ts: int  # the Deliver record's time
    offsets: list[int]
    receive_counts: list[int]


class Stats(msgspec.Struct, frozen=True):
    messages: int
    bytes: int
    visible: int
    inflight: int
    delayed: int
    oldest_sent_ms: int | None
    visible_bytes: int = 0
    inflight_bytes: int = 0  # in flight or moving, as ``inflight`` counts them
    delayed_bytes: int = 0


class SendDecision(msgspec.Struct, frozen=True):
    """Per entry of a send: a new record, a duplicate of an earlier one, or an error."""

    record: R.Append | None = None
    duplicate_of: tuple[int, str] | None = None  # (offset, message_id)
    error: errors.ConveyorError | None = None


class ReceiveDecision(msgspec.Struct, frozen=True):
    records: list[R.Record]
    deliveries: list[Delivery]
    moves: list[int]  # offsets that must move to the dead-letter queue


class PartitionState:
    """The state of one partition of one queue (one consumer group: the default)."""

    def __init__(self, *, fifo: bool, dedup_scope: str = "queue") -> None:
        self.fifo = fifo
        self.dedup_scope = dedup_scope
        self.next_offset = 0
        self.last_ts = 0
        self.last_purge_ms = 0
        self.n_live = 0
        self.bytes_live = 0
        self.n_inflight = 0
        self.n_delayed = 0
        self.n_moving = 0
        # bytes of INFLIGHT / DELAYED / MOVING messages (READY is the rest of bytes_live)
        self.bytes_inflight = 0
        self.bytes_delayed = 0
        self.bytes_moving = 0
        self._chunks: dict[int, _Chunk] = {}
        self._low = 0  # no live message below this offset
        self._timers: list[tuple[int, int]] = []  # (visible_at, offset) of INFLIGHT/DELAYED
        # standard queues
        self._cursor = 0  # READY messages are at >= _cursor, or in _returned
        self._returned: list[int] = []
        # FIFO queues
        self._group_ids: dict[str, int] = {}
        self._group_names: list[str] = []
        self._group_msgs: dict[int, deque[int]] = {}
        self._group_block: dict[int, int] = {}  # INFLIGHT + MOVING messages per group
        self._ready_groups: list[tuple[int, int]] = []  # (head offset, group)
        # deduplication (FIFO) and move origins (dead-letter / redrive), by time window
        self._dedup: dict[str, tuple[int, int, str]] = {}  # key -> (offset, ts, message_id)
        self._dedup_order: deque[tuple[int, str]] = deque()
        self._origins: dict[str, tuple[int, int]] = {}  # origin -> (offset, ts)
        self._origin_order: deque[tuple[int, str]] = deque()
        # FIFO receive attempts: attempt id -> its last delivery, by time window
        self._attempts: dict[str, _Attempt] = {}
        self._attempt_order: deque[tuple[int, str]] = deque()
        # moves under way: offset -> (destination uid, reset receive count)
        self.moving: dict[int, tuple[str, bool]] = {}
        # messages that came with an older sent time (moved): expire by their own clock
        self._moved_sent: dict[int, int] = {}
        self._moved_heap: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ access
    def _slot(self, offset: int) -> tuple[_Chunk | None, int]:
        return self._chunks.get(offset >> CHUNK_BITS), offset & _CHUNK_MASK

    def status(self, offset: int) -> int:
        chunk = self._chunks.get(offset >> CHUNK_BITS)
        return GONE if chunk is None else chunk.status[offset & _CHUNK_MASK]

    def view(self, offset: int) -> MessageView | None:
        chunk, i = self._slot(offset)
        if chunk is None or chunk.status[i] == GONE:
            return None
        group = self._group_names[chunk.group[i]] if self.fifo else None
        return MessageView(
            offset=offset,
            status=chunk.status[i],
            visible_at_ms=chunk.visible_at[i],
            sent_ms=chunk.sent_at[i],
            receive_count=chunk.rc[i],
            first_receive_ms=chunk.first_rc[i],
            lease_start_ms=chunk.lease_start[i],
            size_bytes=chunk.size[i],
            group_id=group,
        )

    def sent_and_first_receive_ms(self, offsets: Iterable[int]) -> list[tuple[int, int]]:
        """(sent, first received) in ms of each live offset: what a delivery reports, read
        without building a :class:`MessageView` per message."""
        chunks = self._chunks
        out = []
        for off in offsets:
            chunk = chunks[off >> CHUNK_BITS]
            i = off & _CHUNK_MASK
            out.append((chunk.sent_at[i], chunk.first_rc[i]))
        return out

    def lease_starts_ms(self, offsets: Iterable[int]) -> list[int]:
        """When the current delivery of each offset began (0: never delivered, or gone);
        a cheap read for the receive-to-delete metric."""
        chunks = self._chunks
        out: list[int] = []
        for off in offsets:
            chunk = chunks.get(off >> CHUNK_BITS)
            out.append(0 if chunk is None else chunk.lease_start[off & _CHUNK_MASK])
        return out

    def live_offsets(self, start: int = 0, end: int | None = None) -> list[int]:
        """Offsets of live messages in [start, end), in order."""
        stop = self.next_offset if end is None else min(end, self.next_offset)
        out: list[int] = []
        for key in sorted(self._chunks):
            base = key << CHUNK_BITS
            if base + CHUNK_SLOTS <= start or base >= stop:
                continue
            lo = max(start - base, 0)
            hi = min(stop - base, CHUNK_SLOTS)
            for run in _LIVE_RUN.finditer(self._chunks[key].status, lo, hi):
                out.extend(range(base + run.start(), base + run.end()))
        return out

    def dedup_lookup(self, key: str, now: int) -> tuple[int, str] | None:
        hit = self._dedup.get(key)
        if hit is None or hit[1] + dedup_window_ms <= now:
            return None
        return hit[0], hit[2]

    def origin_seen(self, origin: str) -> bool:
        return origin in self._origins

    # ------------------------------------------------------------------ apply
    def apply(self, offset: int, ts_ms: int, record: object) -> None:
        """Fold one record (as decoded by :func:`records.decode`) into the state."""
        assert offset == self.next_offset, (offset, self.next_offset)
        self.next_offset = offset + 1
        if ts_ms > self.last_ts:
            self.last_ts = ts_ms
        self.poll(ts_ms)  # the leader decided at ts_ms: what was visible then is now
        if isinstance(record, R.AppendMeta | R.Append):
            self._apply_append(offset, ts_ms, record)
        elif isinstance(record, R.Deliver):
            self._apply_deliver(ts_ms, record)
        elif isinstance(record, R.Ack):
            for off in record.offsets:
                self._remove(off)
        elif isinstance(record, R.Visibility):
            for off, vis in zip(record.offsets, record.visible_at_ms, strict=True):
                chunk, i = self._slot(off)
                if chunk is not None and chunk.status[i] == INFLIGHT:
                    chunk.visible_at[i] = vis
                    heapq.heappush(self._timers, (vis, off))
        elif isinstance(record, R.Expire):
            for off in record.offsets:
                self._remove(off)
        elif isinstance(record, R.Purge):
            self.last_purge_ms = ts_ms
            for off in self.live_offsets(0, record.upto_offset):
                self._remove(off)
        elif isinstance(record, R.MoveIntent):
            for off in record.offsets:
                self._apply_move_intent(off, record)
        elif isinstance(record, R.Moved):
            for off in record.offsets:
                if self.status(off) == MOVING:
                    self._remove(off)
        elif isinstance(record, R.EpochStart):
            pass  # replication's marker: it takes an offset and changes nothing else
        else:
            raise TypeError(f"not a partition record: {record!r}")
        self._expire_windows(ts_ms)
        self.poll(ts_ms)

    def apply_batch(self, first: int, ts_ms: int, records: Sequence[object]) -> None:
        """:meth:`apply` of ``records`` at offsets ``first``, ``first + 1``, ..., all
        stamped ``ts_ms`` (what a commit writes): the same state, with the clock's work
        (timers, windows) done once instead of twice per record."""
        apply = self.apply
        apply(first, ts_ms, records[0])
        offset = first
        plain = not self.fifo  # a run of plain appends is applied a slice at a time
        sizes = array("i")  # of the run of plain appends that ends at offset
        for rec in records[1:]:
            offset += 1
            append = rec if isinstance(rec, R.Append | R.AppendMeta) else None
            if (
                append is not None
                and plain
                and append.delay_until_ms <= ts_ms
                and append.dedup_id is None
                and append.origin is None
                and not append.sent_ms
                and not append.receive_count
                and not append.first_receive_ms
            ):
                sizes.append(append.body_bytes)
                continue
            if sizes:
                self._apply_plain_appends(offset - len(sizes), ts_ms, sizes)
                sizes = array("i")
            if append is not None:
                assert offset == self.next_offset, (offset, self.next_offset)
                self.next_offset = offset + 1
                self._apply_append(offset, ts_ms, append)
            else:
                apply(offset, ts_ms, rec)
        if sizes:
            self._apply_plain_appends(offset + 1 - len(sizes), ts_ms, sizes)
        # at ts_ms nothing an append added is due, and every append is newer than any
        # window: what apply() would do after each append is all done here
        if offset != first:
            self._expire_windows(ts_ms)
            self.poll(ts_ms)

    def _chunk_for_append(self, offset: int) -> _Chunk:
        key = offset >> CHUNK_BITS
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = self._chunks[key] = _Chunk()
        return chunk

    def _apply_plain_appends(self, first: int, ts: int, sizes: array[int]) -> None:
        """What :meth:`_apply_append` does for appends at ``first``, ``first + 1``, ... of
        a standard queue that are visible at once, were sent at ``ts`` and never
        received before: their columns are set a slice at a time."""
        assert first == self.next_offset, (first, self.next_offset)
        self.next_offset = first + len(sizes)
        done = 0
        while done < len(sizes):
            offset = first + done
            chunk = self._chunk_for_append(offset)
            a = offset & _CHUNK_MASK
            k = min(len(sizes) - done, CHUNK_SLOTS - a)
            b = a + k
            part = sizes[done : done + k]
            stamps = array("q", (ts,)) * k
            zeros = array("q", bytes(8 * k))
            chunk.sent_at[a:b] = stamps
            chunk.visible_at[a:b] = stamps
            chunk.size[a:b] = part
            chunk.rc[a:b] = array("i", bytes(4 * k))
            chunk.first_rc[a:b] = zeros
            chunk.lease_start[a:b] = zeros
            chunk.status[a:b] = _READY_RUN[:k]
            chunk.live += k
            total = sum(part)
            self.n_live += k
            self.bytes_live += total
            done += k

    def _apply_append(self, offset: int, ts: int, rec: R.AppendMeta | R.Append) -> None:
        chunk = self._chunk_for_append(offset)
        i = offset & _CHUNK_MASK
        sent = rec.sent_ms or ts
        chunk.sent_at[i] = sent
        chunk.size[i] = rec.body_bytes
        chunk.rc[i] = rec.receive_count
        chunk.first_rc[i] = rec.first_receive_ms
        chunk.lease_start[i] = 0
        chunk.live += 1
        self.n_live += 1
        self.bytes_live += rec.body_bytes
        if rec.delay_until_ms > ts:
            chunk.status[i] = DELAYED
            chunk.visible_at[i] = rec.delay_until_ms
            self.n_delayed += 1
            self.bytes_delayed += rec.body_bytes
            heapq.heappush(self._timers, (rec.delay_until_ms, offset))
        else:
            chunk.status[i] = READY
            chunk.visible_at[i] = ts
        if self.fifo:
            gid = self._group_index(rec.group_id or "")
            chunk.group[i] = gid
            msgs = self._group_msgs.setdefault(gid, deque())
            msgs.append(offset)
            self._offer_group(gid)
        if rec.dedup_id is not None:
            key = self.dedup_key(rec.group_id, rec.dedup_id, self.dedup_scope)
            self._dedup[key] = (offset, ts, rec.message_id)
            self._dedup_order.append((ts, key))
        if rec.origin is not None:
            self._origins[rec.origin] = (offset, ts)
            self._origin_order.append((ts, rec.origin))
        if sent < ts:
            self._moved_sent[offset] = sent
            heapq.heappush(self._moved_heap, (sent, offset))

    def _apply_deliver(self, ts: int, rec: R.Deliver) -> None:
        for off, rc in zip(rec.offsets, rec.receive_counts, strict=True):
            chunk, i = self._slot(off)
            assert chunk is not None and chunk.status[i] == READY, (off, self.status(off))
            chunk.status[i] = INFLIGHT
            chunk.rc[i] = rc
            if chunk.first_rc[i] == 0:
                chunk.first_rc[i] = ts
            chunk.lease_start[i] = ts
            chunk.visible_at[i] = rec.visible_at_ms
            self.n_inflight += 1
            self.bytes_inflight += chunk.size[i]
            heapq.heappush(self._timers, (rec.visible_at_ms, off))
            if self.fifo:
                gid = chunk.group[i]
                self._group_block[gid] = self._group_block.get(gid, 0) + 1
        if rec.attempt_id is not None and self.fifo:
            self._remember_attempt(
                rec.attempt_id, _Attempt(ts, list(rec.offsets), list(rec.receive_counts))
            )

    def _remember_attempt(self, attempt_id: str, attempt: _Attempt) -> None:
        self._attempts.pop(attempt_id, None)  # the dict's order is the order remembered
        self._attempts[attempt_id] = attempt
        self._attempt_order.append((attempt.ts, attempt_id))
        while len(self._attempts) > receive_attempts_kept_max:
            self._forget_oldest_attempt()

    def _forget_oldest_attempt(self) -> None:
        t, key = self._attempt_order.popleft()
        hit = self._attempts.get(key)
        if hit is not None and hit.ts == t:
            del self._attempts[key]

    def _apply_move_intent(self, off: int, rec: R.MoveIntent) -> None:
        chunk, i = self._slot(off)
        if chunk is None:
            return
        status = chunk.status[i]
        if status in (GONE, MOVING):
            return
        size = chunk.size[i]
        if status == INFLIGHT:
            self.n_inflight -= 1
            self.bytes_inflight -= size
        elif status == DELAYED:
            self.n_delayed -= 1
            self.bytes_delayed -= size
        chunk.status[i] = MOVING
        self.n_moving += 1
        self.bytes_moving += size
        self.moving[off] = (rec.destination, rec.reset_receive_count)
        if self.fifo and status != INFLIGHT:
            gid = chunk.group[i]
            self._group_block[gid] = self._group_block.get(gid, 0) + 1

    def _remove(self, off: int) -> None:
        key = off >> CHUNK_BITS
        chunk = self._chunks.get(key)
        if chunk is None:
            return
        i = off & _CHUNK_MASK
        status = chunk.status[i]
        if status == GONE:
            return
        chunk.status[i] = GONE
        chunk.live -= 1
        self.n_live -= 1
        size = chunk.size[i]
        self.bytes_live -= size
        if status == INFLIGHT:
            self.n_inflight -= 1
            self.bytes_inflight -= size
        elif status == DELAYED:
            self.n_delayed -= 1
            self.bytes_delayed -= size
        elif status == MOVING:
            self.n_moving -= 1
            self.bytes_moving -= size
            del self.moving[off]
        self._moved_sent.pop(off, None)
        if self.fifo:
            gid = chunk.group[i]
            if status in (INFLIGHT, MOVING):
                self._group_block[gid] -= 1
            self._offer_group(gid)
        if chunk.live == 0 and (key + 1) << CHUNK_BITS <= self.next_offset:
            del self._chunks[key]
        if off == self._low:
            self._advance_low()

    def _advance_low(self) -> None:
        low = self._low
        while low < self.next_offset:
            chunk = self._chunks.get(low >> CHUNK_BITS)
            if chunk is None:
                low = ((low >> CHUNK_BITS) + 1) << CHUNK_BITS
                continue
            if chunk.status[low & _CHUNK_MASK] != GONE:
                break
            low += 1
        self._low = min(low, self.next_offset)

    def _expire_windows(self, ts: int) -> None:
        order = self._dedup_order
        while order and order[0][0] + dedup_window_ms <= ts:
            t, key = order.popleft()
            hit = self._dedup.get(key)
            if hit is not None and hit[1] == t:
                del self._dedup[key]
        order = self._origin_order
        while order and order[0][0] + dedup_window_ms <= ts:
            t, key = order.popleft()
            seen = self._origins.get(key)
            if seen is not None and seen[1] == t:
                del self._origins[key]
        while self._attempt_order and self._attempt_order[0][0] + receive_attempt_window_ms <= ts:
            self._forget_oldest_attempt()

    # ------------------------------------------------------------------ time
    def poll(self, now: int) -> None:
        """Make INFLIGHT/DELAYED messages whose ``visible_at`` passed READY."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, off = heapq.heappop(timers)
            chunk, i = self._slot(off)
            if chunk is None:
                continue
            status = chunk.status[i]
            if status not in (INFLIGHT, DELAYED) or chunk.visible_at[i] != due:
                continue  # stale timer: acked, moved, or visibility changed since
            chunk.status[i] = READY
            if status == INFLIGHT:
                self.n_inflight -= 1
                self.bytes_inflight -= chunk.size[i]
            else:
                self.n_delayed -= 1
                self.bytes_delayed -= chunk.size[i]
            if self.fifo:
                gid = chunk.group[i]
                if status == INFLIGHT:
                    self._group_block[gid] -= 1
                self._offer_group(gid)
            else:
                heapq.heappush(self._returned, off)

    def next_timer_ms(self) -> int | None:
        """When the next INFLIGHT/DELAYED message may turn visible (for long polls)."""
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------ FIFO groups
    def _group_index(self, group: str) -> int:
        gid = self._group_ids.get(group)
        if gid is None:
            gid = self._group_ids[group] = len(self._group_names)
            self._group_names.append(group)
        return gid

    def _group_head(self, gid: int) -> int | None:
        msgs = self._group_msgs.get(gid)
        while msgs:
            if self.status(msgs[0]) != GONE:
                return msgs[0]
            msgs.popleft()
        if msgs is not None:
            del self._group_msgs[gid]
        return None

    def _offer_group(self, gid: int) -> None:
        if self._group_block.get(gid, 0):
            return
        head = self._group_head(gid)
        if head is not None and self.status(head) == READY:
            heapq.heappush(self._ready_groups, (head, gid))

    @staticmethod
    def dedup_key(group_id: str | None, dedup_id: str, scope: str = "queue") -> str:
        if scope == "message_group":
            return f"{group_id or ''}\x00{dedup_id}"
        return dedup_id

    # ------------------------------------------------------------------ decide
    def decide_receive(
        self,
        max_messages: int,
        visibility_timeout_ms: int,
        now: int,
        *,
        max_receive_count: int = 0,
        attempt_id: str | None = None,
    ) -> ReceiveDecision:
        """Pick up to ``max_messages`` READY messages; messages received
        ``max_receive_count`` times already are routed to ``moves`` instead. A FIFO
        receive that repeats an ``attempt_id`` is answered by :meth:`decide_retry`
        when that finds messages of the earlier delivery still in flight."""
        assert max_messages > 0 and visibility_timeout_ms >= 0
        if attempt_id is not None:
            retry = self.decide_retry(attempt_id, max_messages, visibility_timeout_ms, now)
            if retry is not None:
                return retry
        self.poll(now)
        picked: list[Delivery] = []
        moves: list[int] = []
        candidates = self._fifo_candidates if self.fifo else self._standard_candidates
        moving_groups: set[int] = set()
        for off in candidates(max_messages):
            chunk, i = self._slot(off)
            assert chunk is not None
            if self.fifo and chunk.group[i] in moving_groups:
                continue  # the rest of a group waits until its head has moved
            rc = chunk.rc[i]
            if max_receive_count and rc >= max_receive_count:
                moves.append(off)
                if self.fifo:
                    moving_groups.add(chunk.group[i])
                continue
            picked.append(Delivery(off, rc + 1))
            if len(picked) >= max_messages:
                break
        recs: list[R.Record] = []
        if picked:
            recs.append(
                R.Deliver(
                    offsets=[d.offset for d in picked],
                    receive_counts=[d.receive_count for d in picked],
                    visible_at_ms=now + visibility_timeout_ms,
                    attempt_id=attempt_id,
                )
            )
        return ReceiveDecision(records=recs, deliveries=picked, moves=moves)

    def decide_retry(
        self, attempt_id: str, max_messages: int, visibility_timeout_ms: int, now: int
    ) -> ReceiveDecision | None:
        """A FIFO receive repeating ``attempt_id`` within the window: the messages of
        that attempt's last delivery still in flight under it (same receive count, so
        the same receipt handles), at most ``max_messages``, with a ``Visibility`` record
        that resets their visibility timeout; None when there are none (a new receive).
        Messages whose visibility would end more than 12 hours after their delivery are
        left out, as a ChangeMessageVisibility would refuse them."""
        attempt = self._attempts.get(attempt_id) if self.fifo else None
        if attempt is None or attempt.ts + receive_attempt_window_ms <= now:
            return None
        self.poll(now)
        visible_at = now + visibility_timeout_ms
        again: list[Delivery] = []
        for off, rc in zip(attempt.offsets, attempt.receive_counts, strict=True):
            chunk, i = self._slot(off)
            if chunk is None or chunk.status[i] != INFLIGHT or chunk.rc[i] != rc:
                continue  # deleted, visible again, moving, or delivered since
            if visible_at - chunk.lease_start[i] > visibility_total_ms_max:
                continue
            again.append(Delivery(off, rc))
            if len(again) >= max_messages:
                break
        if not again:
            return None
        record = R.Visibility(
            offsets=[d.offset for d in again], visible_at_ms=[visible_at] * len(again)
        )
        return ReceiveDecision(records=[record], deliveries=again, moves=[])

    def _standard_candidates(self, want: int) -> list[int]:
        """READY offsets, lowest first, at most ``want`` plus any that must move."""
        out: list[int] = []
        seen: set[int] = set()
        returned = self._returned
        self._advance_cursor()
        scan: int | None = self._cursor
        budget = want
        while budget > 0:
            while returned and (self.status(returned[0]) != READY or returned[0] in seen):
                heapq.heappop(returned)
            scan = self._next_ready(scan, seen)
            top = returned[0] if returned else None
            if scan is None and top is None:
                break
            if top is not None and (scan is None or top < scan):
                off = heapq.heappop(returned)
            else:
                assert scan is not None
                off = scan
                scan += 1
            seen.add(off)
            out.append(off)
            budget -= 1
        return out

    def _advance_cursor(self) -> None:
        cur = self._cursor
        end = self.next_offset
        while cur < end:
            chunk = self._chunks.get(cur >> CHUNK_BITS)
            if chunk is None:
                cur = ((cur >> CHUNK_BITS) + 1) << CHUNK_BITS
                continue
            if chunk.status[cur & _CHUNK_MASK] == READY:
                break
            cur += 1
        self._cursor = min(cur, end)

    def _next_ready(self, start: int | None, seen: set[int]) -> int | None:
        if start is None:
            return None
        cur = start
        end = self.next_offset
        while cur < end:
            chunk = self._chunks.get(cur >> CHUNK_BITS)
            if chunk is None:
                cur = ((cur >> CHUNK_BITS) + 1) << CHUNK_BITS
                continue
            if chunk.status[cur & _CHUNK_MASK] == READY and cur not in seen:
                return cur
            cur += 1
        return None

    def _fifo_candidates(self, want: int) -> list[int]:
        """READY messages from unblocked groups, each group's in order from its head."""
        out: list[int] = []
        seen_groups: set[int] = set()
        heap = self._ready_groups
        while heap and len(out) < want:
            head, gid = heap[0]
            if (
                gid in seen_groups
                or self._group_block.get(gid, 0)
                or self._group_head(gid) != head
                or self.status(head) != READY
            ):
                heapq.heappop(heap)
                continue
            heapq.heappop(heap)
            seen_groups.add(gid)
            for off in self._group_msgs[gid]:
                status = self.status(off)
                if status == GONE:
                    continue
                if status != READY or len(out) >= want:
                    break
                out.append(off)
        return out

    def decide_send(
        self,
        entries: list[R.Append],
        now: int,
        *,
        max_depth_messages: int = 0,
        max_depth_bytes: int = 0,
        overflow: str = "reject",
    ) -> tuple[list[SendDecision], list[R.Record]]:
        """Deduplicate (FIFO) and apply the depth limit to a batch of sends.

        Returns one decision per entry and the records to append, in order (``Expire``
        records for the ``drop_oldest`` overflow policy come first)."""
        decisions: list[SendDecision] = []
        batch_keys: dict[str, tuple[int, str]] = {}
        new: list[R.Append] = []
        count = self.n_live
        size = self.bytes_live
        for rec in entries:
            if rec.dedup_id is not None:
                key = self.dedup_key(rec.group_id, rec.dedup_id, self.dedup_scope)
                hit = self.dedup_lookup(key, now) or batch_keys.get(key)
                if hit is not None:
                    decisions.append(SendDecision(duplicate_of=hit))
                    continue
            if rec.origin is not None and self.origin_seen(rec.origin):
                off, _ = self._origins[rec.origin]
                decisions.append(SendDecision(duplicate_of=(off, rec.message_id)))
                continue
            over = (max_depth_messages and count + 1 > max_depth_messages) or (
                max_depth_bytes and size + rec.body_bytes > max_depth_bytes
            )
            if over and overflow == "reject":
                decisions.append(
                    SendDecision(error=errors.QueueFull("the queue is full; retry later"))
                )
                continue
            if rec.dedup_id is not None:
                key = self.dedup_key(rec.group_id, rec.dedup_id, self.dedup_scope)
                batch_keys[key] = (self.next_offset + len(new), rec.message_id)
            decisions.append(SendDecision(record=rec))
            new.append(rec)
            count += 1
            size += rec.body_bytes
        records: list[R.Record] = []
        if new and overflow == "drop_oldest":
            excess_n = count - max_depth_messages if max_depth_messages else 0
            excess_b = size - max_depth_bytes if max_depth_bytes else 0
            if excess_n > 0 or excess_b > 0:
                drop = self._oldest_droppable(excess_n, excess_b)
                if drop:
                    records.append(R.Expire(offsets=drop, reason=R.EXPIRE_OVERFLOW))
        # Dedup ids were only assigned offsets relative to next_offset; shift by the
        # Expire record that may precede them.
        if records and batch_keys:
            decisions = [
                SendDecision(duplicate_of=(d.duplicate_of[0] + 1, d.duplicate_of[1]))
                if d.duplicate_of is not None and d.duplicate_of[0] >= self.next_offset
                else d
                for d in decisions
            ]
        records.extend(new)
        return decisions, records

    def _oldest_droppable(self, excess_n: int, excess_b: int) -> list[int]:
        drop: list[int] = []
        freed = 0
        for off in self._iter_live(self._low):
            if len(drop) >= excess_n and freed >= excess_b:
                break
            chunk, i = self._slot(off)
            assert chunk is not None
            if chunk.status[i] in (READY, DELAYED):
                drop.append(off)
                freed += chunk.size[i]
            if len(drop) >= expire_batch_max:
                break
        return drop

    def _iter_live(self, start: int) -> list[int]:
        return self.live_offsets(start, None)

    def decide_expire(self, now: int, retention_ms: int) -> list[R.Record]:
        """Records that remove messages older than the retention period."""
        self._advance_low()
        cutoff = now - retention_ms
        out: list[int] = []
        off = self._low
        end = self.next_offset
        while off < end and len(out) < expire_batch_max:
            chunk = self._chunks.get(off >> CHUNK_BITS)
            if chunk is None:
                off = ((off >> CHUNK_BITS) + 1) << CHUNK_BITS
                continue
            i = off & _CHUNK_MASK
            status = chunk.status[i]
            if status != GONE and off not in self._moved_sent:
                if chunk.sent_at[i] > cutoff:
                    break
                if status != MOVING:
                    out.append(off)
            off += 1
        heap = self._moved_heap
        while heap and self.status(heap[0][1]) == GONE:
            heapq.heappop(heap)
        if heap and heap[0][0] <= cutoff:
            for sent, moff in sorted(heap):
                if sent > cutoff or len(out) >= expire_batch_max:
                    break
                if self.status(moff) not in (GONE, MOVING) and moff not in out:
                    out.append(moff)
        return [R.Expire(offsets=sorted(out))] if out else []

    def decide_ack(self, offset: int, receive_count: int) -> list[R.Record]:
        """Delete: a no-op (already gone, or a stale receipt of an older delivery)."""
        return [R.Ack(offsets=[offset])] if self.ackable(offset, receive_count) else []

    def ackable(self, offset: int, receive_count: int) -> bool:
        """Whether a delete of this delivery removes the message (:meth:`decide_ack`
        without the record: a batch of deletes writes one ``Ack`` for all of them)."""
        chunk = self._chunks.get(offset >> CHUNK_BITS)
        if chunk is None:
            return False
        i = offset & _CHUNK_MASK
        return chunk.rc[i] == receive_count and chunk.status[i] not in (GONE, MOVING)

    def check_visibility(self, offset: int, receive_count: int, timeout_ms: int, now: int) -> int:
        """Validate a visibility change; returns the new ``visible_at``."""
        self.poll(now)
        chunk, i = self._slot(offset)
        if chunk is None or chunk.status[i] != INFLIGHT or chunk.rc[i] != receive_count:
            raise errors.MessageNotInflight(
                "the message is not in flight under this receipt handle"
            )
        visible_at = now + timeout_ms
        if visible_at - chunk.lease_start[i] > visibility_total_ms_max:
            raise errors.InvalidParameterValue(
                "a message's visibility cannot extend beyond 12 hours after it was received"
            )
        return visible_at

    def decide_purge(self) -> list[R.Record]:
        return [R.Purge(upto_offset=self.next_offset)]

    def peek(self, max_messages: int, start: int = 0) -> list[MessageView]:
        """Live messages from the oldest, any status, without changing anything."""
        out: list[MessageView] = []
        for off in self.live_offsets(max(start, self._low)):
            view = self.view(off)
            if view is not None and view.status != MOVING:
                out.append(view)
                if len(out) >= max_messages:
                    break
        return out

    def ready_offsets(self, max_messages: int, now: int) -> list[int]:
        """READY offsets (for redrive), lowest first, without changing anything."""
        self.poll(now)
        out: list[int] = []
        for off in self.live_offsets(self._low):
            if self.status(off) == READY:
                out.append(off)
                if len(out) >= max_messages:
                    break
        return out

    def stats(self, now: int) -> Stats:
        self.poll(now)
        self._advance_low()
        oldest: int | None = None
        if self.n_live:
            view = self.view(self._low)
            oldest = view.sent_ms if view is not None else None
            if self._moved_sent:
                moved_oldest = min(self._moved_sent.values())
                oldest = moved_oldest if oldest is None else min(oldest, moved_oldest)
        inflight_bytes = self.bytes_inflight + self.bytes_moving
        return Stats(
            messages=self.n_live,
            bytes=self.bytes_live,
            visible=self.n_live - self.n_inflight - self.n_delayed - self.n_moving,
            inflight=self.n_inflight + self.n_moving,
            delayed=self.n_delayed,
            oldest_sent_ms=oldest,
            visible_bytes=self.bytes_live - inflight_bytes - self.bytes_delayed,
            inflight_bytes=inflight_bytes,
            delayed_bytes=self.bytes_delayed,
        )

    # ------------------------------------------------------------------ checks
    def invariants(self) -> None:
        """Recount everything from the columns; raise AssertionError on a mismatch."""
        counts = {GONE: 0, READY: 0, INFLIGHT: 0, DELAYED: 0, MOVING: 0}
        sizes = {GONE: 0, READY: 0, INFLIGHT: 0, DELAYED: 0, MOVING: 0}
        total_bytes = 0
        for key, chunk in self._chunks.items():
            live = 0
            for i in range(CHUNK_SLOTS):
                s = chunk.status[i]
                if s:
                    live += 1
                    counts[s] += 1
                    sizes[s] += chunk.size[i]
                    total_bytes += chunk.size[i]
                    assert (key << CHUNK_BITS) + i >= self._low
                    assert (key << CHUNK_BITS) + i < self.next_offset
            assert live == chunk.live, (key, live, chunk.live)
        assert self.n_live == sum(counts[s] for s in (READY, INFLIGHT, DELAYED, MOVING))
        assert self.bytes_live == total_bytes
        assert self.n_inflight == counts[INFLIGHT], (self.n_inflight, counts)
        assert self.n_delayed == counts[DELAYED]
        assert self.n_moving == counts[MOVING] == len(self.moving)
        assert self.bytes_inflight == sizes[INFLIGHT], (self.bytes_inflight, sizes)
        assert self.bytes_delayed == sizes[DELAYED], (self.bytes_delayed, sizes)
        assert self.bytes_moving == sizes[MOVING], (self.bytes_moving, sizes)
        if self.fifo:
            blocked: dict[int, int] = {}
            for off in self.live_offsets():
                slot, i = self._slot(off)
                assert slot is not None
                if slot.status[i] in (INFLIGHT, MOVING):
                    blocked[slot.group[i]] = blocked.get(slot.group[i], 0) + 1
            for gid in set(blocked) | set(self._group_block):
                assert blocked.get(gid, 0) == self._group_block.get(gid, 0), gid

    def digest(self) -> bytes:
        """A hash of the semantic state (for replicas and recovery to compare)."""
        h = hashlib.sha256()
        h.update(f"{self.next_offset}:{self.last_purge_ms}:{self.fifo}".encode())
        for off in self.live_offsets():
            view = self.view(off)
            assert view is not None
            moving = view.status == MOVING
            h.update(
                f"|{off},{view.visible_at_ms},{view.sent_ms},{view.receive_count},"
                f"{view.first_receive_ms},{view.size_bytes},{view.group_id},{moving}".encode()
            )
        for key in sorted(self._dedup):
            h.update(f"|d{key}={self._dedup[key]}".encode())
        for key in sorted(self._origins):
            h.update(f"|o{key}={self._origins[key]}".encode())
        for key in sorted(self._attempts):
            a = self._attempts[key]
            h.update(f"|a{key}={a.ts},{a.offsets},{a.receive_counts}".encode())
        return h.digest()

    # ------------------------------------------------------------------ checkpoints
    def snapshot(self) -> bytes:
        """The state as bytes; :meth:`restore` gives back an equal state."""
        return self.capture().encode()

    def capture(self) -> Capture:
        """A copy of the state to encode later: taken under the queue's lock, it copies
        each chunk's columns whole (memory copies, about 50 µs a chunk of 4096 slots), so
        the lock is not held while :meth:`Capture.encode` picks out the live slots."""
        chunks = []
        for key in sorted(self._chunks):
            chunk = self._chunks[key]
            if chunk.live:
                chunks.append((key, [getattr(chunk, name)[:] for name, _ in _COLUMNS]))
        return Capture(
            chunks,
            _Snapshot(
                fifo=self.fifo,
                dedup_scope=self.dedup_scope,
                next_offset=self.next_offset,
                last_ts=self.last_ts,
                last_purge_ms=self.last_purge_ms,
                offsets=b"",
                columns={},
                groups=list(self._group_names),
                dedup=[(k, *v) for k, v in self._dedup.items()],
                origins=[(k, *v) for k, v in self._origins.items()],
                moving=[(off, dest, reset) for off, (dest, reset) in self.moving.items()],
                moved_sent=list(self._moved_sent.items()),
                attempts=[
                    (k, a.ts, a.offsets, a.receive_counts) for k, a in self._attempts.items()
                ],
            ),
        )

    @classmethod
    def restore(cls, data: bytes) -> PartitionState:
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
        state = cls(fifo=snap.fifo, dedup_scope=snap.dedup_scope)
        state.next_offset = snap.next_offset
        state.last_ts = snap.last_ts
        state.last_purge_ms = snap.last_purge_ms
        state._group_names = list(snap.groups)
        state._group_ids = {name: i for i, name in enumerate(snap.groups)}
        offsets = array("q")
        offsets.frombytes(snap.offsets)
        cols: dict[str, array[int]] = {}
        for name, code in _COLUMNS:
            col = array(code)
            col.frombytes(snap.columns[name])
            cols[name] = col
        moving = {off: (dest, reset) for off, dest, reset in snap.moving}
        for j, off in enumerate(offsets):
            chunk = state._chunk_for_append(off)
            i = off & _CHUNK_MASK
            status = cols["status"][j]
            chunk.visible_at[i] = cols["visible_at"][j]
            chunk.sent_at[i] = cols["sent_at"][j]
            chunk.first_rc[i] = cols["first_rc"][j]
            chunk.lease_start[i] = cols["lease_start"][j]
            chunk.rc[i] = cols["rc"][j]
            chunk.size[i] = cols["size"][j]
            chunk.group[i] = cols["group"][j]
            chunk.live += 1
            state.n_live += 1
            state.bytes_live += chunk.size[i]
            if status == MOVING:
                chunk.status[i] = MOVING
                state.n_moving += 1
                state.bytes_moving += chunk.size[i]
            elif chunk.visible_at[i] > snap.last_ts:
                status = INFLIGHT if chunk.lease_start[i] else DELAYED
                chunk.status[i] = status
                if status == INFLIGHT:
                    state.n_inflight += 1
                    state.bytes_inflight += chunk.size[i]
                else:
                    state.n_delayed += 1
                    state.bytes_delayed += chunk.size[i]
                heapq.heappush(state._timers, (chunk.visible_at[i], off))
            else:
                chunk.status[i] = READY
            if state.fifo:
                gid = chunk.group[i]
                state._group_msgs.setdefault(gid, deque()).append(off)
                if chunk.status[i] in (INFLIGHT, MOVING):
                    state._group_block[gid] = state._group_block.get(gid, 0) + 1
        state.moving = moving
        state._low = offsets[0] if offsets else state.next_offset
        state._cursor = state._low
        for key, off, ts, mid in snap.dedup:
            state._dedup[key] = (off, ts, mid)
        for _, key in sorted((v[1], k) for k, v in state._dedup.items()):
            state._dedup_order.append((state._dedup[key][1], key))
        for key, off, ts in snap.origins:
            state._origins[key] = (off, ts)
        for _, key in sorted((v[1], k) for k, v in state._origins.items()):
            state._origin_order.append((state._origins[key][1], key))
        for off, sent in snap.moved_sent:
            state._moved_sent[off] = sent
            heapq.heappush(state._moved_heap, (sent, off))
        for key, ts, offs, rcs in sorted(snap.attempts, key=lambda a: a[1]):  # oldest first
            state._remember_attempt(key, _Attempt(ts, list(offs), list(rcs)))
        if state.fifo:
            for gid in list(state._group_msgs):
                state._offer_group(gid)
        return state


class Capture:
    """A partition's state copied by :meth:`PartitionState.capture`, to encode as a
    snapshot without holding the queue's lock."""

    def __init__(self, chunks: list[tuple[int, list[Any]]], head: _Snapshot) -> None:
        self._chunks = chunks  # (chunk key, its columns in _COLUMNS order)
        self._head = head  # everything but the live slots

    def encode(self) -> bytes:
        """The snapshot's bytes. Runs of live slots are copied a slice at a time (in a
        backlog, whole chunks), not a message at a time."""
        offsets = array("q")
        cols = [array(code) for _, code in _COLUMNS]
        stop = self._head.next_offset
        for key, columns in self._chunks:
            base = key << CHUNK_BITS
            status = columns[0]
            for run in _LIVE_RUN.finditer(status, 0, min(stop - base, CHUNK_SLOTS)):
                a, b = run.span()
                offsets.extend(range(base + a, base + b))
                cols[0].frombytes(status[a:b])
                for col, column in zip(cols[1:], columns[1:], strict=True):
                    col.extend(column[a:b])
        self._head.offsets = offsets.tobytes()
        self._head.columns = {
            name: col.tobytes() for (name, _), col in zip(_COLUMNS, cols, strict=True)
        }
        return msgspec.msgpack.encode(self._head)


class _Snapshot(msgspec.Struct, array_like=True):
    fifo: bool
    dedup_scope: str
    next_offset: int
    last_ts: int
    last_purge_ms: int
    offsets: bytes
    columns: dict[str, bytes]
    groups: list[str]
    dedup: list[tuple[str, int, int, str]]
    origins: list[tuple[str, int, int]]
    moving: list[tuple[int, str, bool]]
    moved_sent: list[tuple[int, int]]
    # (attempt id, ts, offsets, receive counts); absent from older snapshots
    attempts: list[tuple[str, int, list[int], list[int]]] = []
