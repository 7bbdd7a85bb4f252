"""One segment file of a log and its in-memory index.

The index maps an offset to the file position of its frame. It costs 8 bytes a record:
``positions`` is an ``array('q')`` whose i-th entry is where the i-th frame starts. In a
segment written by appends the offsets are dense (the i-th record has offset base + i),
so nothing else is kept. A compacted segment may have holes; it also keeps ``offsets``,
the i-th record's offset, and looks offsets up by bisection. A frame ends where the next
one starts (or at ``size_bytes`` for the last), so one ``pread`` reads one record.

A segment is *active* (the last of its log, appended to) or *sealed* (full, never
written again except by a rewrite). When a segment is sealed its index is written to
an index file beside it (format in :mod:`~conveyor.storage.format`), so opening a log
reads the index instead of scanning a sealed segment. The active segment is scanned on
open, every frame's checksum verified.

The active segment's file may be longer than its frames: its log may have written zeros
ahead of the appends (:meth:`Segment.preallocate`), so that a sync does not change the
file's size. ``size_bytes`` is where the frames end, ``file_bytes`` the file's length.
``resizes`` counts the changes of the length and ``resizes_synced`` is the count a
completed fsync covered: while they are equal, an fdatasync makes the appends durable.
:meth:`Segment.trim` cuts the zeros off before the segment is sealed or its log closed,
so a sealed file ends at its last frame. On open, the scan of the active segment takes
zeros from where a frame would start to the end of the file as the end of its data (not
damage) and cuts them off.

A :class:`Segment` does no locking; its log serialises access to it. Its file
descriptor is opened and closed by the log (sealed segments share a small LRU).
"""

from __future__ import annotations

import os
import re
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import NamedTuple

from conveyor.storage import bounds
from conveyor.storage import format as fmt
from conveyor.storage.errors import CorruptRecord
from conveyor.storage.fsutil import FsyncFn, pread_exact, pwrite_all, write_zeros
from conveyor.storage.record import Record, SegmentInfo

SEGMENT_SUFFIX = ".seg"
INDEX_SUFFIX = ".idx"
_NAME = re.compile(r"^(\d{20})-(\d+)\.(seg|idx)$")


def segment_name(base_offset: int, generation: int) -> str:
    return f"{base_offset:020d}-{generation}{SEGMENT_SUFFIX}"


def index_name(base_offset: int, generation: int) -> str:
    return f"{base_offset:020d}-{generation}{INDEX_SUFFIX}"


def parse_name(name: str) -> tuple[int, int, str] | None:
    """(base offset, generation, "seg" or "idx") for a log file's name, else None."""
    m = _NAME.match(name)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)


_NONZERO = re.compile(rb"[^\x00]")


class ScanResult(NamedTuple):
    positions: array[int]
    offsets: array[int] | None  # None when dense
    valid_bytes: int  # the file up to here holds only valid frames
    problem: str | None  # why the scan stopped before the end of the file (None: it did
    # not, or only zeros follow valid_bytes in a scan with zero_tail)


def scan_file(
    fd: int, header: fmt.SegmentHeader, file_bytes: int, *, zero_tail: bool = False
) -> ScanResult:
    """Verify every frame of a segment file; stop at the first one that is torn, fails
    its checksum, or breaks the offset rule (dense from the base, or for a compacted
    segment increasing and below its end offset).

    With ``zero_tail`` (the active segment, which may be preallocated), a length field of
    zeros followed by nothing but zeros to the end of the file ends the scan without a
    problem; zeros followed by other bytes are a torn write, reported as such."""
    base = header.base_offset
    positions = array("q")
    offsets = array("q")
    dense = True
    pos = fmt.SEGMENT_HEADER_BYTES
    buf = b""
    buf_at = pos  # file position of buf[0]
    fresh = False  # buf was read at pos just now
    problem: str | None = None
    last = base - 1
    while pos < file_bytes:
        rel = pos - buf_at
        try:
            offset, end = fmt.check_frame(buf, rel)
        except fmt.TornFrame as exc:
            if not fresh:
                want = max(bounds.recovery_read_bytes, fmt.FRAME_BYTES_MAX)
                buf = pread_exact(fd, min(want, file_bytes - pos), pos)
                buf_at = pos
                fresh = True
                continue
            # read just now, and as much as any frame takes
            problem = f"frame at {pos}: torn, {exc} (file ends at {file_bytes})"
        except fmt.BadFrame as exc:
            problem = f"frame at {pos}: {exc}"
        if problem is not None:
            if zero_tail and _NONZERO.search(buf, rel, rel + fmt.FRAME_LENGTH_FIELD_BYTES) is None:
                at = first_nonzero(fd, buf, rel, buf_at, file_bytes)
                problem = None if at is None else f"frame at {pos}: zeros, then data at {at}"
            break
        if header.compacted:
            if offset <= last or offset >= header.end_offset:
                problem = f"frame at {pos}: offset {offset} out of order"
                break
        elif offset != last + 1:
            problem = f"frame at {pos}: offset {offset} where {last + 1} was expected"
            break
        if offset != base + len(positions):
            dense = False
        positions.append(pos)
        offsets.append(offset)
        last = offset
        fresh = False
        pos = buf_at + end
    return ScanResult(positions, None if dense else offsets, pos, problem)


