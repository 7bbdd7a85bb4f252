"""A small deterministic state machine standing in for the partition state.

It satisfies :class:`conveyor.replication.AppliedState`: the simulator applies committed
records to one per replica and compares :meth:`ToyState.digest` at equal commit points.
"""

from __future__ import annotations

import hashlib
import struct

_HEAD = struct.Struct(">QQB")
BUCKETS = 8


class ToyState:
    def __init__(self) -> None:
        self.count = 0
        self.next_offset = 0
        self.bytes_by_bucket = [0] * BUCKETS
        self._chain = hashlib.sha256()

    def apply(self, offset: int, record_type: int, ts_ms: int, payload: bytes) -> None:
        assert offset >= self.next_offset, (offset, self.next_offset)
        self.next_offset = offset + 1
        self.count += 1
        bucket = payload[0] % BUCKETS if payload else 0
        self.bytes_by_bucket[bucket] += len(payload)
        self._chain.update(_HEAD.pack(offset, ts_ms & (2**64 - 1), record_type))
        self._chain.update(payload)

    def digest(self) -> bytes:
        summary = struct.pack(f">Q{BUCKETS}Q", self.count, *self.bytes_by_bucket)
        return hashlib.sha256(summary + self._chain.digest()).digest()
