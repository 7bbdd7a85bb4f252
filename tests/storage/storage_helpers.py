"""Helpers shared by the storage tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from conveyor.storage import Committer, FileLog, MemoryLog

SEGMENT_BYTES_SMALL = 4096  # small segments so that tests roll them


class FsyncSeam:
    """Stands in for os.fsync: counts data and directory fsyncs, can be slowed down,
    made to fail, and records (start, end) of each data fsync on a shared event clock."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.data = 0
        self.dirs = 0
        self.fail: OSError | None = None
        self.lock = threading.Lock()
        self.clock = 0
        self.spans: list[tuple[int, int]] = []  # (start tick, end tick) of data fsyncs

    def tick(self) -> int:
        with self.lock:
            self.clock += 1
            return self.clock

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            with self.lock:
                self.dirs += 1
            os.fsync(fd)
            return
        if self.fail is not None:
            raise self.fail
        start = self.tick()
        if self.delay_s:
            time.sleep(self.delay_s)
        os.fsync(fd)
        end = self.tick()
        with self.lock:
            self.data += 1
            self.spans.append((start, end))

    def covered(self, written_at: int, returned_at: int) -> bool:
        """Did an fsync start after ``written_at`` and end before ``returned_at``?"""
        with self.lock:
            return any(written_at < s and e < returned_at for s, e in self.spans)


class LogFactory:
    """Opens a FileLog or a MemoryLog with the same arguments; ``reopen`` closes and
    opens the same directory again (a MemoryLog is simply kept)."""

    def __init__(self, kind: str, path: Path, committer: Committer) -> None:
        self.kind = kind
        self.path = path
        self.committer = committer
        self.logs: list[Any] = []
        self.kwargs: dict[str, Any] = {}

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    def __call__(self, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        if self.kind == "memory":
            log: Any = MemoryLog(segment_bytes_max=kwargs.get("segment_bytes_max", 1 << 26))
        else:
            kwargs.setdefault("committer", self.committer)
            log = FileLog(self.path, **kwargs)
        self.logs.append(log)
        return log

    def reopen(self, log: Any) -> Any:
        if self.kind == "memory":
            return log
        log.close()
        return self(**self.kwargs)

    def close_all(self) -> None:
        for log in self.logs:
            log.close()


def abandon(log: FileLog) -> None:
    """Drop a FileLog as a crash would: no fsync, no CLEAN marker; just free its fds."""
    for seg in log._segments:
        seg.close()
    log._lru.clear()
    log._closed = True


def records_of(
    log: Any, start: int = 0, end: int | None = None
) -> list[tuple[int, int, int, bytes]]:
    return [tuple(r) for r in log.scan(start, end)]
