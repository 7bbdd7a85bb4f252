"""Unit tests of the partition state machine: decide + apply, no I/O."""

from __future__ import annotations

import pytest

from conveyor import errors
from conveyor.partition import records as R
from conveyor.partition.state import (
    CHUNK_SLOTS,
    DELAYED,
    GONE,
    INFLIGHT,
    MOVING,
    READY,
    PartitionState,
)


class Harness:
    """A partition with an in-memory 'log': decide, then apply, like the broker does."""

    def __init__(self, fifo: bool = False, dedup_scope: str = "queue", check: bool = True) -> None:
        self.check = check
        self.state = PartitionState(fifo=fifo, dedup_scope=dedup_scope)
        self.log: list[tuple[int, object]] = []
        self.n = 0

    def commit(self, recs: list[R.Record], now: int) -> None:
        for rec in recs:
            off = self.state.next_offset
            rtype, payload = R.encode(rec)
            self.log.append((now, rec))
            # apply what replay would see
            self.state.apply(off, now, R.decode(rtype, payload))
        if self.check:
            self.state.invariants()

    def send(self, now: int, body: bytes = b"x", **kw: object) -> list[object]:
        self.n += 1
        rec = R.Append(message_id=f"m{self.n}", body_bytes=len(body), body=body, **kw)  # type: ignore[arg-type]
        decisions, recs = self.state.decide_send([rec], now)
        if recs:
            self.commit(recs, now)
        return decisions  # type: ignore[return-value]

    def receive(self, now: int, n: int = 10, vis_ms: int = 30_000, max_rc: int = 0) -> list[int]:
        dec = self.state.decide_receive(n, vis_ms, now, max_receive_count=max_rc)
        recs = list(dec.records)
        if dec.moves:
            recs.append(R.MoveIntent(offsets=dec.moves, destination="dlq"))
        if recs:
            self.commit(recs, now)
        return [d.offset for d in dec.deliveries]

    def ack(self, now: int, off: int) -> None:
        view = self.state.view(off)
        assert view is not None
        recs = self.state.decide_ack(off, view.receive_count)
        if recs:
            self.commit(recs, now)

    def replay(self) -> PartitionState:
        s = PartitionState(fifo=self.state.fifo, dedup_scope=self.state.dedup_scope)
        for off, (ts, rec) in enumerate(self.log):
            rtype, payload = R.encode(rec)  # type: ignore[arg-type]
            s.apply(off, ts, R.decode(rtype, payload))
        return s


def test_send_receive_ack() -> None:
    h = Harness()
    h.send(1000, b"a")
    h.send(1000, b"b")
    assert h.receive(1001, n=1) == [0]
    assert h.receive(1001, n=10) == [1]
    assert h.receive(1002) == []
    h.ack(1003, 0)
    h.ack(1003, 1)
    st = h.state.stats(1004)
    assert (st.messages, st.visible, st.inflight) == (0, 0, 0)


def test_visibility_timeout_redelivers_with_higher_count() -> None:
    h = Harness()
    h.send(0)
    assert h.receive(10, vis_ms=100) == [0]
    assert h.receive(109) == []
    assert h.receive(110) == [0]
    view = h.state.view(0)
    assert view is not None and view.receive_count == 2 and view.first_receive_ms == 10


def test_stale_ack_is_a_noop() -> None:
    h = Harness()
    h.send(0)
    h.receive(1, vis_ms=10)
    h.receive(20, vis_ms=10_000)  # second delivery, receive count 2
    assert h.state.decide_ack(0, 1) == []  # the first delivery's handle
    assert h.state.status(0) == INFLIGHT
    assert h.state.decide_ack(0, 2) == [R.Ack(offsets=[0])]


