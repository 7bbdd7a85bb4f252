"""A log in a directory of segment files: appends, group commit, recovery, compaction.

Locks
-----
``_lock`` guards the log's state (segments, offsets, waiters) and is held for appends,
reads (one pread) and bookkeeping, never across an fsync of the append path.
``_maint`` serialises the operations that change the set of files (truncate, reset,
delete_segment, rewrite_segment, close); it is taken before ``_lock``. A sealed segment
changes only under ``_maint``, so ``rewrite_segment`` copies it without ``_lock``.

Group commit
------------
A sync *round* notes ``target = next_offset``, duplicates the active segment's fd,
releases the lock, fsyncs, re-takes the lock and marks every offset below ``target``
synced. Only one round runs at a time per log. Records appended during a round are
covered by the next one, which therefore covers everything appended meanwhile: with N
threads waiting, a round costs one fsync, not N. A round's sync is an *fdatasync*
(``fdatasync_fn``) when the file's length has not changed since the last fsync that
completed (see Preallocation), else a full fsync (``fsync_fn``). A log given only an
``fsync_fn`` uses it for both, so that a test's seam sees every sync.

Who runs a round: a thread in ``wait_durable`` runs it itself when none is running (it
becomes the leader; the others sleep on a condition and are woken when it ends, and one
of those still waiting leads the next). ``on_durable`` registers a callback and asks the
shared :class:`~conveyor.storage.committer.Committer` for a round; the thread that ends
a round calls the callbacks it satisfied, and asks the committer again if callbacks are
left. ``sync_if_small`` lets an event loop run a small round itself (see
:mod:`conveyor.broker.aio`): for one request at a time, waking a committer thread and
being woken back costs more CPU and time than the fsync. ``fsync="interval"`` schedules
a round on the committer ``fsync_interval_ms`` after the first write that is not yet
synced.

The one fsync made under ``_lock`` is at a segment roll (once per
``segment_bytes_max``): the full segment is trimmed (below) and fsynced before the next
one is created, so a torn tail after a crash can only be in the last segment. An fsync
that fails makes the log *failed* (:class:`~conveyor.storage.errors.LogFailed`): the
kernel may have dropped the unsynced pages, so no later fsync can vouch for them.

Preallocation
-------------
With ``fsync="always"`` a sync per append is the cost that counts, and an fsync that
grows the file journals the new size and extents each time. So when an append reaches
the end of the active segment's file, zeros are written after it, up to
``bounds.segment_preallocate_bytes`` ahead (never past ``segment_bytes_max``, where the
segment rolls). The next round fsyncs the new length once; the rounds after it write
inside the file and fdatasync. The zeros are real blocks, not ``posix_fallocate``: ext4
journals the first write into each fallocated block, which costs what growing the file
does (measurements in :mod:`~conveyor.storage.bounds`). A segment is trimmed to its last
frame before it is sealed (then fsynced, then its index written) and when the log is
closed, so sealed segments and a closed log hold no zeros.

Zeros cost a disk write of their own, which pays only when rounds are small. Once per
``segment_preallocate_bytes`` appended, the log looks at how many rounds synced them and
preallocates from then on only if they averaged at most
``bounds.preallocate_round_bytes_max`` (it starts out preallocating). The other policies
sync rarely and never preallocate. If the zeros cannot be written (a full disk) the
segment goes on without.

Recovery (on open)
------------------
1. ``*.tmp`` files are removed: a segment being created or rewritten, an index or a
   checkpoint being written, none of them complete.
2. Several generations of one base offset: the highest whose header is valid wins (a
   compacted file is renamed into place only after it is complete and fsynced); the
   others and their indexes are removed. A segment whose header is damaged and has no
   other generation is renamed ``*.corrupt`` and left for inspection.
3. Sealed segments load their index; an index that is missing, damaged or does not match
   the segment (CRC, base, generation, file size) is rebuilt by a scan and rewritten.
4. The last segment is scanned and every frame verified; the file is cut at the first
   torn or corrupt frame, keeping everything before it. Zeros where a frame would start,
   and only zeros to the end of the file, are preallocated space a crash left: they are
   cut too, but are no problem and not counted in ``truncated_bytes`` (zeros followed by
   other bytes are a torn write). It becomes the active segment (if it is a compacted
   one, a new active segment starts at its end).
5. The active segment and the directory are fsynced; everything found is durable.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from conveyor import limits
from conveyor.storage import bounds
from conveyor.storage import format as fmt
from conveyor.storage.committer import Committer, default_committer
from conveyor.storage.errors import (
    CorruptRecord,
    LogClosed,
    LogFailed,
    LogTruncated,
    StorageError,
)
from conveyor.storage.fsutil import (
    TMP_SUFFIX,
    FsyncFn,
    fdatasync,
    fsync_dir,
    pread_exact,
    pwrite_all,
    unlink_if_exists,
)
from conveyor.storage.log import (
    Callback,
    ErrorCallback,
    FsyncPolicy,
    check_batch,
    check_policy,
    check_segment_bytes_max,
    should_roll,
)
from conveyor.storage.record import Record, SegmentInfo
from conveyor.storage.segment import (
    Segment,
    create_file,
    parse_name,
    read_header,
    segment_name,
)

log = logging.getLogger("conveyor.storage")

CLEAN_MARKER = "CLEAN"
CORRUPT_SUFFIX = ".corrupt"

Probe = Callable[[str], None]
"""Called with a name at the steps of a multi-file change (``"rewrite.written"``,
``"rewrite.renamed"``, ``"rewrite.removed"``, ``"truncate.removed"``); a test raises
from it to leave the files as a crash there would."""


class RecoveryInfo(NamedTuple):
    """What opening the log found and repaired."""

    clean_shutdown: bool  # the log was closed (everything fsynced) before this open
    truncated_bytes: int  # cut from the tail of the active segment because of `problem`
    # (preallocated zeros cut after a crash are not counted: they held no data)
    problem: str | None  # why the tail was cut
    indexes_rebuilt: int
    removed: tuple[str, ...]  # temp files, replaced generations, stale indexes
    corrupt: tuple[str, ...]  # files renamed *.corrupt, and damage found in sealed segments


class _Waiter:
    __slots__ = ("callback", "done", "error", "offset", "on_error")

    def __init__(
        self, offset: int, callback: Callback | None, on_error: ErrorCallback | None
    ) -> None:
        self.offset = offset
        self.callback = callback  # None: a thread in wait_durable
        self.on_error = on_error
        self.done = False
        self.error: BaseException | None = None


_Fired = list[tuple[_Waiter, BaseException | None]]


class FileLog:
    """A log stored in ``path`` (created if missing). See the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync: str = "always",
        segment_bytes_max: int = limits.segment_bytes_max,
        *,
        fsync_interval_ms: int = limits.fsync_interval_ms_default,
        committer: Committer | None = None,
        fsync_fn: FsyncFn = os.fsync,
        fdatasync_fn: FsyncFn | None = None,
        probe: Probe | None = None,
    ) -> None:
        if not bounds.fsync_interval_ms_min <= fsync_interval_ms <= bounds.fsync_interval_ms_max:
            raise ValueError(
                f"fsync_interval_ms must be in {bounds.fsync_interval_ms_min}.."
                f"{bounds.fsync_interval_ms_max}"
            )
        self.path = Path(path)
        self.policy: FsyncPolicy = check_policy(fsync)
        self.segment_bytes_max = check_segment_bytes_max(segment_bytes_max)
        self._interval_s = fsync_interval_ms / 1000
        self._committer = committer
        self._fsync_fn = fsync_fn
        # the sync of a round that changed no file length; None: os.fdatasync with the
        # default fsync_fn, else fsync_fn itself (a test's seam then sees every sync)
        if fdatasync_fn is None:
            fdatasync_fn = fdatasync if fsync_fn is os.fsync else fsync_fn
        self._fdatasync_fn = fdatasync_fn
        self._may_preallocate = self.policy == "always"
        self._preallocate = self._may_preallocate  # and the recent rounds were small
        self._rounds = 0  # sync rounds completed since open
        self._window_bytes = 0  # _appended_bytes and _rounds when the preallocation
        self._window_rounds = 0  # decision was last made
        self._probe = probe
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._cond_waiting = 0  # threads in _wait_locked: notify only when there are some
        self._maint = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []  # base offsets of _segments, for bisect
        self._lru: OrderedDict[Segment, None] = OrderedDict()  # sealed segments with an fd
        self._next_offset = 0
        self._synced = 0
        self._syncing = False
        self._appended_bytes = 0  # bytes appended since open, and when the last round began
        self._round_bytes = 0
        self._epoch = 0  # bumped by truncate/reset: a round that began before must not count
        self._waiters: list[tuple[int, int, _Waiter]] = []
        self._callback_waiters = 0
        self._seq = itertools.count()
        self._queued = False  # waiting in the committer's queue
        self._timer_armed = False
        self._closed = False
        self._failed: LogFailed | None = None
        self.recovery = self._recover()
        self.check()

    # ------------------------------------------------------------------ properties
    @property
    def next_offset(self) -> int:
        with self._lock:
            return self._next_offset

    @property
    def durable_offset(self) -> int:
        with self._lock:
            return self._durable_locked()

    @property
    def synced_offset(self) -> int:
        with self._lock:
            return self._synced

    @property
    def first_offset(self) -> int:
        with self._lock:
            for seg in self._segments:
                first = seg.first_offset()
                if first is not None:
                    return first
            return self._next_offset

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> LogFailed | None:
        return self._failed

    def check(self) -> None:
        """Assert the invariants (tests call it after every step)."""
        with self._lock:
            segs = self._segments
            assert self._closed or segs, "a log always has an active segment"
            assert self._bases == [s.base_offset for s in segs]
            for a, b in itertools.pairwise(segs):
                assert a.sealed and a.end_offset <= b.base_offset, (a.info(), b.info())
            if segs:
                active = segs[-1]
                assert not active.sealed and not active.compacted
                assert active.end_offset == self._next_offset
                assert self._closed or active.fd is not None
                assert active.file_bytes == active.size_bytes or (
                    self.policy == "always" and active.file_bytes <= self.segment_bytes_max
                ), (active.file_bytes, active.size_bytes)
                assert active.resizes_synced <= active.resizes
            assert self._synced <= self._next_offset
            assert len(self._lru) <= bounds.sealed_fds_open_max
            assert self._callback_waiters == sum(
                1 for _, _, w in self._waiters if w.callback is not None
            )

    # ------------------------------------------------------------------ appends
    def append(self, type: int, ts_ms: int, payload: bytes) -> int:
        return self.append_batch(((type, ts_ms, payload),))

    def append_batch(self, items: Sequence[tuple[int, int, bytes]]) -> int:
        batch_bytes = check_batch(items)
        with self._lock:
            self._check_writable_locked()
            active = self._segments[-1]
            if should_roll(active.size_bytes, batch_bytes, self.segment_bytes_max):
                active = self._roll_locked()
            first = self._next_offset
            data, sizes = fmt.encode_frames(first, items)
            assert len(data) == batch_bytes
            before = active.size_bytes
            try:
                end = before + batch_bytes
                if (
                    self._may_preallocate
                    and end >= active.file_bytes
                    and active.preallocating
                    and self._worth_locked()
                ):
                    self._preallocate_locked(active, end)
                active.append(data, sizes)
            except OSError as exc:
                self._undo_write_locked(active, before, exc)
                raise StorageError(f"{active.path}: write failed: {exc}") from exc
            self._next_offset = first + len(items)
            self._appended_bytes += batch_bytes
            if self.policy == "interval" and not self._timer_armed:
                self._timer_armed = True
                self._get_committer().schedule(self, self._interval_s)
            return first

    def _worth_locked(self) -> bool:
        """Whether to preallocate (see Preallocation in the module docstring): decided
        again once ``bounds.segment_preallocate_bytes`` were appended since last time."""
        window = self._appended_bytes - self._window_bytes
        if window >= bounds.segment_preallocate_bytes:
            rounds = self._rounds - self._window_rounds
            self._preallocate = rounds * bounds.preallocate_round_bytes_max >= window
            self._window_bytes, self._window_rounds = self._appended_bytes, self._rounds
        return self._preallocate

    def _preallocate_locked(self, active: Segment, end: int) -> None:
        """Zeros after a write up to ``end`` that reaches the file's end (see
        Preallocation in the module docstring). Raises OSError only if the file could not
        be put back as it was."""
        file_bytes = min(end + bounds.segment_preallocate_bytes, self.segment_bytes_max)
        if file_bytes <= end:  # full: the segment rolls before it grows further
            return
        exc = active.preallocate(end, file_bytes)
        if exc is not None:
            active.preallocating = False
            log.warning("%s: cannot write zeros ahead of the appends: %s", active.path, exc)

    def _undo_write_locked(self, active: Segment, before: int, exc: OSError) -> None:
        try:
            active.cut_bytes(before)
        except OSError as exc2:
            raise self._fail_locked(exc2) from exc

    def _roll_locked(self) -> Segment:
        """Seal the active segment and start a new one after it.

        The full segment is trimmed to its last frame and fsynced first (under the lock,
        once per segment), so that a torn tail can only ever be in the last segment and a
        sealed file holds frames only."""
        old = self._segments[-1]
        try:
            old.trim()
            self._fsync_fn(old.require_fd())
        except OSError as exc:
            raise self._fail_locked(exc) from exc
        old.resizes_synced = old.resizes
        self._synced = max(self._synced, old.end_offset)
        try:
            new = self._create_active_locked(old.end_offset)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot start a segment: {exc}") from exc
        old.sealed = True
        try:
            old.write_index(None)
        except OSError as exc:  # not fatal: the segment is scanned on the next open
            log.warning("%s: index not written: %s", old.path, exc)
        self._touch_locked(old)
        self._segments.append(new)
        self._bases.append(new.base_offset)
        return new

    def _create_active_locked(self, base: int) -> Segment:
        header = fmt.SegmentHeader(base)
        path = self.path / segment_name(base, 0)
        fd = create_file(path, header, self._fsync_fn)
        fsync_dir(self.path, self._fsync_fn)
        seg = Segment(
            path, header, _positions(), None, fmt.SEGMENT_HEADER_BYTES, base, sealed=False
        )
        seg.fd = fd
        return seg

    # ------------------------------------------------------------------ durability
    def _wait_locked(self) -> None:
        """Wait for a sync round or the close to end (the lock held)."""
        self._cond_waiting += 1
        try:
            self._cond.wait()
        finally:
            self._cond_waiting -= 1

    def _notify_locked(self) -> None:
        # Condition.notify_all is Python code (a microsecond or two); a round of the
        # event loop's own fsync, the usual one, has nobody waiting on the condition
        if self._cond_waiting:
            self._cond.notify_all()

    def _durable_locked(self) -> int:
        return self._synced if self.policy == "always" else self._next_offset

    def wait_durable(self, offset: int) -> None:
        waiter: _Waiter | None = None
        while True:
            fired: _Fired = []
            with self._lock:
                if waiter is None:
                    if offset < self._durable_locked():
                        return
                    self._check_writable_locked()
                    self._check_offset_locked(offset)
                    waiter = _Waiter(offset, None, None)
                    heapq.heappush(self._waiters, (offset, next(self._seq), waiter))
                if not waiter.done:
                    if self._syncing:
                        self._wait_locked()
                    else:
                        fired = self._sync_round_locked()
            _run(fired)
            if waiter.done:
                if waiter.error is not None:
                    raise waiter.error
                return

    def on_durable(
        self, offset: int, callback: Callback, on_error: ErrorCallback | None = None
    ) -> None:
        with self._lock:
            if offset >= self._durable_locked():
                self._check_writable_locked()
                self._check_offset_locked(offset)
                waiter = _Waiter(offset, callback, on_error)
                heapq.heappush(self._waiters, (offset, next(self._seq), waiter))
                self._callback_waiters += 1
                if not self._syncing:
                    self._request_locked()
                return
        callback()

    def sync_if_small(self, bytes_max: int) -> bool:
        """Run a round on this thread if none is running and at most ``bytes_max`` bytes
        wait for one. True when everything appended before the call is durable on return;
        False, having done nothing, when a round is running or more is waiting (the
        caller then waits with :meth:`on_durable`). Raises if the log has failed."""
        with self._lock:
            self._check_writable_locked()
            if self._durable_locked() >= self._next_offset:
                return True
            if self._syncing or self._appended_bytes - self._round_bytes > bytes_max:
                return False
            fired = self._sync_round_locked()
            failed = self._failed
        _run(fired)
        if failed is not None:
            raise failed
        return True

    def sync(self) -> int:
        while True:
            fired: _Fired = []
            with self._lock:
                self._check_writable_locked()
                if self._synced >= self._next_offset:
                    fired = self._release_waiters_locked()
                    durable = self._durable_locked()
                    break
                if self._syncing:
                    self._wait_locked()
                else:
                    fired = self._sync_round_locked()
            _run(fired)
        _run(fired)
        return durable

    def run_commit(self, *, timer: bool) -> None:
        """A round for the committer (see :class:`~conveyor.storage.committer.Committer`)."""
        fired: _Fired = []
        with self._lock:
            if timer:
                self._timer_armed = False
            else:
                self._queued = False
            if self._closed or self._failed is not None or self._syncing:
                return  # the running round re-arms what is left when it ends
            if self._synced < self._next_offset:
                fired = self._sync_round_locked()
            else:  # a roll's fsync may have covered them
                fired = self._release_waiters_locked()
        _run(fired)

    def _sync_round_locked(self) -> _Fired:
        """One fsync covering everything appended so far; the lock is released during it.

        Returns the waiters it satisfied (or failed) for :func:`_run` to call after the
        caller releases the lock."""
        assert not self._syncing and not self._closed
        if self._failed is not None:
            return self._fail_waiters_locked(self._failed, lambda w: True)
        seg = self._segments[-1]
        try:  # a duplicate, so that a truncate or close cannot close it under the fsync
            fd = os.dup(seg.require_fd())
        except OSError as exc:
            return self._fail_waiters_locked(
                StorageError(f"{self.path}: {exc}"), lambda w: w.callback is None
            )
        self._syncing = True
        target = self._next_offset
        self._round_bytes = self._appended_bytes
        epoch = self._epoch
        # everything below target lies inside the file's length as the last fsync left it
        # unless the length changed since: then this round's sync must be a full fsync
        resizes = seg.resizes
        sync_fn = self._fdatasync_fn if seg.length_synced else self._fsync_fn
        error: OSError | None = None
        self._lock.release()
        try:
            sync_fn(fd)
        except OSError as exc:
            error = exc
        finally:
            os.close(fd)
            self._lock.acquire()
            self._syncing = False
            self._notify_locked()
        if error is not None:
            return self._fail_waiters_locked(self._fail_locked(error), lambda w: True)
        seg.resizes_synced = max(seg.resizes_synced, resizes)
        self._rounds += 1
        if epoch == self._epoch and target > self._synced:
            self._synced = target
        fired = self._release_waiters_locked()
        if self._callback_waiters:
            self._request_locked()
        if self.policy == "interval" and self._synced < self._next_offset and not self._timer_armed:
            self._timer_armed = True
            self._get_committer().schedule(self, self._interval_s)
        return fired

    def _release_waiters_locked(self) -> _Fired:
        durable = self._durable_locked()
        fired: _Fired = []
        waiters = self._waiters
        while waiters and waiters[0][0] < durable:
            w = heapq.heappop(waiters)[2]
            w.done = True
            if w.callback is not None:
                self._callback_waiters -= 1
                fired.append((w, None))
        self._notify_locked()
        return fired

    def _fail_waiters_locked(self, exc: BaseException, which: Callable[[_Waiter], bool]) -> _Fired:
        fired: _Fired = []
        kept = []
        for entry in self._waiters:
            w = entry[2]
            if which(w):
                w.done = True
                w.error = exc
                if w.callback is not None:
                    self._callback_waiters -= 1
                    fired.append((w, exc))
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._waiters = kept
        self._notify_locked()
        return fired

    def _request_locked(self) -> None:
        if not self._queued:
            self._queued = True
            self._get_committer().request(self)

    def _get_committer(self) -> Committer:
        if self._committer is None:
            self._committer = default_committer()
        return self._committer

    def _fail_locked(self, exc: OSError) -> LogFailed:
        if self._failed is None:
            log.error("log %s failed: %s; it accepts no more writes", self.path, exc)
            failed = LogFailed(f"{self.path}: {exc}")
            failed.__cause__ = exc
            self._failed = failed
        return self._failed

    # ------------------------------------------------------------------ reads
    def read(self, offset: int) -> Record:
        with self._lock:
            self._check_open_locked()
            seg, i = self._locate_locked(offset)
            if seg is None or i is None:
                raise KeyError(offset)
            self._open_locked(seg)
            data = seg.read_frames(i, i + 1)
        try:
            rec, end = fmt.decode_frame(data, 0)
        except fmt.FormatError as exc:
            raise CorruptRecord(f"{seg.path}: offset {offset}: {exc}") from None
        if rec.offset != offset or end != len(data):
            raise CorruptRecord(f"{seg.path}: offset {offset} holds a frame of {rec.offset}")
        return rec

    def read_many(self, offsets: Sequence[int]) -> list[Record]:
        """The records at ``offsets``, in that order. Records near each other in one
        segment (less than ``bounds.read_gap_bytes`` apart, at most
        ``bounds.scan_chunk_bytes`` in all) come from one pread: a receive of a hundred
        messages makes a few reads, not a hundred."""
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        # (segment, bytes, [(slot in the answer, position in bytes, offset)])
        reads: list[tuple[Segment, bytes, list[tuple[int, int, int]]]] = []
        with self._lock:
            self._check_open_locked()
            run_seg: Segment | None = None
            first = last = prev = 0
            run: list[tuple[int, int, int]] = []
            for k in order:
                offset = offsets[k]
                seg, i = self._locate_locked(offset)
                if seg is None or i is None:
                    raise KeyError(offset)
                pos = seg.positions[i]
                if (
                    seg is not run_seg
                    or i < last
                    or pos - prev > bounds.read_gap_bytes
                    or pos - seg.positions[first] > bounds.scan_chunk_bytes
                ):
                    if run_seg is not None:
                        reads.append(self._read_run_locked(run_seg, first, last, run))
                    run_seg, first, run = seg, i, []
                last, prev = i, pos
                run.append((k, pos, offset))
            if run_seg is not None:
                reads.append(self._read_run_locked(run_seg, first, last, run))
        out: list[Record | None] = [None] * len(offsets)
        for seg, data, wanted in reads:
            base = wanted[0][1]
            try:
                records = fmt.decode_frames(
                    data, [pos - base for _, pos, _ in wanted], [off for _, _, off in wanted]
                )
            except fmt.FormatError as exc:
                raise CorruptRecord(f"{seg.path}: {exc}") from None
            for (k, _, _), rec in zip(wanted, records, strict=True):
                out[k] = rec
        return out  # type: ignore[return-value]  # every slot is filled above

    def _read_run_locked(
        self, seg: Segment, first: int, last: int, wanted: list[tuple[int, int, int]]
    ) -> tuple[Segment, bytes, list[tuple[int, int, int]]]:
        self._open_locked(seg)  # read before the next run's segment may close this fd
        return seg, seg.read_frames(first, last + 1), wanted

    def _locate_locked(self, offset: int) -> tuple[Segment | None, int | None]:
        k = bisect_right(self._bases, offset) - 1
        if k < 0:
            return None, None
        seg = self._segments[k]
        return seg, seg.index_of(offset)

    def scan(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        at = max(start, 0)
        while True:
            with self._lock:
                self._check_open_locked()
                stop = self._next_offset if end is None else min(end, self._next_offset)
                if at >= stop:
                    return
                found = self._chunk_locked(at, stop)
                if found is None:
                    return
                seg, i, j = found
                self._open_locked(seg)
                data = seg.read_frames(i, j)
                first_pos = seg.positions[i]
                rel = [p - first_pos for p in seg.positions[i:j]]
                expect = (
                    range(seg.base_offset + i, seg.base_offset + j)
                    if seg.offsets is None
                    else seg.offsets[i:j]
                )
            try:
                records = fmt.decode_frames(data, rel, expect)
            except fmt.FormatError as exc:
                raise CorruptRecord(f"{seg.path}: {exc}") from None
            yield from records
            at = expect[-1] + 1

    def _chunk_locked(self, at: int, stop: int) -> tuple[Segment, int, int] | None:
        """The frames to read next: segment, first and last+1 index; None if no record
        with at <= offset < stop is stored."""
        k = max(bisect_right(self._bases, at) - 1, 0)
        for seg in self._segments[k:]:
            if seg.base_offset >= stop:
                return None
            i = seg.lower_bound(at)
            if i < seg.count and seg.offset_at(i) < stop:
                j_bytes = bisect_left(seg.positions, seg.positions[i] + bounds.scan_chunk_bytes)
                j = max(i + 1, min(j_bytes, seg.lower_bound(stop)))
                return seg, i, j
        return None

    # ------------------------------------------------------------------ segments
    def segments(self) -> list[SegmentInfo]:
        with self._lock:
            self._check_open_locked()
            return [seg.info() for seg in self._segments]

    def _find_sealed_locked(self, base_offset: int) -> Segment:
        k = bisect_right(self._bases, base_offset) - 1
        if k < 0 or self._bases[k] != base_offset:
            raise KeyError(base_offset)
        seg = self._segments[k]
        if not seg.sealed:
            raise ValueError(f"segment {base_offset} is the active segment")
        return seg

    def delete_segment(self, base_offset: int) -> None:
        with self._maint:
            with self._lock:
                self._check_writable_locked()
                seg = self._find_sealed_locked(base_offset)
                self._remove_locked(seg)
            fsync_dir(self.path, self._fsync_fn)

    def _remove_locked(self, seg: Segment) -> None:
        k = self._segments.index(seg)
        del self._segments[k]
        del self._bases[k]
        self._forget_locked(seg)
        unlink_if_exists(seg.index_path)
        unlink_if_exists(seg.path)

    def rewrite_segment(self, base_offset: int, keep: Collection[int]) -> SegmentInfo:
        with self._maint:
            with self._lock:
                self._check_writable_locked()
                old = self._find_sealed_locked(base_offset)
                fd = os.dup(self._open_locked(old))
            try:
                new = self._write_compacted(old, fd, keep, old.end_offset)
            finally:
                os.close(fd)
            with self._lock:
                k = self._segments.index(old)
                self._segments[k] = new
                self._forget_locked(old)
                self._touch_locked(new)
            unlink_if_exists(old.index_path)
            unlink_if_exists(old.path)
            fsync_dir(self.path, self._fsync_fn)
            self._maybe_probe("rewrite.removed")
            return new.info()

    def _write_compacted(
        self, old: Segment, fd: int, keep: Collection[int], end_offset: int
    ) -> Segment:
        """Write a compacted copy of a sealed segment: the frames of ``keep`` (same bytes),
        fsynced, its index beside it, renamed into place. Returns it with an open fd; the
        caller removes the old file."""
        gen = old.generation + 1
        header = fmt.SegmentHeader(old.base_offset, gen, True, old.generation, end_offset)
        path = self.path / segment_name(old.base_offset, gen)
        tmp = path.with_name(path.name + TMP_SUFFIX)
        positions = _positions()
        offsets = _positions()
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            buf = bytearray(fmt.encode_segment_header(header))
            written = 0
            for offset in sorted(set(keep)):
                if offset >= end_offset:
                    break
                i = old.index_of(offset)
                if i is None:
                    continue
                start = old.positions[i]
                frame = pread_exact(fd, old.frame_end(i) - start, start)
                try:
                    got, _ = fmt.check_frame(frame, 0)
                except fmt.FormatError as exc:
                    raise CorruptRecord(f"{old.path}: offset {offset}: {exc}") from None
                if got != offset:
                    raise CorruptRecord(f"{old.path}: offset {offset} holds a frame of {got}")
                positions.append(written + len(buf))
                offsets.append(offset)
                buf += frame
                if len(buf) >= bounds.scan_chunk_bytes:
                    pwrite_all(out, buf, written)
                    written += len(buf)
                    buf.clear()
            pwrite_all(out, buf, written)
            size = written + len(buf)
            self._fsync_fn(out)
            self._maybe_probe("rewrite.written")
            dense = all(o == old.base_offset + k for k, o in enumerate(offsets))
            new = Segment(
                path,
                header,
                positions,
                None if dense else offsets,
                size,
                end_offset,
                sealed=True,
            )
            new.write_index(None)
            os.replace(tmp, path)
            fsync_dir(self.path, self._fsync_fn)
            self._maybe_probe("rewrite.renamed")
        except BaseException:
            os.close(out)
            unlink_if_exists(tmp)
            raise
        new.fd = out
        return new

    # ------------------------------------------------------------------ truncate, reset
    def truncate(self, next_offset: int) -> None:
        with self._maint:
            fired: _Fired = []
            with self._lock:
                self._check_writable_locked()
                if not 0 <= next_offset <= self._next_offset:
                    raise ValueError(
                        f"truncate to {next_offset}: the log ends at {self._next_offset}"
                    )
                if next_offset < self._next_offset:
                    self._epoch += 1
                    fired = self._fail_waiters_locked(
                        LogTruncated(f"truncated to {next_offset}"),
                        lambda w: w.offset >= next_offset,
                    )
                    try:
                        self._cut_locked(next_offset)
                    except OSError as exc:
                        raise self._fail_locked(exc) from exc
            _run(fired)
            self.sync()

    def _cut_locked(self, t: int) -> None:
        segs = self._segments
        while segs and segs[-1].base_offset >= t:
            self._remove_locked(segs[-1])
        self._maybe_probe("truncate.removed")
        active: Segment | None = None
        if segs and segs[-1].end_offset > t:
            seg = segs[-1]
            if not seg.compacted:
                self._open_locked(seg)
                self._lru.pop(seg, None)
                seg.cut(t)
                unlink_if_exists(seg.index_path)
                seg.sealed = False
                self._fsync_fn(seg.require_fd())
                seg.resizes_synced = seg.resizes
                active = seg
            else:
                fd = os.dup(self._open_locked(seg))
                try:
                    keep = [seg.offset_at(i) for i in range(seg.lower_bound(t))]
                    new = self._write_compacted(seg, fd, keep, t)
                finally:
                    os.close(fd)
                segs[-1] = new
                self._forget_locked(seg)
                self._touch_locked(new)
                unlink_if_exists(seg.index_path)
                unlink_if_exists(seg.path)
        if active is None:
            active = self._create_active_locked(t)
            segs.append(active)
            self._bases.append(t)
        fsync_dir(self.path, self._fsync_fn)
        self._next_offset = t
        self._synced = min(self._synced, t)

    def reset(self, next_offset: int) -> None:
        if not 0 <= next_offset <= fmt.I64_MAX:
            raise ValueError(f"reset to {next_offset}")
        with self._maint:
            with self._lock:
                self._check_writable_locked()
                self._epoch += 1
                fired = self._fail_waiters_locked(
                    LogTruncated(f"reset to {next_offset}"), lambda w: True
                )
                try:
                    while self._segments:
                        self._remove_locked(self._segments[-1])
                    fsync_dir(self.path, self._fsync_fn)
                    active = self._create_active_locked(next_offset)
                except OSError as exc:
                    raise self._fail_locked(exc) from exc
                self._segments.append(active)
                self._bases.append(next_offset)
                self._next_offset = self._synced = next_offset
            _run(fired)

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """fsync and release everything. Raises LogFailed if that last fsync fails (the
        log is closed anyway); closing a failed log only releases its files."""
        with self._maint:
            error: LogFailed | None = None
            with self._lock:
                if self._closed:
                    return
                while self._syncing:
                    self._wait_locked()
                if self._failed is None:
                    try:
                        active = self._segments[-1]
                        active.trim()
                        self._fsync_fn(active.require_fd())
                        (self.path / CLEAN_MARKER).write_bytes(b"")
                        fsync_dir(self.path, self._fsync_fn)
                        self._synced = self._next_offset
                    except OSError as exc:
                        error = self._fail_locked(exc)
                if self._failed is None:
                    fired = self._release_waiters_locked()
                else:
                    fired = self._fail_waiters_locked(self._failed, lambda w: True)
                self._closed = True
                for seg in self._segments:
                    seg.close()
                self._lru.clear()
                self._notify_locked()
            _run(fired)
            if error is not None:
                raise error

    def __enter__(self) -> FileLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _check_open_locked(self) -> None:
        if self._closed:
            raise LogClosed(f"{self.path} is closed")

    def _check_writable_locked(self) -> None:
        self._check_open_locked()
        if self._failed is not None:
            raise self._failed

    def _check_offset_locked(self, offset: int) -> None:
        if offset >= self._next_offset:
            raise ValueError(f"offset {offset} is not written yet (next is {self._next_offset})")

    def _open_locked(self, seg: Segment) -> int:
        """The segment's fd; sealed ones share an LRU of ``bounds.sealed_fds_open_max``."""
        fd = seg.open()
        if seg.sealed:
            self._touch_locked(seg)
        return fd

    def _touch_locked(self, seg: Segment) -> None:
        if seg.fd is None:
            return
        self._lru[seg] = None
        self._lru.move_to_end(seg)
        while len(self._lru) > bounds.sealed_fds_open_max:
            old, _ = self._lru.popitem(last=False)
            old.close()

    def _forget_locked(self, seg: Segment) -> None:
        self._lru.pop(seg, None)
        seg.close()

    def _maybe_probe(self, name: str) -> None:
        if self._probe is not None:
            self._probe(name)

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> RecoveryInfo:
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_dir(self.path.parent, self._fsync_fn)
        removed: list[str] = []
        corrupt: list[str] = []
        marker = self.path / CLEAN_MARKER
        clean = marker.exists()
        seg_files: dict[int, dict[int, Path]] = {}
        idx_files: dict[tuple[int, int], Path] = {}
        for entry in sorted(os.listdir(self.path)):
            p = self.path / entry
            if entry.endswith(TMP_SUFFIX):
                p.unlink()
                removed.append(entry)
                continue
            parsed = parse_name(entry)
            if parsed is None:
                continue
            base, gen, kind = parsed
            if kind == "seg":
                seg_files.setdefault(base, {})[gen] = p
            else:
                idx_files[(base, gen)] = p
        chosen: list[tuple[Path, fmt.SegmentHeader]] = []
        for base in sorted(seg_files):
            winner: tuple[Path, fmt.SegmentHeader] | None = None
            for gen in sorted(seg_files[base], reverse=True):
                p = seg_files[base][gen]
                if winner is not None:
                    p.unlink()
                    removed.append(p.name)
                    continue
                header = _header_of(p)
                if header is None or header.base_offset != base or header.generation != gen:
                    p.rename(p.with_name(p.name + CORRUPT_SUFFIX))
                    corrupt.append(p.name)
                    log.error("%s: segment header damaged; renamed %s", p, CORRUPT_SUFFIX)
                    continue
                winner = (p, header)
            if winner is not None:
                chosen.append(winner)
        keep_idx = {(h.base_offset, h.generation) for _, h in chosen[:-1]}
        for key, p in idx_files.items():
            if key not in keep_idx:
                p.unlink()
                removed.append(p.name)
        rebuilt = 0
        truncated = 0
        problem: str | None = None
        for n, (p, header) in enumerate(chosen):
            last = n == len(chosen) - 1
            if last and not header.compacted:
                seg, scan, cut = Segment.recover_active(p, header)
                problem = scan.problem
                if problem is not None:
                    truncated = cut
                    self._fsync_fn(seg.require_fd())
                    log.warning("%s: cut %d bytes at the tail: %s", p, truncated, problem)
                elif cut:
                    log.info("%s: cut %d bytes of preallocated zeros at the tail", p, cut)
            else:
                seg, found, was_rebuilt = Segment.load_sealed(p, header)
                if was_rebuilt:
                    rebuilt += 1
                    seg.write_index(None)
                if found is not None:
                    corrupt.append(f"{p.name}: {found}")
                    log.error("%s: damaged sealed segment, records after it lost: %s", p, found)
            if self._segments and self._segments[-1].end_offset > seg.base_offset:
                seg.close()
                for s in self._segments:
                    s.close()
                raise CorruptRecord(
                    f"{self.path}: segments overlap ({self._segments[-1].info()} and {seg.info()})"
                )
            self._segments.append(seg)
            self._bases.append(seg.base_offset)
        if not self._segments or self._segments[-1].sealed:
            base = self._segments[-1].end_offset if self._segments else 0
            active = self._create_active_locked(base)
            self._segments.append(active)
            self._bases.append(base)
        active = self._segments[-1]
        self._fsync_fn(active.require_fd())
        if clean:
            marker.unlink()
        fsync_dir(self.path, self._fsync_fn)
        self._next_offset = self._synced = active.end_offset
        info = RecoveryInfo(clean, truncated, problem, rebuilt, tuple(removed), tuple(corrupt))
        if removed or corrupt or truncated or rebuilt:
            log.info("recovered %s: %s", self.path, info)
        return info


def _header_of(path: Path) -> fmt.SegmentHeader | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_header(fd)
    except fmt.FormatError:
        return None
    finally:
        os.close(fd)


def _positions() -> array[int]:
    return array("q")


def _run(fired: _Fired) -> None:
    """Call the callbacks of satisfied or failed waiters, outside every lock."""
    for w, exc in fired:
        try:
            if exc is None:
                assert w.callback is not None
                w.callback()
            elif w.on_error is not None:
                w.on_error(exc)
            else:
                log.error("record %d will not become durable: %s", w.offset, exc)
        except Exception:
            log.exception("durability callback failed")
