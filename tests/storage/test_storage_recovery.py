"""Recovery of a FileLog: torn and corrupt tails, damaged indexes and headers, and
crashes in the middle of a rewrite or a truncate."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.storage import FileLog, Record
from conveyor.storage import format as fmt

from .storage_helpers import SEGMENT_BYTES_SMALL, abandon

TS = 1_700_000_000_000
SEEDS = range(25)


def build(path: Path, rng: random.Random, n: int, size_max: int = 300) -> list[Record]:
    log = FileLog(path, segment_bytes_max=SEGMENT_BYTES_SMALL, fsync="never")
    recs = []
    for i in range(n):
        payload = rng.randbytes(rng.randint(0, size_max))
        rtype = rng.randrange(256)
        off = log.append(rtype, TS + i, payload)
        recs.append(Record(off, rtype, TS + i, payload))
    log.close()
    return recs


def reopen(path: Path, **kwargs: Any) -> FileLog:
    kwargs.setdefault("segment_bytes_max", SEGMENT_BYTES_SMALL)
    kwargs.setdefault("fsync", "never")
    return FileLog(path, **kwargs)


def last_segment(path: Path) -> Path:
    return sorted(path.glob("*.seg"))[-1]


def frame_ends(recs: list[Record], base: int) -> dict[int, int]:
    """Where each record of the segment starting at ``base`` ends in its file."""
    pos = fmt.SEGMENT_HEADER_BYTES
    ends = {}
    for r in recs:
        if r.offset >= base:
            pos += fmt.frame_size(len(r.payload))
            ends[r.offset] = pos
    return ends


def damage(seg: Path, cut: int | None, flips: dict[int, int]) -> None:
    data = bytearray(seg.read_bytes())
    for pos, xor in flips.items():
        if pos < len(data):
            data[pos] ^= xor
    if cut is not None:
        del data[cut:]
    seg.write_bytes(bytes(data))


def check_recovered(path: Path, recs: list[Record], damaged_from: int) -> None:
    """Reopen after damage to the last segment starting at byte ``damaged_from``: exactly
    the records that end before it survive, and the log takes appends again."""
    seg = last_segment(path)
    base = int(seg.name.split("-")[0])
    ends = frame_ends(recs, base)
    expected = [r for r in recs if r.offset < base or ends[r.offset] <= damaged_from]
    size_before = seg.stat().st_size
    log = reopen(path)
    try:
        assert list(log.scan()) == expected
        assert log.next_offset == (expected[-1].offset + 1 if expected else 0)
        valid = max(
            [fmt.SEGMENT_HEADER_BYTES] + [ends[r.offset] for r in expected if r.offset >= base]
        )
        assert seg.stat().st_size == valid
        assert log.recovery.truncated_bytes == size_before - valid
        assert (log.recovery.problem is None) == (size_before == valid)
        new = log.append(9, TS, b"after recovery")
        log.check()
    finally:
        log.close()
    log = reopen(path)
    try:
        assert list(log.scan()) == [*expected, Record(new, 9, TS, b"after recovery")]
        assert log.recovery.truncated_bytes == 0 and log.recovery.clean_shutdown
    finally:
        log.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_torn_tail(tmp_path: Path, seed: int, seed_option: int | None) -> None:
    rng = random.Random(seed if seed_option is None else seed_option)
    recs = build(tmp_path, rng, rng.randint(1, 60))
    seg = last_segment(tmp_path)
    cut = rng.randint(fmt.SEGMENT_HEADER_BYTES, seg.stat().st_size)
    damage(seg, cut, {})
    check_recovered(tmp_path, recs, cut)


@pytest.mark.parametrize("seed", SEEDS)
def test_flipped_byte_in_tail(tmp_path: Path, seed: int, seed_option: int | None) -> None:
    rng = random.Random(seed if seed_option is None else seed_option)
    recs = build(tmp_path, rng, rng.randint(1, 60))
    seg = last_segment(tmp_path)
    size = seg.stat().st_size
    if size == fmt.SEGMENT_HEADER_BYTES:
        return
    pos = rng.randrange(fmt.SEGMENT_HEADER_BYTES, size)
    damage(seg, None, {pos: rng.randint(1, 255)})
    check_recovered(tmp_path, recs, pos)


@pytest.mark.parametrize(
    "tail",
    [
        b"\xff" * 7,
        b"garbage that is not a frame",
        b"\x00" * 4096 + b"\x01",  # zeros, then data: a torn write, not preallocation
        b"\x00" * 3 + b"\x01",
    ],
)
def test_garbage_after_the_tail(tmp_path: Path, tail: bytes) -> None:
    recs = build(tmp_path, random.Random(1), 30)
    seg = last_segment(tmp_path)
    size = seg.stat().st_size
    seg.write_bytes(seg.read_bytes() + tail)
    check_recovered(tmp_path, recs, size)


@pytest.mark.parametrize("zeros", [1, 3, 4, 4096, (4 << 20) + 5])
def test_zeros_after_the_tail_are_its_end(tmp_path: Path, zeros: int) -> None:
    """Zeros after the last frame are what preallocation leaves after a crash: cut off,
    but no problem and no truncated bytes."""
    recs = build(tmp_path, random.Random(1), 30)
    seg = last_segment(tmp_path)
    size = seg.stat().st_size
    seg.write_bytes(seg.read_bytes() + bytes(zeros))
    log = reopen(tmp_path)
    try:
        assert list(log.scan()) == recs
        assert seg.stat().st_size == size
        assert log.recovery.problem is None and log.recovery.truncated_bytes == 0
    finally:
        log.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 40),
    cut=st.floats(0, 1),
    flips=st.dictionaries(st.floats(0, 1, exclude_max=True), st.integers(1, 255), max_size=3),
)
def test_cut_and_flips(seed: int, n: int, cut: float, flips: dict[float, int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)
        recs = build(path, random.Random(seed), n)
        seg = last_segment(path)
        size = seg.stat().st_size
        body = size - fmt.SEGMENT_HEADER_BYTES
        cut_at = fmt.SEGMENT_HEADER_BYTES + round(cut * body)
        at = {fmt.SEGMENT_HEADER_BYTES + int(f * body): x for f, x in flips.items() if body}
        damage(seg, cut_at, at)
        first_flip = min([p for p in at if p < cut_at], default=cut_at)
        check_recovered(path, recs, min(cut_at, first_flip))


def test_sealed_index_missing_or_damaged_is_rebuilt(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(2), 120)
    idx = sorted(tmp_path.glob("*.idx"))
    assert len(idx) >= 3
    idx[0].unlink()
    damage(idx[1], None, {60: 0x40})
    damage(idx[2], len(idx[2].read_bytes()) - 9, {})
    log = reopen(tmp_path)
    assert log.recovery.indexes_rebuilt == 3
    assert list(log.scan()) == recs
    log.close()
    assert all(p.exists() for p in idx)
    log = reopen(tmp_path)
    assert log.recovery.indexes_rebuilt == 0
    assert [log.read(r.offset) for r in recs] == recs
    log.close()


def test_index_of_another_size_is_not_trusted(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(3), 80)
    first = sorted(tmp_path.glob("*.seg"))[0]
    first.write_bytes(first.read_bytes() + b"\x00" * 10)  # the index now describes less
    log = reopen(tmp_path)
    assert log.recovery.indexes_rebuilt == 1
    assert list(log.scan()) == recs
    assert log.recovery.corrupt  # the zeros after its last frame are reported
    log.close()


def test_damaged_sealed_segment_keeps_its_prefix(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(4), 80)
    first = sorted(tmp_path.glob("*.seg"))[0]
    (first.with_suffix(".idx")).unlink()
    ends = frame_ends(recs, 0)
    damage(first, None, {ends[3] + 10: 1})  # inside record 4
    log = reopen(tmp_path)
    infos = log.segments()
    assert [r.offset for r in log.scan(0, infos[1].base_offset)] == [0, 1, 2, 3]
    assert list(log.scan(infos[1].base_offset)) == recs[infos[1].base_offset :]
    assert log.recovery.corrupt
    log.close()


def test_damaged_header_of_last_segment(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(5), 80)
    last = last_segment(tmp_path)
    base = int(last.name.split("-")[0])
    damage(last, None, {5: 0xFF})
    log = reopen(tmp_path)
    assert list(log.scan()) == recs[:base]
    assert log.next_offset == base
    assert (tmp_path / (last.name + ".corrupt")).exists()
    assert log.append(0, TS, b"x") == base
    log.close()


def test_temp_files_removed_and_clean_flag(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(6), 20)
    (tmp_path / "00000000000000000000-1.seg.tmp").write_bytes(b"partial compacted file")
    (tmp_path / "00000000000000000099-0.seg.tmp").write_bytes(b"")
    log = reopen(tmp_path)
    assert log.recovery.clean_shutdown
    assert sorted(log.recovery.removed) == [
        "00000000000000000000-1.seg.tmp",
        "00000000000000000099-0.seg.tmp",
    ]
    assert not list(tmp_path.glob("*.tmp"))
    assert list(log.scan()) == recs
    log.append(0, TS, b"unsynced")
    abandon(log)  # a crash: no close
    log = reopen(tmp_path)
    assert not log.recovery.clean_shutdown
    assert log.next_offset == 21  # the OS had the write
    log.close()


def test_crash_during_roll(tmp_path: Path) -> None:
    """The full segment was sealed (index written) but the next one was not created."""
    recs = build(tmp_path, random.Random(7), 60)
    segs = sorted(tmp_path.glob("*.seg"))
    segs[-1].unlink()  # as if the crash came before the new segment was created
    base = int(segs[-1].name.split("-")[0])
    sealed_base = int(segs[-2].name.split("-")[0])
    assert segs[-2].with_suffix(".idx").exists()
    log = reopen(tmp_path)
    assert list(log.scan()) == recs[:base]
    infos = log.segments()
    assert not infos[-1].sealed and infos[-1].base_offset == sealed_base
    assert not segs[-2].with_suffix(".idx").exists()  # an active segment has no index
    log.append(0, TS, b"r" * 1000)  # rolls at once: the segment is full
    assert log.segments()[-1].record_count == 1
    assert log.segments()[-1].base_offset == base
    log.close()


class SimulatedCrash(Exception):
    pass


def crash_at(point: str) -> Any:
    def probe(name: str) -> None:
        if name == point:
            raise SimulatedCrash(name)

    return probe


@pytest.mark.parametrize(
    ("point", "lose_index"),
    [
        ("rewrite.written", False),
        ("rewrite.renamed", False),
        ("rewrite.renamed", True),
        ("rewrite.removed", False),
    ],
)
def test_rewrite_crash_at_each_step(tmp_path: Path, point: str, lose_index: bool) -> None:
    recs = build(tmp_path, random.Random(8), 100)
    log = reopen(tmp_path, probe=crash_at(point))
    seg = log.segments()[1]
    keep = {seg.base_offset + 2, seg.base_offset + 3, seg.end_offset - 1}
    with pytest.raises(SimulatedCrash):
        log.rewrite_segment(seg.base_offset, keep)
    abandon(log)
    if lose_index:
        (tmp_path / f"{seg.base_offset:020d}-1.idx").unlink()
    log = reopen(tmp_path)
    done = point != "rewrite.written"  # the rename is the commit point
    in_seg = [r for r in recs if seg.base_offset <= r.offset < seg.end_offset]
    survivors = [r for r in in_seg if r.offset in keep] if done else in_seg
    expected = sorted([r for r in recs if r not in in_seg] + survivors)
    assert list(log.scan()) == expected
    names = sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith(f"{seg.base_offset:020d}")
    )
    gen = 1 if done else 0
    assert names == [f"{seg.base_offset:020d}-{gen}.idx", f"{seg.base_offset:020d}-{gen}.seg"]
    assert not list(tmp_path.glob("*.tmp"))
    assert log.segments()[1].end_offset == seg.end_offset
    log.rewrite_segment(seg.base_offset, {seg.base_offset + 3})  # and it goes on
    assert [r.offset for r in log.scan(seg.base_offset, seg.end_offset)] == [seg.base_offset + 3]
    log.close()


def test_truncate_crash_keeps_a_prefix(tmp_path: Path) -> None:
    recs = build(tmp_path, random.Random(9), 100)
    log = reopen(tmp_path, probe=crash_at("truncate.removed"))
    infos = log.segments()
    t = infos[1].base_offset + 2
    with pytest.raises(SimulatedCrash):
        log.truncate(t)
    abandon(log)
    log = reopen(tmp_path)
    got = list(log.scan())
    assert t <= len(got) <= len(recs) and got == recs[: len(got)]
    log.truncate(t)
    assert list(log.scan()) == recs[:t]
    log.close()