def test_visibility_change_rules() -> None:
    h = Harness()
    h.send(0)
    h.receive(1, vis_ms=1000)
    with pytest.raises(errors.MessageNotInflight):
        h.state.check_visibility(0, 5, 1000, 2)  # wrong delivery
    with pytest.raises(errors.InvalidParameterValue):
        h.state.check_visibility(0, 1, 12 * 3600 * 1000, 2)  # beyond 12 h after receipt
    vis = h.state.check_visibility(0, 1, 0, 2)
    h.commit([R.Visibility(offsets=[0], visible_at_ms=[vis])], 2)
    assert h.state.status(0) == READY
    with pytest.raises(errors.MessageNotInflight):
        h.state.check_visibility(0, 1, 1000, 3)


def test_delay() -> None:
    h = Harness()
    h.send(0, delay_until_ms=500)
    assert h.state.status(0) == DELAYED
    assert h.receive(499) == []
    assert h.state.stats(499).delayed == 1
    assert h.receive(500) == [0]


def test_standard_order_is_lowest_offset_first_including_returns() -> None:
    h = Harness()
    for _ in range(5):
        h.send(0)
    assert h.receive(1, n=2, vis_ms=10) == [0, 1]
    assert h.receive(2, n=1) == [2]
    # 0 and 1 come back before 3 and 4
    assert h.receive(20, n=10) == [0, 1, 3, 4]


def test_fifo_group_order_and_blocking() -> None:
    h = Harness(fifo=True)
    h.send(0, group_id="a", dedup_id="1")
    h.send(0, group_id="b", dedup_id="2")
    h.send(0, group_id="a", dedup_id="3")
    got = h.receive(1, n=1)
    assert got == [0]
    # group a is blocked while 0 is in flight: only b's message comes
    assert h.receive(2, n=10) == [1]
    assert h.receive(3, n=10) == []
    h.ack(4, 0)
    assert h.receive(5, n=10) == [2]


def test_fifo_lease_expiry_keeps_order() -> None:
    h = Harness(fifo=True)
    for i in range(3):
        h.send(0, group_id="g", dedup_id=str(i))
    assert h.receive(1, n=2, vis_ms=10) == [0, 1]
    h.ack(2, 1)  # the second, not the first
    assert h.receive(5) == []  # still blocked by 0
    assert h.receive(11, n=10) == [0, 2]


def test_fifo_dedup_window() -> None:
    h = Harness(fifo=True)
    h.send(0, group_id="g", dedup_id="d")
    d = h.send(1000, group_id="g", dedup_id="d")
    assert d[0].duplicate_of == (0, "m1")  # type: ignore[attr-defined]
    assert h.state.n_live == 1
    d = h.send(300_000, group_id="g", dedup_id="d")
    assert d[0].record is not None  # type: ignore[attr-defined]
    assert h.state.n_live == 2


def test_dedup_scope_message_group() -> None:
    h = Harness(fifo=True, dedup_scope="message_group")
    h.send(0, group_id="a", dedup_id="d")
    h.send(0, group_id="b", dedup_id="d")
    assert h.state.n_live == 2


def test_dedup_survives_snapshot() -> None:
    h = Harness(fifo=True)
    h.send(0, group_id="g", dedup_id="d")
    restored = PartitionState.restore(h.state.snapshot())
    assert restored.dedup_lookup("d", 1000) == (0, "m1")


def test_max_receive_count_moves() -> None:
    h = Harness()
    h.send(0)
    h.receive(1, vis_ms=10, max_rc=2)
    h.receive(20, vis_ms=10, max_rc=2)
    assert h.receive(40, max_rc=2) == []
    assert h.state.status(0) == MOVING
    assert h.state.moving == {0: ("dlq", False)}
    h.commit([R.Moved(offsets=[0])], 41)
    assert h.state.status(0) == GONE and h.state.n_live == 0


def test_fifo_move_blocks_group_until_moved() -> None:
    h = Harness(fifo=True)
    h.send(0, group_id="g", dedup_id="1")
    h.send(0, group_id="g", dedup_id="2")
    h.receive(1, n=1, vis_ms=10, max_rc=1)
    assert h.receive(20, max_rc=1) == []
    assert h.state.status(0) == MOVING
    assert h.receive(21, max_rc=1) == []  # blocked while the head moves
    h.commit([R.Moved(offsets=[0])], 22)
    assert h.receive(23, max_rc=1) == [1]


