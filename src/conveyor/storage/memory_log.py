"""A log held in memory, with the rules of :class:`~conveyor.storage.file_log.FileLog`.

For tests and for the in-memory broker. Segments roll at the same byte counts as the
file log (sizes are counted as if the records were framed), deletes and rewrites leave
the same holes, and the same errors are raised, so one test suite checks both. Every
record is durable as soon as it is appended: there is no disk to lose it.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterator, Sequence

from conveyor import limits
from conveyor.storage import format as fmt
from conveyor.storage.errors import LogClosed
from conveyor.storage.log import (
    Callback,
    ErrorCallback,
    check_batch,
    check_segment_bytes_max,
    should_roll,
)
from conveyor.storage.record import Record, SegmentInfo


class _MemorySegment:
    __slots__ = (
        "base_offset",
        "compacted",
        "end_offset",
        "offsets",
        "records",
        "sealed",
        "size_bytes",
    )

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.end_offset = base_offset
        self.offsets: list[int] = []
        self.records: list[Record] = []
        self.size_bytes = fmt.SEGMENT_HEADER_BYTES
        self.sealed = False
        self.compacted = False  # rewritten: stays sealed, even when truncated into

    def info(self) -> SegmentInfo:
        return SegmentInfo(
            self.base_offset, self.end_offset, len(self.records), self.size_bytes, self.sealed, None
        )


class MemoryLog:
    def __init__(self, segment_bytes_max: int = limits.segment_bytes_max) -> None:
        self.segment_bytes_max = check_segment_bytes_max(segment_bytes_max)
        self._lock = threading.Lock()
        self._segments = [_MemorySegment(0)]
        self._closed = False

    # ------------------------------------------------------------------ properties
    @property
    def next_offset(self) -> int:
        with self._lock:
            return self._segments[-1].end_offset

    @property
    def durable_offset(self) -> int:
        return self.next_offset

    @property
    def synced_offset(self) -> int:
        return self.next_offset

    @property
    def first_offset(self) -> int:
        with self._lock:
            for seg in self._segments:
                if seg.offsets:
                    return seg.offsets[0]
            return self._segments[-1].end_offset

    @property
    def closed(self) -> bool:
        return self._closed

    def check(self) -> None:
        with self._lock:
            segs = self._segments
            assert segs and not segs[-1].sealed
            for a, b in itertools.pairwise(segs):
                assert a.sealed and a.end_offset <= b.base_offset
            for seg in segs:
                assert seg.offsets == [r.offset for r in seg.records]
                assert seg.offsets == sorted(set(seg.offsets))
                assert not seg.offsets or (
                    seg.base_offset <= seg.offsets[0] and seg.offsets[-1] < seg.end_offset
                )

    # ------------------------------------------------------------------ appends
    def append(self, type: int, ts_ms: int, payload: bytes) -> int:
        return self.append_batch(((type, ts_ms, payload),))

    def append_batch(self, items: Sequence[tuple[int, int, bytes]]) -> int:
        batch_bytes = check_batch(items)
        with self._lock:
            self._check_open()
            active = self._segments[-1]
            if should_roll(active.size_bytes, batch_bytes, self.segment_bytes_max):
                active.sealed = True
                active = _MemorySegment(active.end_offset)
                self._segments.append(active)
            first = active.end_offset
            for i, (rtype, ts_ms, payload) in enumerate(items):
                active.records.append(Record(first + i, rtype, ts_ms, bytes(payload)))
                active.offsets.append(first + i)
            active.end_offset = first + len(items)
            active.size_bytes += batch_bytes
            return first

    # ------------------------------------------------------------------ durability
    def wait_durable(self, offset: int) -> None:
        with self._lock:
            self._check_offset(offset)

    def on_durable(
        self, offset: int, callback: Callback, on_error: ErrorCallback | None = None
    ) -> None:
        with self._lock:
            self._check_offset(offset)
        callback()

    def sync(self) -> int:
        with self._lock:
            self._check_open()
            return self._segments[-1].end_offset

    def _check_offset(self, offset: int) -> None:
        end = self._segments[-1].end_offset
        if offset < end:
            return
        self._check_open()
        raise ValueError(f"offset {offset} is not written yet (next is {end})")

    # ------------------------------------------------------------------ reads
    def read(self, offset: int) -> Record:
        with self._lock:
            self._check_open()
            k = bisect_right([s.base_offset for s in self._segments], offset) - 1
            if k >= 0:
                seg = self._segments[k]
                i = bisect_left(seg.offsets, offset)
                if i < len(seg.offsets) and seg.offsets[i] == offset:
                    return seg.records[i]
        raise KeyError(offset)

    def read_many(self, offsets: Sequence[int]) -> list[Record]:
        return [self.read(offset) for offset in offsets]

    def scan(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        with self._lock:
            self._check_open()
            stop = self._segments[-1].end_offset if end is None else end
            out: list[Record] = []
            for seg in self._segments:
                if seg.end_offset <= start:
                    continue
                if seg.base_offset >= stop:
                    break
                i = bisect_left(seg.offsets, start)
                j = bisect_left(seg.offsets, stop)
                out.extend(seg.records[i:j])
        return iter(out)

    # ------------------------------------------------------------------ truncate, reset
    def truncate(self, next_offset: int) -> None:
        with self._lock:
            self._check_open()
            end = self._segments[-1].end_offset
            if not 0 <= next_offset <= end:
                raise ValueError(f"truncate to {next_offset}: the log ends at {end}")
            segs = self._segments
            while segs and segs[-1].base_offset >= next_offset:
                segs.pop()
            if segs and segs[-1].end_offset > next_offset:
                seg = segs[-1]
                i = bisect_left(seg.offsets, next_offset)
                for rec in seg.records[i:]:
                    seg.size_bytes -= fmt.frame_size(len(rec.payload))
                del seg.records[i:]
                del seg.offsets[i:]
                seg.end_offset = next_offset
                if not seg.compacted:  # as FileLog: a compacted segment stays sealed
                    seg.sealed = False
            if not segs or segs[-1].sealed:
                segs.append(_MemorySegment(next_offset))

    def reset(self, next_offset: int) -> None:
        if not 0 <= next_offset <= fmt.I64_MAX:
            raise ValueError(f"reset to {next_offset}")
        with self._lock:
            self._check_open()
            self._segments = [_MemorySegment(next_offset)]

    # ------------------------------------------------------------------ segments
    def segments(self) -> list[SegmentInfo]:
        with self._lock:
            self._check_open()
            return [seg.info() for seg in self._segments]

    def _find_sealed(self, base_offset: int) -> int:
        for k, seg in enumerate(self._segments):
            if seg.base_offset == base_offset:
                if not seg.sealed:
                    raise ValueError(f"segment {base_offset} is the active segment")
                return k
        raise KeyError(base_offset)

    def delete_segment(self, base_offset: int) -> None:
        with self._lock:
            self._check_open()
            del self._segments[self._find_sealed(base_offset)]

    def rewrite_segment(self, base_offset: int, keep: Collection[int]) -> SegmentInfo:
        with self._lock:
            self._check_open()
            seg = self._segments[self._find_sealed(base_offset)]
            wanted = keep if isinstance(keep, set | frozenset) else set(keep)
            kept = [r for r in seg.records if r.offset in wanted]
            seg.compacted = True
            seg.records = kept
            seg.offsets = [r.offset for r in kept]
            seg.size_bytes = fmt.SEGMENT_HEADER_BYTES + sum(
                fmt.frame_size(len(r.payload)) for r in kept
            )
            return seg.info()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __enter__(self) -> MemoryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("the log is closed")
