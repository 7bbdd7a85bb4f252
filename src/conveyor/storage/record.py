"""What the log stores: a record, and what it tells about its segments."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Record(NamedTuple):
    """One record of a log. ``type`` and ``payload`` mean what the caller says."""

    offset: int  # assigned by the log: 0, 1, 2, ... (compaction may leave holes)
    type: int  # 0..255
    ts_ms: int  # the writer's clock, milliseconds since the Unix epoch
    payload: bytes


class SegmentInfo(NamedTuple):
    """One segment of a log, as :meth:`Log.segments` reports it."""

    base_offset: int  # the lowest offset the segment may hold
    end_offset: int  # one past the highest offset the segment covers
    record_count: int  # records stored (fewer than end - base after compaction)
    size_bytes: int  # file size, header included
    sealed: bool  # False only for the active (last) segment, which appends go to
    path: Path | None  # None for a MemoryLog
