"""The on-disk format of a partition log: segment files, index files, checkpoints.

Pure functions from values to bytes and back; the file I/O lives in
:mod:`~conveyor.storage.segment` and :mod:`~conveyor.storage.checkpoint`. Every integer is
little-endian; every checksum is CRC32C (Castagnoli, as in iSCSI/ext4), computed with
the ``crc32c`` package.

A log is a directory::

    00000000000000000000-0.seg    segment: base offset (20 digits), generation
    00000000000000000000-0.idx    its index, written when the segment is sealed
    00000000000000065536-0.seg    the active (last) segment, appended to
    *.tmp                         a file being written; removed on open
    CLEAN                         present only while the log is closed cleanly

Segment file
------------
A 40-byte header, then record frames back to back, nothing between them. The active
segment of an open log (or of one that crashed) may go on with zeros after its last
frame: space written ahead of the appends (see :mod:`~conveyor.storage.file_log`). A
sealed segment, and every segment of a log closed cleanly, ends at its last frame::

    at  size  field
     0     4  magic b"CVSG"
     4     2  segment format version (u16), 1
     6     2  flags (u16): bit 0 = compacted (written by rewrite_segment)
     8     8  base offset (i64): no record in the file has a lower offset
    16     4  generation (u32): 0 for a segment written by appends; a rewrite of a
              segment writes generation + 1 under the same base offset
    20     4  replaces generation (u32): the generation of the file with the same
              base offset that this compacted file replaces; 0 when not compacted
    24     8  end offset (i64): compacted only, one past the last offset of the range
              the file covers (its last records may be gone); -1 when not compacted,
              where it is one past the last record
    32     4  reserved, 0
    36     4  CRC32C of bytes 0..36

In a segment that is not compacted the offsets are dense: the i-th frame holds offset
base + i. In a compacted one they only increase.

Record frame
------------
28 bytes, then the payload::

    at  size  field
     0     4  length (u32): the bytes after this field, 24 + len(payload)
     4     4  CRC32C of bytes 8 .. 4 + length (everything after the CRC)
     8     1  record format version (u8), 1
     9     1  type (u8), the caller's
    10     2  reserved, 0
    12     8  offset (i64)
    20     8  ts_ms (i64): the writer's clock, milliseconds since the Unix epoch
    28     n  payload, n <= limits.record_bytes_max

A frame is valid when its length is in bounds, the whole frame is present and the CRC
and version match. Recovery keeps the frames before the first invalid one. A frame never
starts with four zero bytes (its length is at least 24), so in the active segment zeros
where a frame would start, and only zeros from there to the end of the file, are where
the written data ends, not damage; zeros followed by anything else are a torn write.

Index file
----------
Written beside a segment when it is sealed so that opening does not scan it::

    at  size  field
     0     4  magic b"CVIX"
     4     2  index format version (u16), 1
     6     2  flags (u16): bit 0 = sparse (the offsets array is present)
     8     8  base offset (i64)
    16     8  end offset (i64)
    24     8  record count n (i64)
    32     8  size of the segment file this index describes (i64)
    40     4  generation of that segment (u32)
    44     4  reserved, 0
    48    8n  file position of each frame (i64 each)
     .    8n  offset of each frame (i64 each; sparse only)
     .     4  CRC32C of everything before it

An index is used only if its CRC is right and its base, generation and size match the
segment file; otherwise the segment is scanned and the index written again.

Checkpoint file
---------------
``<sequence, 20 digits>.ckpt``::

    at  size  field
     0     4  magic b"CVCK"
     4     2  checkpoint format version (u16), 1
     6     2  reserved, 0
     8     8  offset (i64): the caller's (the last offset the snapshot covers)
    16     8  data length n (i64)
    24     4  CRC32C of the data
    28     4  CRC32C of bytes 0..28
    32     n  data
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from crc32c import crc32c

from conveyor import limits
from conveyor.storage import bounds
from conveyor.storage.record import Record

SEGMENT_MAGIC = b"CVSG"
INDEX_MAGIC = b"CVIX"
CHECKPOINT_MAGIC = b"CVCK"
SEGMENT_FORMAT_VERSION = 1
RECORD_FORMAT_VERSION = 1
INDEX_FORMAT_VERSION = 1
CHECKPOINT_FORMAT_VERSION = 1

SEGMENT_FLAG_COMPACTED = 0x1
INDEX_FLAG_SPARSE = 0x1

TYPE_MAX = 255
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
U32_MAX = (1 << 32) - 1

_SEGMENT_HEADER = struct.Struct("<4sHHqIIqII")
_SEGMENT_HEADER_CRC_AT = 36
SEGMENT_HEADER_BYTES = 40
assert _SEGMENT_HEADER.size == SEGMENT_HEADER_BYTES

_FRAME_PREFIX = struct.Struct("<II")  # length, crc
_FRAME_BODY = struct.Struct("<BBHqq")  # version, type, reserved, offset, ts_ms
FRAME_HEADER_BYTES = 28
FRAME_LENGTH_FIELD_BYTES = 4
FRAME_LENGTH_MIN = 4 + _FRAME_BODY.size  # the CRC and the fixed fields, no payload
FRAME_LENGTH_MAX = FRAME_LENGTH_MIN + limits.record_bytes_max
FRAME_BYTES_MAX = FRAME_LENGTH_FIELD_BYTES + FRAME_LENGTH_MAX
assert _FRAME_PREFIX.size + _FRAME_BODY.size == FRAME_HEADER_BYTES
assert FRAME_LENGTH_FIELD_BYTES + FRAME_LENGTH_MIN == FRAME_HEADER_BYTES
assert FRAME_LENGTH_MIN > 0  # a length field of zeros starts no frame: see the docstring
assert bounds.recovery_read_bytes >= FRAME_BYTES_MAX  # a frame fits in one recovery read

_INDEX_HEADER = struct.Struct("<4sHHqqqqII")
INDEX_HEADER_BYTES = 48
INDEX_TRAILER_BYTES = 4
assert _INDEX_HEADER.size == INDEX_HEADER_BYTES

_CHECKPOINT_HEADER = struct.Struct("<4sHHqqII")
_CHECKPOINT_HEADER_CRC_AT = 28
CHECKPOINT_HEADER_BYTES = 32
assert _CHECKPOINT_HEADER.size == CHECKPOINT_HEADER_BYTES

_U32 = struct.Struct("<I")
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class FormatError(ValueError):
    """Bytes that are not what the format says."""


class TornFrame(FormatError):
    """The bytes end inside a frame: a write that did not complete."""


class BadFrame(FormatError):
    """A frame whose length, checksum or version is wrong."""


# --- segment header -------------------------------------------------------------------
class SegmentHeader(NamedTuple):
    base_offset: int
    generation: int = 0
    compacted: bool = False
    replaces_generation: int = 0
    end_offset: int = -1  # compacted only: one past the range the file covers


def encode_segment_header(h: SegmentHeader) -> bytes:
    assert 0 <= h.base_offset <= I64_MAX, h
    assert 0 <= h.generation <= U32_MAX and 0 <= h.replaces_generation <= U32_MAX, h
    if h.compacted:
        assert h.generation > h.replaces_generation, h
        assert h.end_offset >= h.base_offset, h
    else:
        assert h.replaces_generation == 0 and h.end_offset == -1, h
    flags = SEGMENT_FLAG_COMPACTED if h.compacted else 0
    head = _SEGMENT_HEADER.pack(
        SEGMENT_MAGIC,
        SEGMENT_FORMAT_VERSION,
        flags,
        h.base_offset,
        h.generation,
        h.replaces_generation,
        h.end_offset,
        0,
        0,
    )[:_SEGMENT_HEADER_CRC_AT]
    out = head + _U32.pack(crc32c(head))
    assert len(out) == SEGMENT_HEADER_BYTES
    return out


def decode_segment_header(buf: bytes) -> SegmentHeader:
    if len(buf) < SEGMENT_HEADER_BYTES:
        raise FormatError(f"segment header: {len(buf)} of {SEGMENT_HEADER_BYTES} bytes")
    magic, version, flags, base, gen, replaces, end, _reserved, crc = _SEGMENT_HEADER.unpack_from(
        buf, 0
    )
    if magic != SEGMENT_MAGIC:
        raise FormatError(f"segment header: bad magic {magic!r}")
    if crc != crc32c(buf[:_SEGMENT_HEADER_CRC_AT]):
        raise FormatError("segment header: bad CRC")
    if version != SEGMENT_FORMAT_VERSION:
        raise FormatError(f"segment header: unknown format version {version}")
    compacted = bool(flags & SEGMENT_FLAG_COMPACTED)
    if base < 0 or (compacted and (end < base or gen <= replaces)):
        raise FormatError("segment header: inconsistent fields")
    return SegmentHeader(base, gen, compacted, replaces, end if compacted else -1)


# --- record frames --------------------------------------------------------------------
def frame_size(payload_bytes: int) -> int:
    """Bytes a record with a payload of ``payload_bytes`` takes in a segment."""
    return FRAME_HEADER_BYTES + payload_bytes


def encode_frame(offset: int, rtype: int, ts_ms: int, payload: bytes) -> bytes:
    """One record frame. The caller has checked the ranges (see :func:`check_fields`)."""
    body = _FRAME_BODY.pack(RECORD_FORMAT_VERSION, rtype, 0, offset, ts_ms)
    crc = crc32c(payload, crc32c(body))
    return _FRAME_PREFIX.pack(FRAME_LENGTH_MIN + len(payload), crc) + body + payload


def encode_frames(
    first: int, items: Sequence[tuple[int, int, bytes | bytearray | memoryview]]
) -> tuple[bytes, list[int]]:
    """The frames of ``items`` (type, ts_ms, payload) at offsets ``first``, ``first + 1``,
    ...: their bytes, joined with one copy of each payload, and each frame's size. The
    caller has checked the fields (:func:`check_fields`)."""
    parts: list[bytes | bytearray | memoryview] = []
    sizes: list[int] = []
    pack_body, pack_prefix = _FRAME_BODY.pack, _FRAME_PREFIX.pack
    offset = first
    for rtype, ts_ms, payload in items:
        body = pack_body(RECORD_FORMAT_VERSION, rtype, 0, offset, ts_ms)
        length = FRAME_LENGTH_MIN + len(payload)
        parts.append(pack_prefix(length, crc32c(payload, crc32c(body))))
        parts.append(body)
        parts.append(payload)
        sizes.append(FRAME_LENGTH_FIELD_BYTES + length)
        offset += 1
    return b"".join(parts), sizes


def check_fields(rtype: int, ts_ms: int, payload_bytes: int) -> str | None:
    """Why a record cannot be framed, or None if it can."""
    if not 0 <= rtype <= TYPE_MAX:
        return f"record type {rtype} is not in 0..{TYPE_MAX}"
    if not I64_MIN <= ts_ms <= I64_MAX:
        return f"ts_ms {ts_ms} does not fit 64 bits"
    if payload_bytes > limits.record_bytes_max:
        return f"payload of {payload_bytes} bytes is above {limits.record_bytes_max}"
    return None


def frame_end(buf: bytes | bytearray | memoryview, pos: int) -> int:
    """Where the frame at ``pos`` ends, from its length field alone.

    Raises :class:`TornFrame` if the length field itself is cut, :class:`BadFrame` if
    the length is out of bounds. Does not look at the rest of the frame."""
    if pos + FRAME_LENGTH_FIELD_BYTES > len(buf):
        raise TornFrame("length field cut")
    length: int = _U32.unpack_from(buf, pos)[0]
    if not FRAME_LENGTH_MIN <= length <= FRAME_LENGTH_MAX:
        raise BadFrame(f"length {length} out of bounds")
    return pos + FRAME_LENGTH_FIELD_BYTES + length


def check_frame(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Verify the frame at ``pos``; return (its offset, where it ends). No copy made."""
    end = frame_end(buf, pos)
    if end > len(buf):
        raise TornFrame(f"{len(buf) - pos} of {end - pos} bytes present")
    (crc,) = _U32.unpack_from(buf, pos + 4)
    view = memoryview(buf)[pos + 8 : end]
    if crc32c(view) != crc:
        raise BadFrame("CRC mismatch")
    version, _rtype, _reserved, offset, _ts = _FRAME_BODY.unpack_from(buf, pos + 8)
    if version != RECORD_FORMAT_VERSION:
        raise BadFrame(f"unknown record format version {version}")
    return offset, end