def test_purge_removes_everything_before() -> None:
    h = Harness()
    for _ in range(3):
        h.send(0)
    h.receive(1, n=1)
    h.commit(h.state.decide_purge(), 2)
    h.send(3)
    assert h.state.n_live == 1
    assert h.receive(4) == [5]  # 3 was the Deliver record, 4 the Purge


def test_retention_expiry_and_moved_sent_time() -> None:
    h = Harness()
    h.send(1000)
    h.send(5000, sent_ms=100, origin="src:0:7")  # moved: keeps its original sent time
    h.send(6000)
    recs = h.state.decide_expire(now=1200, retention_ms=1000)
    assert recs == [R.Expire(offsets=[1])]
    recs = h.state.decide_expire(now=2000, retention_ms=1000)
    assert recs == [R.Expire(offsets=[0, 1])]
    h.commit(recs, 2000)
    assert h.state.live_offsets() == [2]


def test_depth_limits_reject_and_drop_oldest() -> None:
    h = Harness()
    h.send(0)
    rec = R.Append(message_id="x", body_bytes=1, body=b"x")
    decisions, recs = h.state.decide_send([rec], 1, max_depth_messages=1)
    assert isinstance(decisions[0].error, errors.QueueFull) and decisions[0].error.retriable
    assert recs == []
    decisions, recs = h.state.decide_send([rec], 1, max_depth_messages=1, overflow="drop_oldest")
    assert recs[0] == R.Expire(offsets=[0], reason=R.EXPIRE_OVERFLOW)
    h.commit(recs, 1)
    assert h.state.live_offsets() == [2]


def test_snapshot_and_replay_agree_with_live_state() -> None:
    h = Harness(fifo=True)
    for i in range(50):
        h.send(i, group_id=f"g{i % 4}", dedup_id=str(i), delay_until_ms=i * 3 if i % 5 == 0 else 0)
    h.receive(100, n=6, vis_ms=50)
    h.ack(101, 0)
    h.receive(200, n=6, vis_ms=50, max_rc=1)
    digest = h.state.digest()
    assert h.replay().digest() == digest
    restored = PartitionState.restore(h.state.snapshot())
    restored.invariants()
    assert restored.digest() == digest
    # and both continue identically
    a = h.state.decide_receive(10, 100, 1000)
    b = restored.decide_receive(10, 100, 1000)
    assert a.deliveries == b.deliveries


def test_chunks_are_freed() -> None:
    h = Harness(check=False)
    for _ in range(10_000):
        h.send(0)
    while True:
        got = h.receive(1, n=1000)
        if not got:
            break
        h.commit([R.Ack(offsets=got)], 2)
    assert h.state.n_live == 0
    h.state.invariants()
    assert len(h.state._chunks) <= 1


def test_epoch_start_takes_an_offset_and_changes_nothing() -> None:
    from conveyor.replication import records as replication_records

    h = Harness()
    h.send(0, b"a")
    marker = replication_records.epoch_start(h.state.next_offset, 5, epoch=7)
    assert marker.type == R.EPOCH_START
    rec = R.decode(marker.type, marker.payload)
    assert rec == R.EpochStart(7)
    assert R.describe(marker.type, marker.payload) == "EpochStart epoch=7"
    before = h.state.stats(5)
    h.state.apply(marker.offset, marker.ts_ms, rec)
    h.state.invariants()
    assert h.state.next_offset == marker.offset + 1
    assert h.state.stats(5) == before
    h.send(10, b"b")
    assert len(h.receive(10)) == 2


