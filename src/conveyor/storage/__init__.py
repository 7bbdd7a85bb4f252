"""Storage: a partition replica's segmented, checksummed log, its checkpoints, and tools
to inspect them. Knows nothing about queues: a record is (offset, type, ts_ms, payload).

=================  ==============================================================
module             concept
=================  ==============================================================
``format``         the on-disk format (documented there), pure encode/decode
``segment``        one segment file and its in-memory offset index
``log``            the ``Log`` interface and the rules both implementations share
``file_log``       ``FileLog``: segment files, group commit, recovery, compaction
``memory_log``     ``MemoryLog``: the same rules, in memory
``committer``      the shared fsync workers for ``on_durable`` and ``fsync="interval"``
``checkpoint``     ``CheckpointStore``: atomic snapshots, newest two kept
``inspect``        human-readable dumps (``conveyor storage inspect``)
``bounds``         this layer's bounds; ``errors``: its exceptions
=================  ==============================================================

See ``docs/storage.md`` for the format, recovery and compaction rules and measurements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.storage.checkpoint import CheckpointStore, MemoryCheckpointStore
from conveyor.storage.committer import Committer, default_committer
from conveyor.storage.errors import (
    CorruptRecord,
    LogClosed,
    LogFailed,
    LogTruncated,
    RecordTooLarge,
    StorageError,
)
from conveyor.storage.file_log import FileLog, RecoveryInfo
from conveyor.storage.inspect import dump_log, dump_segment, inspect_path
from conveyor.storage.log import FSYNC_POLICIES, FsyncPolicy, Log
from conveyor.storage.memory_log import MemoryLog
from conveyor.storage.record import Record, SegmentInfo

if TYPE_CHECKING:  # mypy checks that both implementations satisfy the protocol

    def _implements_log(file_log: FileLog, memory_log: MemoryLog) -> tuple[Log, Log]:
        return file_log, memory_log


__all__ = [
    "FSYNC_POLICIES",
    "CheckpointStore",
    "Committer",
    "CorruptRecord",
    "FileLog",
    "FsyncPolicy",
    "Log",
    "LogClosed",
    "LogFailed",
    "LogTruncated",
    "MemoryCheckpointStore",
    "MemoryLog",
    "Record",
    "RecordTooLarge",
    "RecoveryInfo",
    "SegmentInfo",
    "StorageError",
    "default_committer",
    "dump_log",
    "dump_segment",
    "inspect_path",
]
