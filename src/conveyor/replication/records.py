"""What the replication core replicates: a log of opaque records with dense offsets.

A record is ``(offset, ts_ms, type, payload)``. The core never looks inside a payload;
the one exception is its own control record:

``EPOCH_START`` (type 255)
    written by a leader as the first record of its epoch; the payload is the epoch as an
    unsigned 64-bit big-endian integer. It takes an offset like any record; whoever
    applies committed records to the partition state skips it (``is_control``).

The **epoch history** (epoch -> first offset of that epoch) is therefore part of the log
itself: recovery rebuilds it by scanning for ``EPOCH_START`` records, and truncating the
log truncates the history with it, so the two can never disagree after a crash.

Log matching. The leader of an epoch is unique (the coordinator's compare-and-set), it
writes each offset of its epoch once (its log is append-only during the epoch, and a
node never leads an epoch twice), and a follower appends only what the leader of its
epoch sent at the follower's log end after the two agreed on the epoch of the record
before it. Hence: *two logs that have the same epoch at the same offset are identical up
to and including that offset*. Comparing epoch histories is enough to find where two
logs diverge (:func:`divergence_point`).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

EPOCH_START: Final = 255  # record type reserved for the replication layer
_EPOCH = struct.Struct(">Q")


class LogRecord(msgspec.Struct, frozen=True, array_like=True):
    offset: int
    ts_ms: int
    type: int
    payload: bytes


def epoch_start(offset: int, ts_ms: int, epoch: int) -> LogRecord:
    assert epoch > 0
    return LogRecord(offset, ts_ms, EPOCH_START, _EPOCH.pack(epoch))


def marker_epoch(record: LogRecord) -> int | None:
    """The epoch an ``EPOCH_START`` record opens, or ``None`` for any other record."""
    if record.type != EPOCH_START:
        return None
    (epoch,) = _EPOCH.unpack(record.payload)
    return int(epoch)


def is_control(record_type: int) -> bool:
    return record_type == EPOCH_START


class EpochHistory:
    """Sorted ``(epoch, start_offset)`` pairs: epoch ``e`` covers ``[start_e, start_next)``.

    Epochs strictly increase, starts strictly increase (each epoch begins with its own
    marker record). Offsets before the first entry belong to epoch 0 (an empty log).
    """

    __slots__ = ("_epochs", "_starts")

    def __init__(self, entries: Iterable[tuple[int, int]] = ()) -> None:
        self._epochs: list[int] = []
        self._starts: list[int] = []
        for epoch, start in entries:
            self.append(epoch, start)

    @classmethod
    def from_records(cls, records: Iterable[LogRecord]) -> EpochHistory:
        history = cls()
        for record in records:
            epoch = marker_epoch(record)
            if epoch is not None:
                history.append(epoch, record.offset)
        return history

    def append(self, epoch: int, start: int) -> None:
        if self._epochs:
            assert epoch > self._epochs[-1], (epoch, self._epochs[-1])
            assert start > self._starts[-1], (start, self._starts[-1])
        self._epochs.append(epoch)
        self._starts.append(start)

    def truncate(self, end: int) -> None:
        """Forget epochs that start at or after ``end`` (the log was cut to ``end``)."""
        keep = bisect.bisect_left(self._starts, end)
        del self._epochs[keep:]
        del self._starts[keep:]

    @property
    def last_epoch(self) -> int:
        return self._epochs[-1] if self._epochs else 0

    @property
    def last_start(self) -> int | None:
        return self._starts[-1] if self._starts else None

    def start_of(self, epoch: int) -> int | None:
        i = bisect.bisect_left(self._epochs, epoch)
        if i < len(self._epochs) and self._epochs[i] == epoch:
            return self._starts[i]
        return None

    def epoch_at(self, offset: int) -> int:
        """The epoch of the record at ``offset`` (0 before the first marker)."""
        i = bisect.bisect_right(self._starts, offset) - 1
        return self._epochs[i] if i >= 0 else 0

    def entries(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self._epochs, self._starts, strict=True))

    def __len__(self) -> int:
        return len(self._epochs)

    def __repr__(self) -> str:
        return f"EpochHistory({list(self.entries())})"


def divergence_point(mine: EpochHistory, my_end: int, theirs: EpochHistory, their_end: int) -> int:
    """The length of the longest common prefix of two logs, from their epoch histories.

    By log matching the logs agree at every offset where their epochs agree, so the
    first offset where the epochs differ (or the shorter log's end) is where they part.
    Epochs only change at history starts, so only those offsets need comparing.
    """
    end = min(my_end, their_end)
    boundaries = sorted({s for _, s in mine.entries()} | {s for _, s in theirs.entries()})
    for offset in boundaries:
        if offset >= end:
            break
        if mine.epoch_at(offset) != theirs.epoch_at(offset):
            return offset
    return end


def check_dense(records: Sequence[LogRecord], start: int) -> None:
    """Assert ``records`` have the offsets ``start, start + 1, ...``."""
    for i, record in enumerate(records):
        assert record.offset == start + i, (record.offset, start + i)
