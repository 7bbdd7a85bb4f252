"""One partition replica on this node: its log, its state, its checkpoints.

:class:`Partition` is the thin layer that turns the state machine's decisions into
durable records: ``commit(records, now)`` appends them to the log in one write, applies
them to the state and returns the offset to wait for. Callers hold the queue's lock
around decide + commit, and wait for durability (``log.wait_durable``) after releasing
it, so one fsync covers everything that arrived meanwhile (group commit).

Recovery (:meth:`Partition.open`): load the newest checkpoint, then replay the records
after it. Maintenance (:meth:`Partition.checkpoint`, :meth:`Partition.compact`): write a
checkpoint every ``limits.checkpoint_interval_records`` records (or every as many records
as there are live messages, when more), then delete sealed
segments with nothing live and rewrite sparse ones, so disk use follows live data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor import limits
from conveyor.partition import records as R
from conveyor.partition.state import Capture, PartitionState
from conveyor.storage import CheckpointStore, FileLog, MemoryCheckpointStore, MemoryLog
from conveyor.storage.log import Log

log = logging.getLogger("conveyor.partition")


class Partition:
    def __init__(
        self,
        index: int,
        state: PartitionState,
        wal: Log,
        checkpoints: CheckpointStore | MemoryCheckpointStore,
        checkpoint_offset: int,
    ) -> None:
        self.index = index
        self.state = state
        self.log = wal
        self.checkpoints = checkpoints
        self.checkpoint_offset = checkpoint_offset  # state at this offset is checkpointed

    @classmethod
    def open(
        cls,
        index: int,
        path: Path | None,
        *,
        fifo: bool,
        dedup_scope: str,
        fsync: str,
        segment_bytes_max: int = limits.segment_bytes_max,
        fsync_fn: Callable[[int], None] = os.fsync,
        fdatasync_fn: Callable[[int], None] | None = None,
    ) -> Partition:
        if path is None:
            wal: Log = MemoryLog()
            store: CheckpointStore | MemoryCheckpointStore = MemoryCheckpointStore()
        else:
            path.mkdir(parents=True, exist_ok=True)
            wal = FileLog(
                path / "log",
                fsync=fsync,
                segment_bytes_max=segment_bytes_max,
                fsync_fn=fsync_fn,
                fdatasync_fn=fdatasync_fn,
            )
            store = CheckpointStore(path / "checkpoints")
        latest = store.latest()
        if latest is not None:
            ckpt_offset, data = latest
            state = PartitionState.restore(data)
            assert state.next_offset == ckpt_offset + 1
            if wal.next_offset < state.next_offset:
                raise RuntimeError(
                    f"partition {path}: the log ends at {wal.next_offset} but the checkpoint "
                    f"covers {ckpt_offset}; the log lost records it had synced"
                )
        else:
            ckpt_offset = -1
            state = PartitionState(fifo=fifo, dedup_scope=dedup_scope)
        state.dedup_scope = dedup_scope
        for rec in wal.scan(ckpt_offset + 1):
            state.apply(rec.offset, rec.ts_ms, R.decode(rec.type, rec.payload))
        assert state.next_offset == wal.next_offset, (state.next_offset, wal.next_offset)
        return cls(index, state, wal, store, ckpt_offset)

    @staticmethod
    def load_checkpoint(
        store: CheckpointStore | MemoryCheckpointStore, *, fifo: bool, dedup_scope: str
    ) -> tuple[PartitionState, int]:
        """The newest checkpointed state and its offset (``-1`` and an empty state if none)."""
        latest = store.latest()
        if latest is None:
            state = PartitionState(fifo=fifo, dedup_scope=dedup_scope)
            return state, -1
        offset, data = latest
        state = PartitionState.restore(data)
        state.dedup_scope = dedup_scope
        return state, offset

    @property
    def replicated(self) -> bool:
        """The log is a replicated one (cluster mode): never compacted, committed by ISR."""
        return hasattr(self.log, "driver")

    @property
    def writable(self) -> bool:
        """Appends may succeed here: always on a single node; in a cluster, on the leader."""
        return bool(getattr(self.log, "writable", True))

    def rebuild_state(self, upto: int) -> None:
        """Throw the state away and replay it from the checkpoint through ``upto - 1``.

        A leader applies its appends before they commit; when it loses the leadership,
        records past the commit point may be cut from its log, so its state goes back to
        the committed prefix. Call under the queue's lock."""
        fifo, scope = self.state.fifo, self.state.dedup_scope
        state, offset = self.load_checkpoint(self.checkpoints, fifo=fifo, dedup_scope=scope)
        for rec in self.log.scan(offset + 1, upto):
            state.apply(rec.offset, rec.ts_ms, R.decode(rec.type, rec.payload))
        self.state = state
        self.checkpoint_offset = offset

    # ------------------------------------------------------------------ writes
    def commit(self, records: list[R.Record], now: int) -> int:
        """Append ``records`` stamped with ``now`` and apply them; return the last offset.

        The records are written to the OS but not yet durable: wait with
        ``self.log.wait_durable(offset)`` before answering the client."""
        assert records
        items = []
        for rec in records:
            rtype, payload = R.encode(rec)
            items.append((rtype, now, payload))
        first = self.log.append_batch(items)
        self.state.apply_batch(first, now, records)
        return first + len(records) - 1

    def read_append(self, offset: int) -> R.Append:
        return R.decode_append(self.log.read(offset).payload)

    def read_appends(self, offsets: list[int]) -> list[R.Append]:
        decode = R.decode_append
        return [decode(rec.payload) for rec in self.log.read_many(offsets)]

    def wait_durable(self, offset: int) -> None:
        self.log.wait_durable(offset)

    # ------------------------------------------------------------------ maintenance
    def records_since_checkpoint(self) -> int:
        return self.state.next_offset - 1 - self.checkpoint_offset

    def capture(self) -> tuple[int, Capture]:
        """Copy the state under the caller's lock; persist the copy with
        :meth:`save_checkpoint`, without the lock (it encodes the snapshot)."""
        return self.state.next_offset - 1, self.state.capture()

    def save_checkpoint(self, offset: int, capture: Capture) -> None:
        if offset < 0:
            return
        data = capture.encode()
        self.log.wait_durable(offset)
        self.log.sync()
        self.checkpoints.save(offset, data)
        self.checkpoint_offset = offset

    def compact(self, live_offsets: Any) -> tuple[int, int]:
        """Delete or rewrite sealed segments that the checkpoint covers.

        ``live_offsets(start, end)`` lists live offsets (read under the queue's lock).
        Returns (segments deleted, segments rewritten)."""
        deleted = rewritten = 0
        for seg in self.log.segments():
            if not seg.sealed or seg.end_offset - 1 > self.checkpoint_offset:
                continue
            live = live_offsets(seg.base_offset, seg.end_offset)
            if not live:
                self.log.delete_segment(seg.base_offset)
                deleted += 1
            elif (
                seg.record_count and len(live) / seg.record_count < limits.compaction_live_ratio_max
            ):
                self.log.rewrite_segment(seg.base_offset, set(live))
                rewritten += 1
        if deleted or rewritten:
            log.debug("compacted: %d segments deleted, %d rewritten", deleted, rewritten)
        return deleted, rewritten

    def close(self) -> None:
        self.log.close()
