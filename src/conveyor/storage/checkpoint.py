"""Checkpoints: snapshots of a partition's state, saved atomically, newest two kept.

The partition layer saves ``(offset, data)`` — its state after applying every record up
to ``offset`` — so that recovery replays only the records after it. Storage does not
look into ``data``.

On disk (:class:`CheckpointStore`), one file per checkpoint, ``<sequence>.ckpt``
(format in :mod:`~conveyor.storage.format`): header, CRC32C of the data, the data. A
save writes a temp file, fsyncs it, renames it into place and fsyncs the directory, so
a crash leaves the new checkpoint complete or absent. The sequence number orders them
(not the offset: after a log reset a checkpoint can have a lower offset than an older
one). :meth:`CheckpointStore.latest` returns the newest that verifies, falling back to
the previous one if the newest is damaged.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from conveyor.storage import bounds
from conveyor.storage import format as fmt
from conveyor.storage.fsutil import TMP_SUFFIX, FsyncFn, fsync_dir, write_atomically

log = logging.getLogger("conveyor.storage")

CHECKPOINT_SUFFIX = ".ckpt"
_NAME = re.compile(r"^(\d{20})\.ckpt$")


class CheckpointStore:
    def __init__(self, path: str | os.PathLike[str], *, fsync_fn: FsyncFn = os.fsync) -> None:
        self.path = Path(path)
        self._fsync_fn = fsync_fn
        self._lock = threading.Lock()
        self._damaged: set[int] = set()  # sequences latest() found damaged
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_dir(self.path.parent, fsync_fn)
        for entry in os.listdir(self.path):
            if entry.endswith(TMP_SUFFIX):  # a save that did not complete
                (self.path / entry).unlink()

    def _sequences(self) -> list[int]:
        out = []
        for entry in os.listdir(self.path):
            m = _NAME.match(entry)
            if m is not None:
                out.append(int(m.group(1)))
        return sorted(out)

    def _file(self, seq: int) -> Path:
        return self.path / f"{seq:020d}{CHECKPOINT_SUFFIX}"

    def save(self, offset: int, data: bytes) -> None:
        """Store a checkpoint durably, then drop all but the newest ones kept."""
        if not fmt.I64_MIN <= offset <= fmt.I64_MAX:
            raise ValueError(f"checkpoint offset {offset} does not fit 64 bits")
        if len(data) > bounds.checkpoint_bytes_max:
            raise ValueError(
                f"checkpoint of {len(data)} bytes; at most {bounds.checkpoint_bytes_max}"
            )
        with self._lock:
            seqs = self._sequences()
            seq = seqs[-1] + 1 if seqs else 1
            write_atomically(
                self._file(seq), fmt.encode_checkpoint(offset, bytes(data)), self._fsync_fn
            )
            good = [s for s in seqs if s not in self._damaged] + [seq]
            keep = set(good[-bounds.checkpoints_kept :])
            dropped = [s for s in seqs if s not in keep]
            for s in dropped:
                self._file(s).unlink(missing_ok=True)
                self._damaged.discard(s)
            if dropped:
                fsync_dir(self.path, self._fsync_fn)

    def latest(self) -> tuple[int, bytes] | None:
        """(offset, data) of the newest checkpoint that verifies; None if there is none."""
        with self._lock:
            for seq in reversed(self._sequences()):
                try:
                    blob = self._file(seq).read_bytes()
                    return fmt.decode_checkpoint(blob)
                except FileNotFoundError:
                    continue
                except fmt.FormatError as exc:
                    self._damaged.add(seq)
                    log.warning("checkpoint %s is damaged (%s); trying an older one", seq, exc)
            return None


class MemoryCheckpointStore:
    """The same interface, in memory (nothing to damage)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: list[tuple[int, bytes]] = []

    def save(self, offset: int, data: bytes) -> None:
        with self._lock:
            self._kept.append((offset, bytes(data)))
            del self._kept[: -bounds.checkpoints_kept]

    def latest(self) -> tuple[int, bytes] | None:
        with self._lock:
            return self._kept[-1] if self._kept else None
