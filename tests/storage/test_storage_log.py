"""The Log contract, run against FileLog and MemoryLog alike (``make_log`` fixture)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from conveyor import limits
from conveyor.storage import (
    FileLog,
    LogClosed,
    MemoryLog,
    Record,
    RecordTooLarge,
    bounds,
)

from .storage_helpers import SEGMENT_BYTES_SMALL, LogFactory, records_of

TS = 1_700_000_000_000


def fill(log: Any, n: int, size: int = 100, rng: random.Random | None = None) -> list[Record]:
    out = []
    for _ in range(n):
        k = rng.randint(0, size) if rng else size
        off = log.next_offset
        payload = bytes([off % 251]) * k
        got = log.append(off % 256, TS + off, payload)
        assert got == off
        out.append(Record(off, off % 256, TS + off, payload))
    return out


def test_append_read_scan(make_log: LogFactory) -> None:
    log = make_log()
    assert (log.next_offset, log.first_offset) == (0, 0)
    assert log.append(7, TS, b"hello") == 0
    assert log.append(255, -5, b"") == 1
    assert log.read(0) == Record(0, 7, TS, b"hello")
    assert log.read(1) == Record(1, 255, -5, b"")
    assert list(log.scan()) == [log.read(0), log.read(1)]
    assert list(log.scan(1)) == [log.read(1)]
    assert list(log.scan(0, 1)) == [log.read(0)]
    assert list(log.scan(5)) == []
    for missing in (-1, 2, 100):
        with pytest.raises(KeyError):
            log.read(missing)
    assert log.next_offset == 2
    log.check()


def test_append_batch(make_log: LogFactory) -> None:
    log = make_log()
    log.append(0, TS, b"a")
    first = log.append_batch([(1, TS + 1, b"b"), (2, TS + 2, b"cc"), (3, TS + 3, bytearray(b"d"))])
    assert first == 1
    assert log.next_offset == 4
    assert [r.payload for r in log.scan()] == [b"a", b"b", b"cc", b"d"]
    assert isinstance(log.read(3).payload, bytes)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], ValueError),
        ([(256, TS, b"")], ValueError),
        ([(-1, TS, b"")], ValueError),
        ([(0, 1 << 63, b"")], ValueError),
        ([(0, TS, b"x"), (0, TS, b"y" * (limits.record_bytes_max + 1))], RecordTooLarge),
        ([(0, TS, "text")], TypeError),
    ],
)
def test_bad_input_writes_nothing(make_log: LogFactory, items: list[Any], error: type) -> None:
    log = make_log()
    log.append(0, TS, b"kept")
    with pytest.raises(error):
        log.append_batch(items)
    assert log.next_offset == 1
    assert records_of(log) == [(0, 0, TS, b"kept")]


def test_largest_record(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    big = bytes(range(256)) * (limits.record_bytes_max // 256)
    log.append(1, TS, b"small")
    assert log.append(1, TS, big) == 1
    log.append(1, TS, b"after")
    assert log.read(1).payload == big
    infos = log.segments()
    assert [i.record_count for i in infos] == [1, 1, 1]  # a huge record gets a segment alone
    log = make_log.reopen(log)
    assert log.read(1).payload == big


def test_segment_roll(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    recs = fill(log, 200, 60)
    infos = log.segments()
    assert len(infos) > 3
    assert [i.sealed for i in infos] == [True] * (len(infos) - 1) + [False]
    assert infos[0].base_offset == 0 and infos[-1].end_offset == 200
    for a, b in itertools.pairwise(infos):
        assert a.end_offset == b.base_offset
        assert a.size_bytes <= SEGMENT_BYTES_SMALL
    assert sum(i.record_count for i in infos) == 200
    assert list(log.scan()) == recs
    assert list(log.scan(55, 140)) == recs[55:140]
    assert (infos[0].path is None) == (not make_log.is_file)


def test_read_many_in_any_order_across_segments_and_holes(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    rng = random.Random(7)
    recs = fill(log, 300, 300, rng)
    assert len(log.segments()) > 3
    assert log.read_many([]) == []
    for _ in range(50):
        offsets = rng.sample(range(300), rng.randint(1, 40))
        assert log.read_many(offsets) == [recs[o] for o in offsets]
    assert log.read_many([5, 5, 4]) == [recs[5], recs[5], recs[4]]
    assert log.read_many(list(range(300))) == recs
    # a compacted segment: the records it kept, and KeyError for one it dropped
    seg = log.segments()[1]
    keep = {seg.base_offset + 1, seg.end_offset - 1}
    log.rewrite_segment(seg.base_offset, keep)
    wanted = [0, seg.base_offset + 1, seg.end_offset - 1, 299]
    assert log.read_many(wanted) == [recs[o] for o in wanted]
    with pytest.raises(KeyError):
        log.read_many([0, seg.base_offset])
    with pytest.raises(KeyError):
        log.read_many([300])


@pytest.mark.parametrize("gap, chunk", [(0, 1 << 20), (1 << 20, 1), (500, 2000)])
def test_read_many_splits_its_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gap: int, chunk: int
) -> None:
    """Whatever the read bounds, the answer is the same (one pread per record at one
    extreme, one per segment at the other)."""
    monkeypatch.setattr(bounds, "read_gap_bytes", gap)
    monkeypatch.setattr(bounds, "scan_chunk_bytes", chunk)
    log = FileLog(tmp_path / "log", segment_bytes_max=64 * 1024)
    rng = random.Random(gap + chunk)
    recs = fill(log, 400, 400, rng)
    for _ in range(30):
        offsets = sorted(rng.sample(range(400), rng.randint(1, 60)))
        assert log.read_many(offsets) == [recs[o] for o in offsets]
    log.close()


def test_both_logs_roll_alike(tmp_path: Path) -> None:
    rng = random.Random(3)
    file_log = FileLog(tmp_path / "log", segment_bytes_max=SEGMENT_BYTES_SMALL, fsync="never")
    mem_log = MemoryLog(segment_bytes_max=SEGMENT_BYTES_SMALL)
    for _ in range(150):
        batch = [(1, TS, b"z" * rng.randint(0, 300)) for _ in range(rng.randint(1, 4))]
        assert file_log.append_batch(batch) == mem_log.append_batch(batch)
    strip = lambda infos: [i._replace(path=None) for i in infos]  # noqa: E731
    assert strip(file_log.segments()) == mem_log.segments()
    file_log.close()


def test_truncate(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    recs = fill(log, 120, 60)
    infos = log.segments()
    with pytest.raises(ValueError):
        log.truncate(121)
    log.truncate(120)  # no-op
    assert log.next_offset == 120
    # into the active segment
    cut = infos[-1].base_offset + 1
    log.truncate(cut)
    assert log.next_offset == cut and log.durable_offset == cut
    assert list(log.scan()) == recs[:cut]
    # into a sealed segment: it becomes the active one
    mid = infos[1].base_offset + 3
    log.truncate(mid)
    assert log.segments()[-1].base_offset == infos[1].base_offset
    assert not log.segments()[-1].sealed
    assert list(log.scan()) == recs[:mid]
    # exactly at a segment boundary
    log.truncate(infos[1].base_offset)
    assert log.segments()[-1].end_offset == infos[1].base_offset
    # appends continue at the cut, and the log reopens equal
    again = fill(log, 30, 60)
    assert again[0].offset == infos[1].base_offset
    log = make_log.reopen(log)
    assert list(log.scan()) == recs[: infos[1].base_offset] + again
    log.truncate(0)
    assert (log.next_offset, log.first_offset, list(log.scan())) == (0, 0, [])
    log.check()


def test_reset(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    fill(log, 100, 60)
    log.reset(1000)
    assert (log.next_offset, log.first_offset, log.durable_offset) == (1000, 1000, 1000)
    assert list(log.scan()) == []
    with pytest.raises(KeyError):
        log.read(5)
    assert log.append(1, TS, b"x") == 1000
    log = make_log.reopen(log)
    assert (log.next_offset, log.first_offset) == (1001, 1000)
    assert records_of(log) == [(1000, 1, TS, b"x")]
    log.reset(3)  # backwards is allowed too (a replica installing an older snapshot)
    assert log.next_offset == 3 and log.append(0, TS, b"") == 3
    assert len(log.segments()) == 1
    log.check()


def test_delete_segment(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    recs = fill(log, 200, 60)
    infos = log.segments()
    with pytest.raises(ValueError):
        log.delete_segment(infos[-1].base_offset)  # the active one
    with pytest.raises(KeyError):
        log.delete_segment(infos[0].base_offset + 1)
    log.delete_segment(infos[1].base_offset)  # a hole in the middle
    hole = range(infos[1].base_offset, infos[1].end_offset)
    assert list(log.scan()) == [r for r in recs if r.offset not in hole]
    with pytest.raises(KeyError):
        log.read(hole[0])
    log.delete_segment(infos[0].base_offset)
    assert log.first_offset == infos[2].base_offset
    assert [i.base_offset for i in log.segments()] == [i.base_offset for i in infos[2:]]
    log = make_log.reopen(log)
    assert log.first_offset == infos[2].base_offset and log.next_offset == 200
    assert list(log.scan()) == recs[infos[2].base_offset :]
    if make_log.is_file:
        assert infos[0].path is not None and not infos[0].path.exists()


def test_rewrite_segment_with_holes(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    recs = fill(log, 200, 60)
    infos = log.segments()
    seg = infos[1]
    with pytest.raises(ValueError):
        log.rewrite_segment(infos[-1].base_offset, {infos[-1].base_offset})
    keep = {seg.base_offset + 1, seg.base_offset + 4, seg.end_offset - 1, 5, 10_000}
    info = log.rewrite_segment(seg.base_offset, keep)
    kept = [r for r in recs if seg.base_offset <= r.offset < seg.end_offset and r.offset in keep]
    assert (info.base_offset, info.end_offset, info.record_count) == (
        seg.base_offset,
        seg.end_offset,
        len(kept),
    )
    assert info.sealed and info.size_bytes < seg.size_bytes
    for r in kept:
        assert log.read(r.offset) == r
    with pytest.raises(KeyError):
        log.read(seg.base_offset)
    expected = [r for r in recs if not (seg.base_offset <= r.offset < seg.end_offset)] + kept
    expected.sort()
    assert list(log.scan()) == expected
    assert list(log.scan(seg.base_offset + 2, seg.end_offset)) == kept[1:]
    # a second rewrite of the compacted segment, then reopen
    log.rewrite_segment(seg.base_offset, {seg.base_offset + 4})
    log = make_log.reopen(log)
    assert [r.offset for r in log.scan(seg.base_offset, seg.end_offset)] == [seg.base_offset + 4]
    assert log.segments()[1].end_offset == seg.end_offset
    # rewrite keeping nothing: the range stays, empty
    log.rewrite_segment(infos[0].base_offset, ())
    assert log.first_offset == seg.base_offset + 4
    assert log.segments()[0].record_count == 0
    log.check()


def test_truncate_into_compacted_segment(make_log: LogFactory) -> None:
    log = make_log(segment_bytes_max=SEGMENT_BYTES_SMALL)
    recs = fill(log, 100, 60)
    seg = log.segments()[1]
    keep = {seg.base_offset + 1, seg.base_offset + 5, seg.base_offset + 9}
    log.rewrite_segment(seg.base_offset, keep)
    log.truncate(seg.base_offset + 6)
    assert log.next_offset == seg.base_offset + 6
    assert [r.offset for r in log.scan(seg.base_offset)] == sorted(keep)[:2]
    assert log.append(0, TS, b"new") == seg.base_offset + 6
    log = make_log.reopen(log)
    assert log.next_offset == seg.base_offset + 7
    assert list(log.scan(0, seg.base_offset)) == recs[: seg.base_offset]
    assert [r.offset for r in log.scan(seg.base_offset)] == [*sorted(keep)[:2], seg.base_offset + 6]
    log.check()


def test_durability_contract(make_log: LogFactory) -> None:
    log = make_log()
    fill(log, 10)
    log.wait_durable(9)
    assert log.durable_offset >= 10
    log.wait_durable(-1)  # nothing to wait for
    with pytest.raises(ValueError):
        log.wait_durable(10)  # not written yet
    called: list[int] = []
    log.on_durable(3, lambda: called.append(3))
    assert called == [3]
    assert log.sync() == 10
    assert log.synced_offset == 10


def test_closed_log_refuses(make_log: LogFactory) -> None:
    log = make_log()
    fill(log, 3)
    log.close()
    log.close()  # idempotent
    for call in (
        lambda: log.append(0, TS, b""),
        lambda: log.read(0),
        lambda: list(log.scan()),
        lambda: log.truncate(0),
        lambda: log.segments(),
    ):
        with pytest.raises(LogClosed):
            call()
    log.wait_durable(2)  # already durable: returns


@pytest.mark.parametrize("seed", range(3))
def test_random_operations_agree_and_reopen(
    tmp_path: Path, seed: int, seed_option: int | None
) -> None:
    """A seeded random mix of operations on a FileLog and a MemoryLog: after every step
    both hold the same records and segments; the FileLog is reopened now and then."""
    seed = seed if seed_option is None else seed_option
    rng = random.Random(seed)
    path = tmp_path / "log"
    kwargs: dict[str, Any] = {"segment_bytes_max": SEGMENT_BYTES_SMALL, "fsync": "never"}
    flog = FileLog(path, **kwargs)
    mlog = MemoryLog(segment_bytes_max=SEGMENT_BYTES_SMALL)
    try:
        for step in range(150):
            op = rng.random()
            sealed = [i.base_offset for i in mlog.segments() if i.sealed]
            if op < 0.55:
                batch = [
                    (rng.randrange(256), TS + step, rng.randbytes(rng.randint(0, 400)))
                    for _ in range(rng.randint(1, 5))
                ]
                assert flog.append_batch(batch) == mlog.append_batch(batch)
            elif op < 0.65 and mlog.next_offset:
                t = rng.randint(max(0, mlog.next_offset - 30), mlog.next_offset)
                flog.truncate(t)
                mlog.truncate(t)
            elif op < 0.72 and sealed:
                base = rng.choice(sealed)
                flog.delete_segment(base)
                mlog.delete_segment(base)
            elif op < 0.82 and sealed:
                base = rng.choice(sealed)
                info = next(i for i in mlog.segments() if i.base_offset == base)
                keep = {o for o in range(info.base_offset, info.end_offset) if rng.random() < 0.3}
                assert flog.rewrite_segment(base, keep)._replace(path=None) == mlog.rewrite_segment(
                    base, keep
                )
            elif op < 0.84:
                n = rng.randint(0, mlog.next_offset + 10)
                flog.reset(n)
                mlog.reset(n)
            elif op < 0.92:
                flog.close()
                flog = FileLog(path, **kwargs)
            assert flog.next_offset == mlog.next_offset
            assert flog.first_offset == mlog.first_offset
            assert [i._replace(path=None) for i in flog.segments()] == mlog.segments(), step
            assert list(flog.scan()) == list(mlog.scan())
            flog.check()
            mlog.check()
    finally:
        flog.close()
