"""The on-disk format: round trips, sizes, and every way a frame can be wrong."""

from __future__ import annotations

import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import limits
from conveyor.storage import Record
from conveyor.storage import format as fmt


def test_sizes() -> None:
    assert fmt.SEGMENT_HEADER_BYTES == 40
    assert fmt.FRAME_HEADER_BYTES == 28
    assert fmt.frame_size(0) == 28 and fmt.frame_size(1000) == 1028
    assert len(fmt.encode_frame(1, 2, 3, b"abc")) == fmt.frame_size(3)
    assert 28 + limits.record_bytes_max == fmt.FRAME_BYTES_MAX


@given(
    offset=st.integers(0, fmt.I64_MAX),
    rtype=st.integers(0, 255),
    ts=st.integers(fmt.I64_MIN, fmt.I64_MAX),
    payload=st.binary(max_size=300),
)
def test_frame_round_trip(offset: int, rtype: int, ts: int, payload: bytes) -> None:
    frame = fmt.encode_frame(offset, rtype, ts, payload)
    prefix = b"junk"
    rec, end = fmt.decode_frame(prefix + frame, len(prefix))
    assert rec == Record(offset, rtype, ts, payload)
    assert end == len(prefix) + len(frame)
    assert fmt.check_frame(frame, 0) == (offset, len(frame))


def test_frame_layout_is_little_endian() -> None:
    frame = fmt.encode_frame(0x0102, 7, 0x0A0B, b"xy")
    assert frame[0:4] == (26).to_bytes(4, "little")  # length after the length field
    assert frame[8] == fmt.RECORD_FORMAT_VERSION and frame[9] == 7
    assert frame[12:20] == (0x0102).to_bytes(8, "little")
    assert frame[20:28] == (0x0A0B).to_bytes(8, "little")
    assert frame[28:] == b"xy"


def test_bad_frames() -> None:
    frame = fmt.encode_frame(5, 1, 2, b"payload")
    for cut in range(len(frame)):
        with pytest.raises(fmt.TornFrame):
            fmt.check_frame(frame[:cut], 0)
    for i in range(4, len(frame)):  # any flipped byte after the length field
        bad = bytearray(frame)
        bad[i] ^= 0x10
        with pytest.raises(fmt.BadFrame):
            fmt.check_frame(bytes(bad), 0)
    with pytest.raises(fmt.BadFrame):
        fmt.check_frame(b"\x00" * 40, 0)  # zero length
    with pytest.raises(fmt.BadFrame):
        fmt.check_frame(b"\xff\xff\xff\xff" + b"\x00" * 40, 0)  # length out of bounds


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_format_error(data: bytes) -> None:
    try:
        rec, end = fmt.decode_frame(data, 0)
    except fmt.FormatError:
        return
    assert end <= len(data) and isinstance(rec, Record)


def test_check_fields() -> None:
    assert fmt.check_fields(0, 0, 0) is None
    assert fmt.check_fields(256, 0, 0) is not None
    assert fmt.check_fields(0, 1 << 63, 0) is not None
    assert fmt.check_fields(0, 0, limits.record_bytes_max + 1) is not None


def test_segment_header() -> None:
    plain = fmt.SegmentHeader(123)
    assert fmt.decode_segment_header(fmt.encode_segment_header(plain)) == plain
    compacted = fmt.SegmentHeader(100, 3, True, 2, 250)
    raw = fmt.encode_segment_header(compacted)
    assert len(raw) == fmt.SEGMENT_HEADER_BYTES and raw[:4] == b"CVSG"
    assert fmt.decode_segment_header(raw) == compacted
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 1
        with pytest.raises(fmt.FormatError):
            fmt.decode_segment_header(bytes(bad))
    with pytest.raises(fmt.FormatError):
        fmt.decode_segment_header(raw[:-1])


@pytest.mark.parametrize("sparse", [False, True])
def test_index_round_trip(sparse: bool) -> None:
    rng = random.Random(1)
    n = 500
    positions = array("q", sorted(rng.sample(range(40, 10**6), n)))
    offsets = array("q", sorted(rng.sample(range(1000, 5000), n))) if sparse else None
    idx = fmt.IndexData(1000, 5000, 10**6, 2, positions, offsets)
    raw = fmt.encode_index(idx)
    assert len(raw) == fmt.INDEX_HEADER_BYTES + 8 * n * (2 if sparse else 1) + 4
    assert fmt.decode_index(raw) == idx
    for i in rng.sample(range(len(raw)), 50):
        bad = bytearray(raw)
        bad[i] ^= 4
        with pytest.raises(fmt.FormatError):
            fmt.decode_index(bytes(bad))


def test_checkpoint_round_trip() -> None:
    raw = fmt.encode_checkpoint(-1, b"state")
    assert fmt.decode_checkpoint(raw) == (-1, b"state")
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 1
        with pytest.raises(fmt.FormatError):
            fmt.decode_checkpoint(bytes(bad))


def test_encode_frames_is_encode_frame_joined() -> None:
    items = [(1, 1_700_000_000_000, b"a" * 10), (200, -5, b""), (7, 3, bytearray(b"xyz"))]
    data, sizes = fmt.encode_frames(41, items)
    frames = [fmt.encode_frame(41 + i, t, ts, bytes(p)) for i, (t, ts, p) in enumerate(items)]
    assert data == b"".join(frames)
    assert sizes == [len(f) for f in frames]
