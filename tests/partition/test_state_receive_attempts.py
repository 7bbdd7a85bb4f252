"""FIFO receive attempts (SQS's ReceiveRequestAttemptId) in the partition state.

The attempt id travels in the ``Deliver`` record; a receive that repeats it within five
minutes gets the messages of that delivery still in flight, under the same receive
counts, and a ``Visibility`` record resets their timeout. Being folded from the log, the
memory is rebuilt by replay and carried by snapshots.
"""

from __future__ import annotations

import msgspec
import pytest

from conveyor.partition import records as R
from conveyor.partition import state as state_module
from conveyor.partition.state import INFLIGHT, PartitionState

WINDOW_MS = state_module.receive_attempt_window_ms
VIS_MS = 30_000


class Harness:
    """Decide, then commit to an in-memory log and apply, like the broker."""

    def __init__(self, fifo: bool = True) -> None:
        self.state = PartitionState(fifo=fifo)
        self.log: list[tuple[int, R.Record]] = []
        self.n = 0

    def commit(self, recs: list[R.Record], now: int) -> None:
        for rec in recs:
            rtype, payload = R.encode(rec)
            self.log.append((now, rec))
            self.state.apply(self.state.next_offset, now, R.decode(rtype, payload))
        self.state.invariants()

    def send(self, now: int, group: str = "g") -> None:
        self.n += 1
        rec = R.Append(
            message_id=f"m{self.n}", body_bytes=1, body=b"x", group_id=group, dedup_id=str(self.n)
        )
        _, recs = self.state.decide_send([rec], now)
        self.commit(recs, now)

    def receive(
        self, now: int, attempt: str | None, n: int = 10, vis_ms: int = VIS_MS
    ) -> tuple[list[tuple[int, int]], list[R.Record]]:
        dec = self.state.decide_receive(n, vis_ms, now, attempt_id=attempt)
        self.commit(list(dec.records), now)
        return [(d.offset, d.receive_count) for d in dec.deliveries], list(dec.records)

    def ack(self, now: int, offset: int) -> None:
        view = self.state.view(offset)
        assert view is not None
        self.commit(self.state.decide_ack(offset, view.receive_count), now)

    def replay(self) -> PartitionState:
        s = PartitionState(fifo=self.state.fifo)
        for off, (ts, rec) in enumerate(self.log):
            rtype, payload = R.encode(rec)
            s.apply(off, ts, R.decode(rtype, payload))
        return s


def test_a_retry_gets_the_same_deliveries_and_resets_their_visibility() -> None:
    h = Harness()
    for group in ("a", "a", "b"):
        h.send(1_000, group)
    first, recs = h.receive(2_000, "try-1")
    assert first == [(0, 1), (1, 1), (2, 1)]
    assert isinstance(recs[0], R.Deliver) and recs[0].attempt_id == "try-1"

    again, recs = h.receive(10_000, "try-1", vis_ms=60_000)
    assert again == first  # same offsets, same receive counts: the same receipt handles
    assert recs == [R.Visibility(offsets=[0, 1, 2], visible_at_ms=[70_000] * 3)]
    view = h.state.view(0)
    assert view is not None
    assert (view.status, view.visible_at_ms, view.receive_count) == (INFLIGHT, 70_000, 1)
    assert view.lease_start_ms == 2_000  # still the first delivery

    # another attempt id is a new receive: nothing else is visible (groups are blocked)
    assert h.receive(11_000, "try-2")[0] == []


def test_only_what_is_still_in_flight_comes_back_then_a_new_receive() -> None:
    h = Harness()
    for group in ("a", "b", "c"):
        h.send(1_000, group)
    assert [o for o, _ in h.receive(2_000, "t")[0]] == [0, 1, 2]
    h.ack(3_000, 1)
    assert h.receive(4_000, "t")[0] == [(0, 1), (2, 1)]
    assert h.receive(5_000, "t", n=1)[0] == [(0, 1)]  # at most max_messages
    h.ack(6_000, 0)
    h.ack(6_000, 2)
    new = h.state.next_offset  # records take offsets too
    h.send(7_000, "d")
    # none of the attempt's messages is in flight: a new receive, remembered anew
    got, recs = h.receive(8_000, "t")
    assert got == [(new, 1)] and isinstance(recs[0], R.Deliver)
    assert h.receive(9_000, "t")[0] == [(new, 1)]


