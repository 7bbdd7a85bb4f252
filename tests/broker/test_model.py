"""The embedded broker against a small reference model, driven by hypothesis.

Operations: send, receive (with a visibility timeout), delete and change visibility
with any handle ever issued (stale ones included), advance a fake clock, close and
reopen. After every step the broker's answers and counts must equal the model's.

The model is the documented semantics in a few lines: a standard queue delivers the
visible messages lowest send order first; a FIFO queue serves unblocked groups in the
order of their oldest message, consecutive messages of one group together, and drops a
resend of a deduplication id within five minutes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import conveyor
from conveyor import errors

from .conftest import FakeClock

VIS_MAX_S = 12 * 3600


@dataclass
class ModelMessage:
    index: int
    message_id: str
    body: str
    group: str | None
    visible_at: int
    rc: int = 0
    lease_start: int = 0
    alive: bool = True

    def inflight(self, now: int) -> bool:
        return self.alive and self.rc > 0 and self.visible_at > now


class QueueModel(RuleBasedStateMachine):
    fifo = False
    queue = "model"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-model-"))
        self.clock = FakeClock()
        self.broker = self._open()
        self.msgs: list[ModelMessage] = []
        self.handles: list[tuple[str, int, int]] = []  # (handle, index, rc)
        self.dedup: dict[str, tuple[int, int]] = {}  # key -> (sent ms, index)

    def _open(self) -> conveyor.Broker:
        return conveyor.open(self.dir, clock=self.clock, fsync="never", maintenance_interval_s=None)

    @initialize()
    def create(self) -> None:
        self.broker.create_queue(self.queue, {"visibility_timeout_s": 30})

    def teardown(self) -> None:
        self.broker.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def now(self) -> int:
        return self.clock.ms

    # ------------------------------------------------------------ rules
    @rule(
        body=st.text(min_size=1, max_size=8), group=st.sampled_from("abc"), dedup=st.integers(0, 5)
    )
    def send(self, body: str, group: str, dedup: int) -> None:
        if self.fifo:
            key = str(dedup)
            result = self.broker.send(self.queue, body, group_id=group, dedup_id=key)
            hit = self.dedup.get(key)
            if hit is not None and hit[0] + 300_000 > self.now:
                assert result.duplicate
                assert result.message_id == self.msgs[hit[1]].message_id
                return
            assert not result.duplicate
            self.dedup[key] = (self.now, len(self.msgs))
        else:
            result = self.broker.send(self.queue, body)
        self.msgs.append(
            ModelMessage(
                len(self.msgs), result.message_id, body, group if self.fifo else None, self.now
            )
        )

    def _expected_receive(self, n: int) -> list[ModelMessage]:
        now = self.now
        visible = [m for m in self.msgs if m.alive and m.visible_at <= now]
        if not self.fifo:
            return visible[:n]
        out: list[ModelMessage] = []
        groups: dict[str, list[ModelMessage]] = {}
        for m in self.msgs:
            if m.alive:
                groups.setdefault(m.group or "", []).append(m)
        order = sorted(groups.values(), key=lambda ms: ms[0].index)
        for ms in order:
            if any(m.inflight(now) for m in ms):
                continue
            for m in ms:
                if len(out) >= n:
                    return out
                out.append(m)
        return out

    @rule(n=st.integers(1, 4), vis=st.sampled_from([0, 1, 5, 30]))
    def receive(self, n: int, vis: int) -> None:
        expected = self._expected_receive(n)
        got = self.broker.receive(self.queue, n, visibility_timeout_s=vis)
        assert [m.message_id for m in got] == [m.message_id for m in expected]
        for m, msg in zip(expected, got, strict=True):
            m.rc += 1
            m.visible_at = self.now + vis * 1000
            m.lease_start = self.now
            assert msg.receive_count == m.rc
            assert msg.text == m.body
            self.handles.append((msg.receipt_handle, m.index, m.rc))

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        handle, index, rc = data.draw(st.sampled_from(self.handles))
        self.broker.delete(self.queue, handle)
        m = self.msgs[index]
        if m.alive and m.rc == rc:
            m.alive = False

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), timeout=st.sampled_from([0, 2, 60]))
    def change_visibility(self, data: st.DataObject, timeout: int) -> None:
        handle, index, rc = data.draw(st.sampled_from(self.handles))
        m = self.msgs[index]
        allowed = m.inflight(self.now) and m.rc == rc
        try:
            self.broker.change_visibility(self.queue, handle, timeout)
        except errors.MessageNotInflight:
            assert not allowed
        else:
            assert allowed
            m.visible_at = self.now + timeout * 1000

    @rule(seconds=st.sampled_from([0.5, 1, 3, 31, 301]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reopen(self) -> None:
        self.broker.close()
        self.broker = self._open()

    # ------------------------------------------------------------ checks
    @invariant()
    def counts_agree(self) -> None:
        stats = self.broker.get_queue(self.queue).stats
        assert stats is not None
        now = self.now
        alive = [m for m in self.msgs if m.alive]
        inflight = [m for m in alive if m.inflight(now)]
        assert stats.messages == len(alive)
        assert stats.inflight == len(inflight)
        assert stats.visible == len(alive) - len(inflight)
        for state in self.broker.partition_states(self.queue):
            state.invariants()


class FifoQueueModel(QueueModel):
    fifo = True
    queue = "model.fifo"


_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestStandardQueueModel(QueueModel.TestCase):  # type: ignore[misc,valid-type]
    settings = _SETTINGS


class TestFifoQueueModel(FifoQueueModel.TestCase):  # type: ignore[misc,valid-type]
    settings = _SETTINGS