def first_nonzero(fd: int, buf: bytes, rel: int, buf_at: int, file_bytes: int) -> int | None:
    """The file position of the first byte that is not zero from ``buf_at + rel`` (which
    is in ``buf``, read at ``buf_at``) to the end of the file; None if there is none."""
    m = _NONZERO.search(buf, rel)
    if m is not None:
        return buf_at + m.start()
    pos = buf_at + len(buf)
    while pos < file_bytes:
        more = pread_exact(fd, min(bounds.recovery_read_bytes, file_bytes - pos), pos)
        if not more:  # pragma: no cover - the file shrank under the scan
            return None
        m = _NONZERO.search(more)
        if m is not None:
            return pos + m.start()
        pos += len(more)
    return None


def read_header(fd: int) -> fmt.SegmentHeader:
    return fmt.decode_segment_header(pread_exact(fd, fmt.SEGMENT_HEADER_BYTES, 0))


class Segment:
    """One segment file: its header, where each frame is, how far it is valid."""

    __slots__ = (
        "base_offset",
        "compacted",
        "end_offset",
        "fd",
        "file_bytes",
        "generation",
        "header",
        "offsets",
        "path",
        "positions",
        "preallocating",
        "resizes",
        "resizes_synced",
        "sealed",
        "size_bytes",
    )

    def __init__(
        self,
        path: Path,
        header: fmt.SegmentHeader,
        positions: array[int],
        offsets: array[int] | None,
        size_bytes: int,
        end_offset: int,
        *,
        sealed: bool,
    ) -> None:
        self.path = path
        self.header = header
        self.base_offset = header.base_offset
        self.generation = header.generation
        self.compacted = header.compacted
        self.positions = positions
        self.offsets = offsets
        self.size_bytes = size_bytes
        self.end_offset = end_offset
        self.sealed = sealed
        self.fd: int | None = None
        # the file's length: size_bytes plus the zeros written ahead (active only). The
        # caller makes the file as it is now durable (it was created, cut or scanned).
        self.file_bytes = size_bytes
        self.resizes = 0  # changes of the file's length
        self.resizes_synced = 0  # how many of them a completed fsync covered
        self.preallocating = True  # False once writing zeros ahead failed (disk full)
        self.check()

    # ------------------------------------------------------------------ invariants
    def check(self) -> None:
        n = len(self.positions)
        assert self.offsets is None or len(self.offsets) == n
        assert self.size_bytes >= fmt.SEGMENT_HEADER_BYTES
        assert n == 0 or self.positions[-1] < self.size_bytes
        assert n == 0 or self.positions[0] == fmt.SEGMENT_HEADER_BYTES
        if self.offsets is None:
            assert self.end_offset >= self.base_offset + n, (self.end_offset, self.base_offset, n)
            if not self.compacted:
                assert self.end_offset == self.base_offset + n
        elif n:
            assert self.base_offset <= self.offsets[0] and self.offsets[-1] < self.end_offset
        assert self.sealed or not self.compacted, "appends go to plain segments only"
        assert self.file_bytes >= self.size_bytes
        assert not self.sealed or self.file_bytes == self.size_bytes, "a sealed file is trimmed"
        assert self.resizes_synced <= self.resizes

    @property
    def count(self) -> int:
        return len(self.positions)

    @property
    def index_path(self) -> Path:
        return self.path.with_name(index_name(self.base_offset, self.generation))

    # ------------------------------------------------------------------ lookups
    def offset_at(self, i: int) -> int:
        return self.base_offset + i if self.offsets is None else self.offsets[i]

    def index_of(self, offset: int) -> int | None:
        """The position in this segment of record ``offset``, None if not stored."""
        if self.offsets is None:
            i = offset - self.base_offset
            return i if 0 <= i < len(self.positions) else None
        i = bisect_left(self.offsets, offset)
        return i if i < len(self.offsets) and self.offsets[i] == offset else None

    def lower_bound(self, offset: int) -> int:
        """The position of the first record with an offset >= ``offset``."""
        if self.offsets is None:
            return min(max(offset - self.base_offset, 0), len(self.positions))
        return bisect_left(self.offsets, offset)

    def frame_end(self, i: int) -> int:
        return self.positions[i + 1] if i + 1 < len(self.positions) else self.size_bytes

    def first_offset(self) -> int | None:
        return self.offset_at(0) if self.positions else None

    def info(self) -> SegmentInfo:
        return SegmentInfo(
            self.base_offset,
            self.end_offset,
            len(self.positions),
            self.size_bytes,
            self.sealed,
            self.path,
        )

    def index_data(self) -> fmt.IndexData:
        return fmt.IndexData(
            self.base_offset,
            self.end_offset,
            self.size_bytes,
            self.generation,
            self.positions,
            self.offsets,
        )

    # ------------------------------------------------------------------ I/O
    def require_fd(self) -> int:
        assert self.fd is not None, f"{self.path} is not open"
        return self.fd

    def open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def read_frames(self, i: int, j: int) -> bytes:
        """The bytes of frames i..j-1 (one pread)."""
        assert 0 <= i < j <= len(self.positions)
        start = self.positions[i]
        end = self.frame_end(j - 1)
        data = pread_exact(self.require_fd(), end - start, start)
        if len(data) != end - start:
            raise CorruptRecord(f"{self.path}: file ends at {start + len(data)}, expected {end}")
        return data

    def read(self, i: int) -> Record:
        data = self.read_frames(i, i + 1)
        offset = self.offset_at(i)
        try:
            rec, end = fmt.decode_frame(data, 0)
        except fmt.FormatError as exc:
            raise CorruptRecord(f"{self.path}: offset {offset}: {exc}") from None
        if rec.offset != offset or end != len(data):
            raise CorruptRecord(f"{self.path}: index says offset {offset}, frame says {rec.offset}")
        return rec

    @property
    def length_synced(self) -> bool:
        """No change of the file's length since the last completed fsync: an fdatasync
        makes what was written since durable."""
        return self.resizes == self.resizes_synced

    def append(self, data: bytes, sizes: list[int]) -> None:
        """Write frames (already encoded, dense offsets from ``end_offset``) at the end.

        On an error the file may hold part of ``data``: the caller cuts it with
        :meth:`cut_bytes` (the index is unchanged)."""
        assert not self.sealed and self.offsets is None
        assert sum(sizes) == len(data)
        pos = self.size_bytes
        pwrite_all(self.require_fd(), data, pos)
        positions = self.positions
        for size in sizes:
            positions.append(pos)
            pos += size
        self.size_bytes = pos
        self.end_offset += len(sizes)
        if pos > self.file_bytes:
            self.file_bytes = pos
            self.resizes += 1

    def preallocate(self, data_end: int, file_bytes: int) -> OSError | None:
        """Before a write up to ``data_end`` (at or past the file's end), make the file
        ``file_bytes`` long: zeros from ``data_end`` (written, see
        :func:`~conveyor.storage.fsutil.write_zeros`), the write fills the rest. The
        appends after it write over the zeros without changing the file's length. The
        caller fsyncs the file once after this (``length_synced`` is False until then).

        Returns the error if the zeros could not be written (a full disk): the file is cut
        back to its length before, and the caller goes on without. Raises OSError only if
        that cut fails too."""
        assert not self.sealed and self.size_bytes <= self.file_bytes <= data_end < file_bytes
        fd = self.require_fd()
        self.resizes += 1  # counted first: on an error it may have changed and changed back
        try:
            write_zeros(fd, data_end, file_bytes)
        except OSError as exc:
            os.ftruncate(fd, self.file_bytes)
            return exc
        self.file_bytes = file_bytes
        return None

    def trim(self) -> None:
        """Cut the zeros written ahead off: the file ends at its last frame (before the
        segment is sealed, and when its log is closed)."""
        if self.file_bytes != self.size_bytes:
            os.ftruncate(self.require_fd(), self.size_bytes)
            self.file_bytes = self.size_bytes
            self.resizes += 1

    def cut_bytes(self, size_bytes: int) -> None:
        """Cut the file back to ``size_bytes`` (after a failed write; the index is
        unchanged). The zeros written ahead go too."""
        self.resizes += 1  # counted first: the cut may have happened if it raises
        os.ftruncate(self.require_fd(), size_bytes)
        self.file_bytes = size_bytes

    def cut(self, offset: int) -> None:
        """Drop the records with an offset >= ``offset`` from a plain segment."""
        assert not self.compacted and self.offsets is None
        i = self.lower_bound(offset)
        size = self.positions[i] if i < len(self.positions) else self.size_bytes
        self.resizes += 1
        os.ftruncate(self.require_fd(), size)
        del self.positions[i:]
        self.size_bytes = self.file_bytes = size
        self.end_offset = self.base_offset + i

    def write_index(self, fsync_fn: FsyncFn | None) -> None:
        """Write the index file (``fsync_fn`` None: no fsync; a lost or damaged index is
        detected by its CRC and size and rebuilt on open)."""
        data = fmt.encode_index(self.index_data())
        fd = os.open(self.index_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            pwrite_all(fd, data, 0)
            if fsync_fn is not None:
                fsync_fn(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load_sealed(cls, path: Path, header: fmt.SegmentHeader) -> tuple[Segment, str | None, bool]:
        """Open a sealed segment from its index, or by a scan if the index is missing or
        does not match. Returns (segment, the problem a scan found, index rebuilt)."""
        fd = os.open(path, os.O_RDWR)
        try:
            file_bytes = os.fstat(fd).st_size
            idx = _load_index(path.with_name(index_name(header.base_offset, header.generation)))
            if (
                idx is not None
                and idx.base_offset == header.base_offset
                and idx.generation == header.generation
                and idx.data_bytes == file_bytes
                and _index_plausible(idx, header)
            ):
                seg = cls(
                    path,
                    header,
                    idx.positions,
                    idx.offsets,
                    file_bytes,
                    idx.end_offset,
                    sealed=True,
                )
                return seg, None, False
            scan = scan_file(fd, header, file_bytes)
        finally:
            os.close(fd)
        seg = cls._from_scan(path, header, scan, sealed=True)
        return seg, scan.problem, True

    @classmethod
    def recover_active(
        cls, path: Path, header: fmt.SegmentHeader
    ) -> tuple[Segment, ScanResult, int]:
        """Scan the active segment and cut it after its last valid frame: a torn or
        corrupt tail (``scan.problem`` says why) or zeros written ahead (no problem).

        Returns (segment, the scan, bytes cut). The segment's fd is left open."""
        assert not header.compacted
        fd = os.open(path, os.O_RDWR)
        try:
            file_bytes = os.fstat(fd).st_size
            scan = scan_file(fd, header, file_bytes, zero_tail=True)
            if scan.valid_bytes < file_bytes:
                os.ftruncate(fd, scan.valid_bytes)
            seg = cls._from_scan(path, header, scan, sealed=False)
        except BaseException:
            os.close(fd)
            raise
        seg.fd = fd
        return seg, scan, file_bytes - scan.valid_bytes

    @classmethod
    def _from_scan(
        cls, path: Path, header: fmt.SegmentHeader, scan: ScanResult, *, sealed: bool
    ) -> Segment:
        n = len(scan.positions)
        if header.compacted:
            end = header.end_offset
        elif scan.offsets is None:
            end = header.base_offset + n
        else:  # pragma: no cover - scan_file keeps plain segments dense
            raise AssertionError("a plain segment with holes")
        return cls(path, header, scan.positions, scan.offsets, scan.valid_bytes, end, sealed=sealed)


def _load_index(path: Path) -> fmt.IndexData | None:
    """Read an index file straight into its arrays (no intermediate copy: a million
    records cost 8 MB, not 16); None if it is missing or does not verify."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with f:
        try:
            head = f.read(fmt.INDEX_HEADER_BYTES)
            h = fmt.decode_index_header(head)
            if os.fstat(f.fileno()).st_size != h.file_bytes:
                return None
            arrays = []
            for _ in range(2 if h.sparse else 1):
                a = array("q", bytes(8)) * h.records
                if f.readinto(memoryview(a).cast("B")) != 8 * h.records:
                    return None
                arrays.append(a)
            fmt.check_index_crc(head, arrays, f.read(fmt.INDEX_TRAILER_BYTES))
        except fmt.FormatError:
            return None
    positions = fmt.from_le(arrays[0])
    offsets = fmt.from_le(arrays[1]) if h.sparse else None
    return fmt.IndexData(
        h.base_offset, h.end_offset, h.data_bytes, h.generation, positions, offsets
    )


def _index_plausible(idx: fmt.IndexData, header: fmt.SegmentHeader) -> bool:
    """Cheap checks beyond the CRC: positions increase inside the file, the offsets fit."""
    pos, n = idx.positions, len(idx.positions)
    if n == 0:
        return idx.end_offset >= header.base_offset and (
            not header.compacted or idx.end_offset <= header.end_offset
        )
    if pos[0] != fmt.SEGMENT_HEADER_BYTES or pos[-1] >= idx.data_bytes:
        return False
    if idx.offsets is None:
        return idx.end_offset == header.base_offset + n or (
            header.compacted and idx.end_offset >= header.base_offset + n
        )
    return header.base_offset <= idx.offsets[0] and idx.offsets[-1] < idx.end_offset


def create_file(path: Path, header: fmt.SegmentHeader, fsync_fn: FsyncFn) -> int:
    """Create a segment file holding only its header, durably (temp file, fsync,
    rename; the caller fsyncs the directory). Returns an fd open on it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pwrite_all(fd, fmt.encode_segment_header(header), 0)
        fsync_fn(fd)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        raise
    return fd