def test_messages_visible_again_are_received_anew() -> None:
    h = Harness()
    h.send(1_000)
    assert h.receive(2_000, "t", vis_ms=1_000)[0] == [(0, 1)]
    assert h.state.status(0) == INFLIGHT
    # the visibility timeout passed: the message is READY, and delivered again (count 2)
    got, recs = h.receive(3_500, "t")
    assert got == [(0, 2)] and isinstance(recs[0], R.Deliver)
    assert h.receive(4_000, "t")[0] == [(0, 2)]


def test_the_window_is_five_minutes_from_the_delivery() -> None:
    h = Harness()
    h.send(1_000, "a")
    h.send(1_000, "b")
    assert h.receive(2_000, "t", n=1, vis_ms=600_000)[0] == [(0, 1)]
    assert h.receive(2_000 + WINDOW_MS - 1, "t", vis_ms=600_000)[0] == [(0, 1)]
    # past the window the attempt id is forgotten: a new receive (group a is blocked)
    got, recs = h.receive(2_000 + WINDOW_MS, "t", vis_ms=600_000)
    assert got == [(1, 1)] and isinstance(recs[0], R.Deliver)


def test_a_retry_never_stretches_visibility_past_twelve_hours() -> None:
    h = Harness()
    h.send(1_000)
    twelve_h = state_module.visibility_total_ms_max
    assert h.receive(1_000, "t", vis_ms=twelve_h)[0] == [(0, 1)]
    # the same timeout again from later would end past 12 h after the delivery
    got, recs = h.receive(2_000, "t", vis_ms=twelve_h)
    assert got == [] and recs == []
    assert h.receive(2_000, "t", vis_ms=60_000)[0] == [(0, 1)]


def test_standard_queues_ignore_attempt_ids() -> None:
    h = Harness(fifo=False)
    h.send(1_000)
    h.send(1_000)
    assert h.receive(2_000, "t", n=1)[0] == [(0, 1)]
    assert h.receive(3_000, "t", n=1)[0] == [(1, 1)]
    assert h.state.status(0) == INFLIGHT


def test_replay_and_snapshots_remember_attempts() -> None:
    h = Harness()
    for group in ("a", "b", "c"):
        h.send(1_000, group)
    h.receive(2_000, "t1", n=2)
    h.receive(2_500, "t2")
    h.ack(3_000, 1)

    for rebuilt in (h.replay(), PartitionState.restore(h.state.snapshot())):
        assert rebuilt.digest() == h.state.digest()
        for attempt, want in (("t1", [(0, 1)]), ("t2", [(2, 1)])):
            dec = rebuilt.decide_receive(10, VIS_MS, 4_000, attempt_id=attempt)
            assert [(d.offset, d.receive_count) for d in dec.deliveries] == want
            assert isinstance(dec.records[0], R.Visibility)
    # and the digest tells states apart by what they remember
    other = h.replay()
    other.apply(other.next_offset, 2_600, R.Deliver([], [], 0, attempt_id="t3"))
    assert other.digest() != h.state.digest()


def test_snapshots_without_attempts_still_restore() -> None:
    h = Harness()
    h.send(1_000)
    h.receive(2_000, "t")
    fields = msgspec.msgpack.decode(h.state.snapshot())  # an array: the last is attempts
    assert isinstance(fields, list) and fields[-1]
    older = msgspec.msgpack.encode(fields[:-1])  # what a version before attempts wrote
    restored = PartitionState.restore(older)
    assert restored.status(0) == INFLIGHT
    assert restored.decide_retry("t", 10, VIS_MS, 3_000) is None


def test_the_number_remembered_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "receive_attempts_kept_max", 2)
    h = Harness()
    for group in ("a", "b", "c"):
        h.send(1_000, group)
    for i, attempt in enumerate(("t1", "t2", "t3")):
        h.receive(2_000 + i, attempt, n=1)
    assert h.state.decide_retry("t1", 10, VIS_MS, 3_000) is None  # the oldest, forgotten
    assert h.state.decide_retry("t2", 10, VIS_MS, 3_000) is not None
    assert h.state.decide_retry("t3", 10, VIS_MS, 3_000) is not None
    assert h.replay().digest() == h.state.digest()