@pytest.mark.parametrize("fifo", [False, True])
def test_apply_batch_agrees_with_apply_one_by_one(fifo: bool) -> None:
    """What a commit applies in one call reaches the state replay reaches one record at
    a time: batches of sends (some delayed, some duplicates, some across chunks, some
    after the oldest were dropped), with deliveries, acks, expired leases and dedup
    windows passing between them."""
    import random

    rng = random.Random(11)
    one = PartitionState(fifo=fifo)
    batched = PartitionState(fifo=fifo)
    now = 1_000
    n = 0
    for _ in range(60):
        now += rng.choice([1, 50, 40_000, 400_000])
        if rng.random() < 0.6:
            entries = []
            # now and then a batch long enough to cross a chunk boundary
            for _ in range(rng.randint(1, 12) if rng.random() < 0.85 else rng.randint(500, 3000)):
                n += 1
                entries.append(
                    R.Append(
                        message_id=f"m{n}",
                        body_bytes=rng.randint(1, 5000),
                        body=b"abc",
                        delay_until_ms=now + 500 if rng.random() < 0.2 else 0,
                        group_id=f"g{rng.randint(0, 3)}" if fifo else None,
                        dedup_id=str(rng.randint(0, 40)) if fifo else None,
                    )
                )
            _, recs = one.decide_send(
                entries, now, max_depth_messages=5_000, overflow="drop_oldest"
            )
        elif rng.random() < 0.5:
            recs = list(
                one.decide_receive(rng.randint(1, 8), rng.choice([10, 60_000]), now).records
            )
        else:
            live = [v for v in (one.view(o) for o in range(one.next_offset)) if v is not None]
            inflight = [v for v in live if v.status == INFLIGHT]
            recs = []
            for v in inflight[: rng.randint(0, 4)]:
                recs.extend(one.decide_ack(v.offset, v.receive_count))
        if not recs:
            continue
        first = one.next_offset
        for i, rec in enumerate(recs):
            one.apply(first + i, now, rec)
        batched.apply_batch(first, now, recs)
        one.invariants()
        batched.invariants()
        assert batched.digest() == one.digest()
    assert n > 2 * CHUNK_SLOTS  # runs crossed chunk boundaries


def test_a_capture_spans_chunks_and_is_a_copy() -> None:
    """Live slots scattered over several chunks (runs of every length, a chunk emptied,
    the last one partly filled) snapshot to an equal state; a capture taken before later
    changes encodes the state as it was when taken."""
    state = PartitionState(fifo=False)
    n = 3 * CHUNK_SLOTS + 123
    state.apply_batch(0, 1, [R.Append(message_id=f"m{i}", body_bytes=i % 97) for i in range(n)])
    gone = [i for i in range(n) if i % 7 in (0, 3) or (i * i) % 11 == 5]
    gone += range(CHUNK_SLOTS, 2 * CHUNK_SLOTS)  # the second chunk entirely
    state.apply(n, 2, R.Ack(offsets=sorted(set(gone))))
    state.apply(
        n + 1, 3, R.Deliver(offsets=[1, 2, n - 1], receive_counts=[1, 1, 1], visible_at_ms=90)
    )
    dropped = set(gone)
    live = [i for i in range(n) if i not in dropped]
    assert state.live_offsets() == live
    assert state.live_offsets(CHUNK_SLOTS - 5, 2 * CHUNK_SLOTS + 9) == [
        i for i in live if CHUNK_SLOTS - 5 <= i < 2 * CHUNK_SLOTS + 9
    ]
    digest = state.digest()
    capture = state.capture()
    state.apply(n + 2, 4, R.Ack(offsets=live[:10]))
    restored = PartitionState.restore(capture.encode())
    restored.invariants()
    assert restored.digest() == digest != state.digest()
    assert PartitionState.restore(state.snapshot()).digest() == state.digest()


def test_sent_and_first_receive_times_agree_with_views() -> None:
    h = Harness()
    for t in range(5):
        h.send(t * 10)
    h.receive(100, n=2, vis_ms=10)
    h.receive(200, n=5, vis_ms=10)
    offsets = h.state.live_offsets()
    views = [h.state.view(o) for o in offsets]
    assert h.state.sent_and_first_receive_ms(offsets) == [
        (v.sent_ms, v.first_receive_ms) for v in views if v is not None
    ]
    assert {t for _, t in h.state.sent_and_first_receive_ms(offsets)} == {100, 200}