def decode_frame(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[Record, int]:
    """Verify and decode the frame at ``pos``; return (the record, where it ends)."""
    offset, end = check_frame(buf, pos)
    _version, rtype, _reserved, _offset, ts_ms = _FRAME_BODY.unpack_from(buf, pos + 8)
    return Record(offset, rtype, ts_ms, bytes(buf[pos + FRAME_HEADER_BYTES : end])), end


_FRAME_HEADER = struct.Struct("<IIBBHqq")  # the 28 fixed bytes in one unpack
assert _FRAME_HEADER.size == FRAME_HEADER_BYTES


def decode_frames(buf: bytes, positions: Sequence[int], offsets: Sequence[int]) -> list[Record]:
    """Verify and decode the frames starting at ``positions`` in ``buf``, which must hold
    the records ``offsets`` (the index's view). The fast path of a scan.

    Raises :class:`FormatError` naming the first offset that does not verify."""
    out: list[Record] = []
    append = out.append
    view = memoryview(buf)
    unpack = _FRAME_HEADER.unpack_from
    new = tuple.__new__  # Record(...) runs the NamedTuple's __new__, twice the cost
    size = len(buf)
    for pos, expected in zip(positions, offsets, strict=True):
        if pos + FRAME_HEADER_BYTES > size:
            raise TornFrame(f"offset {expected}: header cut")
        length, crc, version, rtype, _r, offset, ts_ms = unpack(buf, pos)
        end = pos + FRAME_LENGTH_FIELD_BYTES + length
        if not FRAME_LENGTH_MIN <= length <= FRAME_LENGTH_MAX or end > size:
            raise BadFrame(f"offset {expected}: length {length} out of bounds")
        if crc32c(view[pos + 8 : end]) != crc:
            raise BadFrame(f"offset {expected}: CRC mismatch")
        if version != RECORD_FORMAT_VERSION or offset != expected:
            raise BadFrame(f"offset {expected}: version {version}, offset {offset} in the frame")
        append(new(Record, (offset, rtype, ts_ms, buf[pos + FRAME_HEADER_BYTES : end])))
    return out


class FrameView(NamedTuple):
    """A frame's fields without checking it (for :mod:`~conveyor.storage.inspect`)."""

    length: int
    crc: int
    version: int
    type: int
    offset: int
    ts_ms: int


def peek_frame(buf: bytes | bytearray | memoryview, pos: int) -> FrameView:
    """The fixed fields of the frame at ``pos``, unverified."""
    if pos + FRAME_HEADER_BYTES > len(buf):
        raise TornFrame("header cut")
    length, crc = _FRAME_PREFIX.unpack_from(buf, pos)
    version, rtype, _reserved, offset, ts_ms = _FRAME_BODY.unpack_from(buf, pos + 8)
    return FrameView(length, crc, version, rtype, offset, ts_ms)


# --- index files ----------------------------------------------------------------------
class IndexData(NamedTuple):
    base_offset: int
    end_offset: int
    data_bytes: int  # size of the segment file described
    generation: int
    positions: array[int]
    offsets: array[int] | None  # None: dense, record i has offset base + i


def _le_bytes(a: array[int]) -> bytes:
    if _BIG_ENDIAN_HOST:
        a = array("q", a)
        a.byteswap()
    return a.tobytes()


def _le_array(buf: bytes | memoryview) -> array[int]:
    a = array("q")
    a.frombytes(buf)
    if _BIG_ENDIAN_HOST:
        a.byteswap()
    return a


def encode_index(idx: IndexData) -> bytes:
    n = len(idx.positions)
    assert idx.offsets is None or len(idx.offsets) == n
    flags = INDEX_FLAG_SPARSE if idx.offsets is not None else 0
    parts = [
        _INDEX_HEADER.pack(
            INDEX_MAGIC,
            INDEX_FORMAT_VERSION,
            flags,
            idx.base_offset,
            idx.end_offset,
            n,
            idx.data_bytes,
            idx.generation,
            0,
        ),
        _le_bytes(idx.positions),
    ]
    if idx.offsets is not None:
        parts.append(_le_bytes(idx.offsets))
    body = b"".join(parts)
    return body + _U32.pack(crc32c(body))


class IndexHeader(NamedTuple):
    base_offset: int
    end_offset: int
    records: int
    data_bytes: int
    generation: int
    sparse: bool

    @property
    def file_bytes(self) -> int:
        """The size the whole index file must have."""
        arrays = 2 if self.sparse else 1
        return INDEX_HEADER_BYTES + 8 * self.records * arrays + INDEX_TRAILER_BYTES


def decode_index_header(buf: bytes) -> IndexHeader:
    if len(buf) < INDEX_HEADER_BYTES:
        raise FormatError("index: too short")
    magic, version, flags, base, end, n, data_bytes, gen, _r = _INDEX_HEADER.unpack_from(buf, 0)
    if magic != INDEX_MAGIC:
        raise FormatError(f"index: bad magic {magic!r}")
    if version != INDEX_FORMAT_VERSION:
        raise FormatError(f"index: unknown format version {version}")
    if n < 0:
        raise FormatError("index: negative record count")
    return IndexHeader(base, end, n, data_bytes, gen, bool(flags & INDEX_FLAG_SPARSE))


def check_index_crc(head: bytes, arrays: Sequence[array[int]], trailer: bytes) -> None:
    """Verify the CRC of an index read in parts: header bytes, the arrays as read from
    the file (still little-endian), the trailer."""
    crc = crc32c(head)
    for a in arrays:
        crc = crc32c(memoryview(a).cast("B"), crc)
    if len(trailer) != INDEX_TRAILER_BYTES or _U32.unpack(trailer)[0] != crc:
        raise FormatError("index: bad CRC")


def from_le(a: array[int]) -> array[int]:
    """An array read from little-endian bytes, in host order (in place)."""
    if _BIG_ENDIAN_HOST:
        a.byteswap()
    return a


def decode_index(buf: bytes) -> IndexData:
    h = decode_index_header(buf)
    if len(buf) != h.file_bytes:
        raise FormatError("index: size does not match the record count")
    view = memoryview(buf)
    at = INDEX_HEADER_BYTES
    n = h.records
    positions = _le_array(view[at : at + 8 * n])
    offsets = _le_array(view[at + 8 * n : at + 16 * n]) if h.sparse else None
    if _BIG_ENDIAN_HOST:  # pragma: no cover - the CRC is over the little-endian bytes
        if crc32c(view[: len(buf) - INDEX_TRAILER_BYTES]) != _U32.unpack_from(buf, len(buf) - 4)[0]:
            raise FormatError("index: bad CRC")
    else:
        check_index_crc(
            bytes(view[:at]),
            [positions] + ([offsets] if offsets is not None else []),
            bytes(view[len(buf) - INDEX_TRAILER_BYTES :]),
        )
    return IndexData(h.base_offset, h.end_offset, h.data_bytes, h.generation, positions, offsets)


# --- checkpoint files -----------------------------------------------------------------
def encode_checkpoint(offset: int, data: bytes) -> bytes:
    assert I64_MIN <= offset <= I64_MAX
    head = _CHECKPOINT_HEADER.pack(
        CHECKPOINT_MAGIC, CHECKPOINT_FORMAT_VERSION, 0, offset, len(data), crc32c(data), 0
    )[:_CHECKPOINT_HEADER_CRC_AT]
    return head + _U32.pack(crc32c(head)) + data


def decode_checkpoint(buf: bytes) -> tuple[int, bytes]:
    if len(buf) < CHECKPOINT_HEADER_BYTES:
        raise FormatError("checkpoint: header cut")
    magic, version, _r, offset, n, data_crc, head_crc = _CHECKPOINT_HEADER.unpack_from(buf, 0)
    if magic != CHECKPOINT_MAGIC:
        raise FormatError(f"checkpoint: bad magic {magic!r}")
    if head_crc != crc32c(buf[:_CHECKPOINT_HEADER_CRC_AT]):
        raise FormatError("checkpoint: bad header CRC")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise FormatError(f"checkpoint: unknown format version {version}")
    if not 0 <= n <= bounds.checkpoint_bytes_max or len(buf) != CHECKPOINT_HEADER_BYTES + n:
        raise FormatError("checkpoint: length does not match the file")
    data = buf[CHECKPOINT_HEADER_BYTES:]
    if crc32c(data) != data_crc:
        raise FormatError("checkpoint: bad data CRC")
    return offset, data
