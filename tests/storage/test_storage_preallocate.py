"""Preallocation of the active segment under fsync="always": zeros written ahead of the
appends, fdatasync inside them and a full fsync when the file grows, trimming at a roll
and a close, and recovery from a crash that leaves the zeros behind."""

from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from conveyor.storage import FileLog, LogFailed, MemoryLog, Record, StorageError, bounds
from conveyor.storage import format as fmt
from conveyor.storage import segment as segment_module
from conveyor.storage.segment import read_header, scan_file

from .storage_helpers import SEGMENT_BYTES_SMALL, abandon

TS = 1_700_000_000_000
CHUNK = bounds.segment_preallocate_bytes
KiB = 1024


class Syncs:
    """Two seams, ``fsync`` and ``fdatasync``: each does the real call and records it
    (``"dir"`` for a directory), or raises what ``fail`` holds for its kind."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, OSError] = {}

    def fsync(self, fd: int) -> None:
        self._call("fsync", fd)

    def fdatasync(self, fd: int) -> None:
        self._call("fdatasync", fd)

    def _call(self, kind: str, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            assert kind == "fsync", "directories are fsynced"
            os.fsync(fd)
            self.calls.append("dir")
            return
        if kind in self.fail:
            raise self.fail[kind]
        (os.fsync if kind == "fsync" else os.fdatasync)(fd)
        self.calls.append(kind)

    def since(self, mark: int) -> list[str]:
        """The data syncs made since ``len(self.calls)`` was ``mark``."""
        return [c for c in self.calls[mark:] if c != "dir"]


def open_log(path: Path, syncs: Syncs, **kwargs: Any) -> FileLog:
    return FileLog(path, fsync_fn=syncs.fsync, fdatasync_fn=syncs.fdatasync, **kwargs)


def active_file(log: FileLog) -> Path:
    path = log.segments()[-1].path
    assert path is not None
    return path


def check_files(log: FileLog) -> None:
    """Sealed segment files end at their last frame; the active one is as long as the
    log believes, at most segment_bytes_max, and ends in zeros only."""
    *sealed, active = log._segments
    for seg in sealed:
        assert seg.path.stat().st_size == seg.size_bytes, seg.path
    length = active.path.stat().st_size
    assert length == active.file_bytes >= active.size_bytes
    assert length == active.size_bytes or length <= log.segment_bytes_max
    with open(active.path, "rb") as f:
        f.seek(active.size_bytes)
        assert not f.read().strip(b"\x00"), "only zeros after the last frame"


def scan_bytes(tmp_path: Path, data: bytes, *, zero_tail: bool) -> segment_module.ScanResult:
    p = tmp_path / "scan.seg"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        return scan_file(fd, read_header(fd), len(data), zero_tail=zero_tail)
    finally:
        os.close(fd)


def segment_bytes(n: int) -> tuple[bytes, list[int]]:
    """A segment file with ``n`` records of 100 bytes, and where each frame ends."""
    data = bytearray(fmt.encode_segment_header(fmt.SegmentHeader(0)))
    ends = []
    for i in range(n):
        data += fmt.encode_frame(i, 1, TS, bytes([i + 1]) * 100)
        ends.append(len(data))
    return bytes(data), ends


# --------------------------------------------------------------------- the scan
def test_scan_takes_zeros_to_the_end_as_the_end(tmp_path: Path) -> None:
    data, ends = segment_bytes(5)
    for zeros in (1, 3, 4, 27, 28, 5000):
        got = scan_bytes(tmp_path, data + bytes(zeros), zero_tail=True)
        assert (len(got.positions), got.valid_bytes, got.problem) == (5, ends[-1], None)
        sealed = scan_bytes(tmp_path, data + bytes(zeros), zero_tail=False)
        assert sealed.valid_bytes == ends[-1] and sealed.problem is not None  # as before


def test_scan_reports_zeros_followed_by_data(tmp_path: Path) -> None:
    data, ends = segment_bytes(5)
    got = scan_bytes(tmp_path, data + bytes(5000) + b"\x07" + bytes(100), zero_tail=True)
    assert got.valid_bytes == ends[-1]
    assert got.problem == f"frame at {ends[-1]}: zeros, then data at {ends[-1] + 5000}"


def test_scan_reports_torn_and_corrupt_frames_before_zeros(tmp_path: Path) -> None:
    data, ends = segment_bytes(5)
    frame = data[ends[2] : ends[3]]
    head = data[: ends[2]]
    torn = head + frame[:50] + bytes(4096)  # a frame cut short, zeros where the rest was
    bad = bytearray(head + frame + bytes(4096))
    bad[ends[2] + 40] ^= 0x10  # a flipped bit in its payload
    zero_payload = head + frame[:28] + bytes(len(frame) - 28) + bytes(100)
    for damaged in (torn, bytes(bad), zero_payload):
        got = scan_bytes(tmp_path, damaged, zero_tail=True)
        assert got.valid_bytes == ends[2] and got.problem is not None
        assert "zeros" not in got.problem


# --------------------------------------------------------------------- appends
def test_fdatasync_inside_a_chunk_and_fsync_when_one_is_added(tmp_path: Path) -> None:
    syncs = Syncs()
    log = open_log(tmp_path / "log", syncs)
    path = active_file(log)
    assert path.stat().st_size == fmt.SEGMENT_HEADER_BYTES  # nothing written ahead yet

    mark = len(syncs.calls)
    log.wait_durable(log.append(1, TS, b"a" * 1000))
    first_end = fmt.SEGMENT_HEADER_BYTES + fmt.frame_size(1000)
    assert path.stat().st_size == first_end + CHUNK
    assert syncs.since(mark) == ["fsync"]  # the new length is made durable once

    mark = len(syncs.calls)
    for _ in range(20):
        log.wait_durable(log.append(1, TS, b"b" * 1000))
    assert syncs.since(mark) == ["fdatasync"] * 20
    assert path.stat().st_size == first_end + CHUNK  # written inside: no change of length
    check_files(log)

    # a batch that reaches the end of the file adds the next chunk: one fsync again
    info = log.segments()[-1]
    room = first_end + CHUNK - info.size_bytes
    payload = b"c" * (room - fmt.FRAME_HEADER_BYTES)
    mark = len(syncs.calls)
    log.wait_durable(log.append(1, TS, payload))  # ends exactly at the file's end
    assert path.stat().st_size == first_end + 2 * CHUNK
    log.wait_durable(log.append(1, TS, b"d"))
    assert syncs.since(mark) == ["fsync", "fdatasync"]
    check_files(log)

    # a group-commit round covering many appends is one fdatasync
    mark = len(syncs.calls)
    offs = [log.append(1, TS, b"e" * 100) for _ in range(50)]
    log.wait_durable(offs[-1])
    assert syncs.since(mark) == ["fdatasync"]
    assert log.synced_offset == log.next_offset
    log.check()
    log.close()


def test_preallocation_stops_at_segment_bytes_max_and_rolls_trim(tmp_path: Path) -> None:
    syncs = Syncs()
    seg_max = CHUNK + CHUNK // 2
    log = open_log(tmp_path / "log", syncs, segment_bytes_max=seg_max)
    payload = b"r" * (bounds.preallocate_round_bytes_max // 2)  # rounds small enough
    while len(log.segments()) < 3:
        log.wait_durable(log.append(2, TS, payload))
        check_files(log)
        assert active_file(log).stat().st_size <= seg_max
        log.check()
    infos = log.segments()
    for info in infos[:-1]:
        assert info.path is not None and info.path.stat().st_size == info.size_bytes
    mark = len(syncs.calls)
    log.close()
    assert syncs.since(mark) == ["fsync"]  # close: trim, then one fsync
    for info in infos:
        assert info.path is not None
        assert info.path.stat().st_size == info.size_bytes  # the active one trimmed too
    log = open_log(tmp_path / "log", syncs, segment_bytes_max=seg_max)
    assert log.recovery.clean_shutdown and log.recovery.indexes_rebuilt == 0
    assert log.recovery.truncated_bytes == 0 and log.recovery.problem is None
    assert [i._replace(path=None) for i in log.segments()] == [i._replace(path=None) for i in infos]
    log.close()


def test_a_huge_record_alone_is_not_preallocated_past_segment_bytes_max(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log", segment_bytes_max=SEGMENT_BYTES_SMALL)
    log.wait_durable(log.append(1, TS, b"x" * (2 * SEGMENT_BYTES_SMALL)))
    info = log.segments()[-1]
    assert info.path is not None and info.path.stat().st_size == info.size_bytes
    log.wait_durable(log.append(1, TS, b"y"))  # rolls: the big one is full
    assert [i.record_count for i in log.segments()] == [1, 1]
    check_files(log)
    log.close()


def test_large_rounds_stop_preallocation_and_small_ones_bring_it_back(tmp_path: Path) -> None:
    """Zeros double what a large round writes: after a window of rounds averaging more
    than preallocate_round_bytes_max, the log stops writing them; small rounds again,
    and it starts again."""
    syncs = Syncs()
    log = open_log(tmp_path / "log", syncs, segment_bytes_max=64 * CHUNK)
    path = active_file(log)
    big = [(1, TS, b"B" * (4 * bounds.preallocate_round_bytes_max))]
    for _ in range(CHUNK // (4 * bounds.preallocate_round_bytes_max) + 1):
        log.wait_durable(log.append_batch(big))  # the first window: preallocated
    mark = len(syncs.calls)
    for _ in range(2 * CHUNK // (4 * bounds.preallocate_round_bytes_max)):
        log.wait_durable(log.append_batch(big))
        assert path.stat().st_size == log.segments()[-1].size_bytes  # no zeros written
    assert set(syncs.since(mark)) == {"fsync"}  # the file grows each round, as before
    small = [(1, TS, b"s" * (bounds.preallocate_round_bytes_max // 2))]
    for _ in range(2 * CHUNK // (bounds.preallocate_round_bytes_max // 2) + 1):
        log.wait_durable(log.append_batch(small))  # a window of small rounds
    mark = len(syncs.calls)
    for _ in range(10):
        log.wait_durable(log.append(1, TS, b"t" * 100))
    assert path.stat().st_size > log.segments()[-1].size_bytes
    assert syncs.since(mark) == ["fdatasync"] * 10
    check_files(log)
    log.close()


@pytest.mark.parametrize("fsync", ["never", "interval"])
def test_other_policies_do_not_preallocate(tmp_path: Path, fsync: str) -> None:
    log = FileLog(tmp_path / "log", fsync=fsync, fsync_interval_ms=1)
    for _ in range(10):
        log.wait_durable(log.append(1, TS, b"z" * 500))
    assert active_file(log).stat().st_size == log.segments()[-1].size_bytes
    log.close()


def test_only_fsync_fn_given_is_used_for_every_sync(tmp_path: Path) -> None:
    syncs = Syncs()
    log = FileLog(tmp_path / "log", fsync_fn=syncs.fsync)
    mark = len(syncs.calls)
    for _ in range(10):
        log.wait_durable(log.append(1, TS, b"s" * 100))
    assert syncs.since(mark) == ["fsync"] * 10  # the fdatasync rounds go through it too
    assert active_file(log).stat().st_size > log.segments()[-1].size_bytes  # preallocated
    log.close()


def test_full_disk_while_writing_zeros_goes_on_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_space(fd: int, start: int, end: int) -> None:
        os.pwrite(fd, bytes(10), start)  # a part got written before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module, "write_zeros", no_space)
    syncs = Syncs()
    log = open_log(tmp_path / "log", syncs)
    mark = len(syncs.calls)
    for i in range(5):
        assert log.append(1, TS, b"f" * 100) == i
        log.wait_durable(i)
        check_files(log)
    assert active_file(log).stat().st_size == log.segments()[-1].size_bytes
    assert syncs.since(mark) == ["fsync"] * 5  # the length changes each time, as before
    assert sum("cannot write zeros" in r.getMessage() for r in caplog.records) == 1
    assert [r.payload for r in log.scan()] == [b"f" * 100] * 5
    log.close()


# --------------------------------------------------------------------- failures
@pytest.mark.parametrize("kind", ["fsync", "fdatasync"])
def test_a_failed_sync_fails_the_log(tmp_path: Path, kind: str) -> None:
    syncs = Syncs()
    log = open_log(tmp_path / "log", syncs)
    log.wait_durable(log.append(0, TS, b"ok"))  # this round fsyncs the new chunk
    syncs.fail[kind] = OSError(errno.EIO, "EIO")
    if kind == "fsync":  # make the next round a full fsync: grow the file again
        room = active_file(log).stat().st_size - log.segments()[-1].size_bytes
        log.append(0, TS, b"g" * (room - fmt.FRAME_HEADER_BYTES))
    off = log.append(0, TS, b"lost?")
    with pytest.raises(LogFailed):
        log.wait_durable(off)
    with pytest.raises(LogFailed):
        log.append(0, TS, b"more")
    assert log.read(0).payload == b"ok"
    log.close()  # releases the files; a failed log is not trimmed
    assert not (tmp_path / "log" / "CLEAN").exists()
    syncs.fail.clear()
    log = open_log(tmp_path / "log", syncs)
    assert log.next_offset == off + 1  # the writes had reached the OS
    assert log.recovery.problem is None and not log.recovery.clean_shutdown
    check_files(log)
    log.close()


def test_a_failed_write_cuts_the_zeros_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = FileLog(tmp_path / "log")
    log.wait_durable(log.append(0, TS, b"kept"))
    active = log._segments[-1]
    resizes = active.resizes

    def broken_write(fd: int, data: bytes, pos: int) -> None:
        os.pwrite(fd, bytes(data)[:10], pos)
        raise OSError(errno.EIO, "EIO")

    monkeypatch.setattr(segment_module, "pwrite_all", broken_write)
    with pytest.raises(StorageError):
        log.append(0, TS, b"z" * (CHUNK + 10))  # reaches past the chunk: more zeros first
    monkeypatch.undo()
    assert active.resizes > resizes and not active.length_synced
    assert active_file(log).stat().st_size == active.size_bytes == active.file_bytes
    log.wait_durable(log.append(0, TS, b"after"))
    assert [r.payload for r in log.scan()] == [b"kept", b"after"]
    check_files(log)
    log.close()


# --------------------------------------------------------------------- crashes
def test_crash_with_a_preallocated_tail_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    syncs = Syncs()
    path = tmp_path / "log"
    log = open_log(path, syncs, segment_bytes_max=2 * CHUNK)
    rng = random.Random(11)
    recs = []
    for i in range(500):
        payload = rng.randbytes(rng.randint(0, 12 * KiB))
        off = log.append(i % 7, TS + i, payload)
        log.wait_durable(off)
        recs.append(Record(off, i % 7, TS + i, payload))
    assert len(log.segments()) >= 2
    active = log._segments[-1]
    assert active.file_bytes > active.size_bytes  # the crash leaves zeros behind
    seg_path, valid = active.path, active.size_bytes
    abandon(log)

    log = open_log(path, syncs, segment_bytes_max=2 * CHUNK)
    assert list(log.scan()) == recs
    info = log.recovery
    assert not info.clean_shutdown
    assert (info.truncated_bytes, info.problem, info.corrupt) == (0, None, ())
    assert seg_path.stat().st_size == valid  # cut back to the frames
    log.wait_durable(log.append(1, TS, b"after the crash"))
    check_files(log)
    log.close()
    log = open_log(path, syncs, segment_bytes_max=2 * CHUNK)
    assert log.recovery.clean_shutdown and log.recovery.truncated_bytes == 0
    assert [r.payload for r in log.scan(len(recs))] == [b"after the crash"]
    log.close()


def crash_with_zeros(path: Path, n: int) -> tuple[list[Record], Path, int]:
    """A log of ``n`` acknowledged records abandoned with zeros after them: (records, the
    active segment file, where its frames end)."""
    log = FileLog(path)
    recs = []
    for i in range(n):
        payload = bytes([i + 1]) * 300
        log.wait_durable(log.append(3, TS + i, payload))
        recs.append(Record(i, 3, TS + i, payload))
    active = log._segments[-1]
    assert active.file_bytes > active.size_bytes
    seg_path, end = active.path, active.size_bytes
    abandon(log)
    return recs, seg_path, end


def write_at(path: Path, pos: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, pos)
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["half a frame", "bad crc", "zeros then data", "garbage"])
def test_torn_frame_inside_preallocated_space_is_cut(tmp_path: Path, how: str) -> None:
    """A write that did not complete lands in the zeros: reported and cut, as before."""
    path = tmp_path / "log"
    recs, seg_path, end = crash_with_zeros(path, 10)
    length = seg_path.stat().st_size
    frame = bytearray(fmt.encode_frame(10, 3, TS, b"\x55" * 300))
    if how == "half a frame":
        write_at(seg_path, end, frame[: len(frame) // 2])
    elif how == "bad crc":
        frame[100] ^= 0x01
        write_at(seg_path, end, frame)
    elif how == "zeros then data":  # a later page of the write reached the disk first
        write_at(seg_path, end + 4096, frame)
    else:
        write_at(seg_path, end, b"\xde\xad\xbe\xef" * 10)
    log = FileLog(path)
    try:
        assert list(log.scan()) == recs
        assert log.recovery.problem is not None
        assert log.recovery.truncated_bytes == length - end
        assert seg_path.stat().st_size == end
        log.wait_durable(log.append(0, TS, b"next"))
        check_files(log)
    finally:
        log.close()


def test_damage_to_an_acknowledged_frame_before_the_zeros(tmp_path: Path) -> None:
    path = tmp_path / "log"
    recs, seg_path, _end = crash_with_zeros(path, 10)
    pos = fmt.SEGMENT_HEADER_BYTES + 5 * fmt.frame_size(300) + 50  # inside record 5
    data = bytearray(seg_path.read_bytes())
    data[pos] ^= 0xFF
    seg_path.write_bytes(bytes(data))
    log = FileLog(path)
    try:
        assert list(log.scan()) == recs[:5]
        assert log.recovery.problem is not None and "CRC" in log.recovery.problem
    finally:
        log.close()


def test_closed_logs_are_byte_for_byte_as_without_preallocation(tmp_path: Path) -> None:
    """The same appends, truncates and compactions under fsync="always" (preallocated)
    and fsync="never" (not): after close both directories hold the same bytes."""
    rng = random.Random(5)
    ops: list[tuple[str, Any]] = []
    for step in range(120):
        if step % 40 == 39:
            ops.append(("truncate", 7))
        elif step % 50 == 49:
            ops.append(("rewrite", None))
        else:
            ops.append(("append", [rng.randbytes(rng.randint(0, 900)) for _ in range(3)]))
    dirs = []
    for fsync in ("always", "never"):
        d = tmp_path / fsync
        log = FileLog(d, fsync=fsync, segment_bytes_max=16 * KiB)
        for op, arg in ops:
            if op == "append":
                log.wait_durable(log.append_batch([(1, TS, p) for p in arg]))
            elif op == "truncate":
                log.truncate(log.next_offset - arg)
            else:
                sealed = log.segments()[1]
                log.rewrite_segment(sealed.base_offset, {sealed.base_offset + 1})
        log.close()
        dirs.append(d)
    names = sorted(p.name for p in dirs[0].iterdir())
    assert names == sorted(p.name for p in dirs[1].iterdir())
    assert len([n for n in names if n.endswith(".seg")]) > 3
    for name in names:
        assert (dirs[0] / name).read_bytes() == (dirs[1] / name).read_bytes(), name


@pytest.mark.parametrize("seed", range(3))
def test_random_operations_with_crashes(tmp_path: Path, seed: int, seed_option: int | None) -> None:
    """A seeded mix of appends (each waited for), truncates, resets, compactions, closes
    and crashes on a preallocating FileLog, checked against a MemoryLog after each step;
    the files after each step as :func:`check_files` wants them."""
    rng = random.Random(seed if seed_option is None else seed_option)
    path = tmp_path / "log"
    kwargs: dict[str, Any] = {"segment_bytes_max": 64 * KiB}
    flog = FileLog(path, **kwargs)
    mlog = MemoryLog(segment_bytes_max=64 * KiB)
    try:
        for step in range(200):
            op = rng.random()
            sealed = [i.base_offset for i in mlog.segments() if i.sealed]
            if op < 0.6:
                batch = [
                    (rng.randrange(256), TS + step, rng.randbytes(rng.randint(0, 3000)))
                    for _ in range(rng.randint(1, 4))
                ]
                first = flog.append_batch(batch)
                assert first == mlog.append_batch(batch)
                flog.wait_durable(first + len(batch) - 1)
            elif op < 0.68 and mlog.next_offset:
                t = rng.randint(max(0, mlog.next_offset - 20), mlog.next_offset)
                flog.truncate(t)
                mlog.truncate(t)
            elif op < 0.72 and sealed:
                base = rng.choice(sealed)
                info = next(i for i in mlog.segments() if i.base_offset == base)
                keep = {o for o in range(info.base_offset, info.end_offset) if rng.random() < 0.3}
                flog.rewrite_segment(base, keep)
                mlog.rewrite_segment(base, keep)
            elif op < 0.74:
                n = rng.randint(0, mlog.next_offset + 10)
                flog.reset(n)
                mlog.reset(n)
            elif op < 0.84:
                abandon(flog)  # a crash: the OS kept the writes, nothing trimmed
                flog = FileLog(path, **kwargs)
                assert flog.recovery.problem is None and flog.recovery.truncated_bytes == 0
            elif op < 0.9:
                infos = flog.segments()
                flog.close()
                for info in infos:  # a clean close leaves no zeros anywhere
                    assert info.path is not None
                    assert info.path.stat().st_size == info.size_bytes
                flog = FileLog(path, **kwargs)
                assert flog.recovery.clean_shutdown and flog.recovery.truncated_bytes == 0
            assert flog.next_offset == mlog.next_offset
            assert [i._replace(path=None) for i in flog.segments()] == mlog.segments(), step
            assert list(flog.scan()) == list(mlog.scan())
            check_files(flog)
            flog.check()
    finally:
        flog.close()
