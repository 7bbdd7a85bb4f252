"""A simulated disk for one replica's log: what was written, what was synced.

Writes land in a "page cache" (``written``); a sync makes everything written so far
durable (``synced``). A crash keeps the synced prefix, a random part of what was written
after it (the kernel may have flushed some), and possibly a torn record after that: a
record only partly on disk. Recovery (:meth:`SimDisk.recover`) cuts the log at the first
torn record, as the storage layer's checksum scan does.

A *lazy* disk models ``fsync=never``: it reports writes durable at once but only
really syncs every so often, so a crash loses records the replica already reported
persisted. A replica restarting on such a disk restarts *unclean* (rule 7).
"""

from __future__ import annotations

import random

from conveyor.replication.records import LogRecord

TORN = LogRecord(-1, 0, 0, b"\xde\xad")  # stands for a partly written record


class SimDisk:
    def __init__(self, *, lazy: bool = False) -> None:
        self.written: list[LogRecord] = []
        self.synced = 0
        self.lazy = lazy
        self.crashes = 0
        self.torn_tails = 0

    @property
    def end(self) -> int:
        return len(self.written)

    def write(self, records: tuple[LogRecord, ...]) -> None:
        assert records and records[0].offset == len(self.written), (records[0].offset, self.end)
        self.written.extend(records)

    def truncate(self, end: int) -> None:
        assert end <= len(self.written)
        del self.written[end:]
        self.synced = min(self.synced, end)

    def sync(self) -> int:
        """Make everything written durable; return the durable end."""
        self.synced = len(self.written)
        return self.synced

    def crash(self, rng: random.Random) -> None:
        """Power loss: unsynced writes are lost, partly lost, or torn."""
        self.crashes += 1
        unsynced = len(self.written) - self.synced
        kept = rng.randint(0, unsynced) if unsynced and rng.random() < 0.5 else 0
        survivors = self.written[: self.synced + kept]
        if kept < unsynced and rng.random() < 0.5:
            survivors.append(TORN)
        self.written = survivors
        self.synced = min(self.synced, len(survivors))

    def recover(self) -> list[LogRecord]:
        """What the storage layer's recovery finds: the log up to the first torn record."""
        for i, record in enumerate(self.written):
            if record is TORN:
                self.torn_tails += 1
                del self.written[i:]
                break
        self.synced = len(self.written)
        return list(self.written)
