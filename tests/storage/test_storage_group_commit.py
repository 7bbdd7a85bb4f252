"""Group commit and the fsync policies of FileLog, with fsync counted through a seam."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conveyor.storage import Committer, FileLog, LogFailed, LogTruncated

from .storage_helpers import FsyncSeam

TS = 1_700_000_000_000
THREADS = 16
PER_THREAD = 25


def test_group_commit_threads(tmp_path: Path, committer: Committer) -> None:
    """16 threads append and wait: far fewer fsyncs than waits, and every wait returns
    only after an fsync that started after its record was written has ended."""
    seam = FsyncSeam(delay_s=0.002)  # a disk that takes 2 ms per fsync
    log = FileLog(tmp_path / "log", fsync_fn=seam, committer=committer)
    data_before = seam.data
    problems: list[str] = []
    start = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        start.wait()
        for i in range(PER_THREAD):
            off = log.append(n, TS + i, b"p" * 100)
            written = seam.tick()
            log.wait_durable(off)
            returned = seam.tick()
            if log.durable_offset <= off:
                problems.append(f"durable_offset {log.durable_offset} after waiting for {off}")
            if not seam.covered(written, returned):
                problems.append(f"offset {off}: no fsync covered it")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems[:5]
    waits = THREADS * PER_THREAD
    fsyncs = seam.data - data_before
    print(f"{waits} waits, {fsyncs} fsyncs")
    assert fsyncs <= waits // 4, (fsyncs, waits)
    assert log.next_offset == waits
    log.close()


def test_group_commit_callbacks(tmp_path: Path, committer: Committer) -> None:
    """on_durable from many threads: callbacks run once each, only when durable, and the
    committer's rounds are shared."""
    seam = FsyncSeam(delay_s=0.002)
    log = FileLog(tmp_path / "log", fsync_fn=seam, committer=committer)
    data_before = seam.data
    lock = threading.Lock()
    done: list[int] = []
    early: list[int] = []
    all_done = threading.Event()
    total = THREADS * PER_THREAD

    def callback(off: int) -> None:
        if log.synced_offset <= off:
            early.append(off)
        with lock:
            done.append(off)
            if len(done) == total:
                all_done.set()

    def worker(n: int) -> None:
        for i in range(PER_THREAD):
            off = log.append(n, TS + i, b"q" * 50)
            log.on_durable(off, lambda off=off: callback(off))  # type: ignore[misc]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all_done.wait(10)
    assert sorted(done) == list(range(total))
    assert not early
    assert seam.data - data_before <= total // 4
    assert committer.threads <= 2
    log.close()


def test_shared_committer_serves_many_logs(tmp_path: Path, committer: Committer) -> None:
    logs = [FileLog(tmp_path / f"log{i}", committer=committer) for i in range(20)]
    events = [threading.Event() for _ in logs]
    for log, ev in zip(logs, events, strict=True):
        off = log.append(0, TS, b"x")
        log.on_durable(off, ev.set)
    assert all(ev.wait(5) for ev in events)
    assert committer.threads <= 2  # not a thread per log
    for log in logs:
        log.close()


def test_interval_policy(tmp_path: Path, committer: Committer) -> None:
    seam = FsyncSeam()
    log = FileLog(
        tmp_path / "log", fsync="interval", fsync_interval_ms=20, fsync_fn=seam, committer=committer
    )
    before = seam.data
    t0 = time.monotonic()
    for _i in range(200):
        off = log.append(0, TS, b"i" * 10)
        log.wait_durable(off)  # returns once written
        assert log.durable_offset == off + 1
    assert time.monotonic() - t0 < 1.0
    deadline = time.monotonic() + 5
    while log.synced_offset < 200 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert log.synced_offset == 200  # the background fsync caught up
    elapsed = time.monotonic() - t0
    assert seam.data - before <= elapsed / 0.020 + 2  # at most one fsync per interval
    log.close()


def test_never_policy(tmp_path: Path, committer: Committer) -> None:
    seam = FsyncSeam()
    log = FileLog(tmp_path / "log", fsync="never", fsync_fn=seam, committer=committer)
    before = seam.data
    for _ in range(50):
        log.wait_durable(log.append(0, TS, b"n"))
    time.sleep(0.05)
    assert seam.data == before
    assert log.durable_offset == 50 and log.synced_offset == 0
    assert log.sync() == 50 and seam.data == before + 1  # an explicit sync does fsync
    log.append(0, TS, b"n")
    log.close()
    assert seam.data == before + 2  # and close does


def test_fsync_failure_fails_the_log(tmp_path: Path, committer: Committer) -> None:
    seam = FsyncSeam()
    log = FileLog(tmp_path / "log", fsync_fn=seam, committer=committer)
    log.wait_durable(log.append(0, TS, b"ok"))
    seam.fail = OSError(5, "EIO")
    off = log.append(0, TS, b"lost?")
    errors: list[BaseException] = []
    got = threading.Event()
    log.on_durable(off, lambda: None, lambda exc: (errors.append(exc), got.set()))
    assert got.wait(5)
    assert isinstance(errors[0], LogFailed)
    with pytest.raises(LogFailed):
        log.wait_durable(off)
    with pytest.raises(LogFailed):
        log.append(0, TS, b"more")
    assert log.read(0).payload == b"ok"  # reads still work
    log.close()  # releases the files without raising again
    seam.fail = None
    log = FileLog(tmp_path / "log", fsync_fn=seam, committer=committer)
    assert log.next_offset == 2  # the write had reached the OS
    log.close()


class _IdleCommitter(Committer):
    """Accepts requests and never runs them: callbacks stay pending."""

    def request(self, target: object) -> None:  # type: ignore[override]
        pass


def test_truncate_and_close_release_pending_callbacks(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log", committer=_IdleCommitter())
    offs = [log.append(0, TS, b"x") for _ in range(4)]
    outcome: dict[int, str] = {}
    for off in offs:
        log.on_durable(
            off,
            lambda off=off: outcome.__setitem__(off, "durable"),  # type: ignore[misc]
            lambda exc, off=off: outcome.__setitem__(off, type(exc).__name__),  # type: ignore[misc]
        )
    assert outcome == {}
    log.truncate(2)
    assert outcome == {0: "durable", 1: "durable", 2: "LogTruncated", 3: "LogTruncated"}
    off = log.append(0, TS, b"y")
    log.on_durable(off, lambda: outcome.__setitem__(off, "durable"))
    log.close()
    assert outcome[off] == "durable"
    assert LogTruncated.retriable


def test_close_waits_for_running_fsync(tmp_path: Path) -> None:
    gate = threading.Event()
    entered = threading.Event()
    armed = threading.Event()

    def slow_fsync(fd: int) -> None:
        if armed.is_set():
            entered.set()
            gate.wait(5)

    log = FileLog(tmp_path / "log", fsync="never", fsync_fn=slow_fsync)
    log.append(0, TS, b"x")
    armed.set()
    syncer = threading.Thread(target=log.sync)
    syncer.start()
    assert entered.wait(5)
    closer = threading.Thread(target=log.close)
    closer.start()
    time.sleep(0.02)
    assert closer.is_alive()  # waiting for the running fsync
    gate.set()
    syncer.join(5)
    closer.join(5)
    assert log.closed


def test_sync_if_small_runs_a_small_round_on_the_calling_thread(tmp_path: Path) -> None:
    seam = FsyncSeam()
    log = FileLog(tmp_path / "log", fsync_fn=seam, committer=_IdleCommitter())
    opened = seam.data  # the new segment's own fsync
    assert log.sync_if_small(1024)  # nothing to sync: no fsync
    assert seam.data == opened
    log.append(0, TS, b"x" * 100)
    assert log.sync_if_small(1024)
    assert seam.data == opened + 1 and log.synced_offset == log.next_offset == 1

    # more waiting than the limit: nothing done, the caller waits for the committer
    log.append_batch([(0, TS, b"y" * 400)] * 4)
    assert not log.sync_if_small(1024)
    assert seam.data == opened + 1 and log.synced_offset == 1
    assert log.sync_if_small(4096)
    assert seam.data == opened + 2 and log.synced_offset == 5

    seam.fail = OSError(5, "EIO")
    log.append(0, TS, b"lost?")
    with pytest.raises(LogFailed):
        log.sync_if_small(1024)
    with pytest.raises(LogFailed):
        log.sync_if_small(1024)
    log.close()


def test_sync_if_small_leaves_a_running_round_alone(tmp_path: Path) -> None:
    seam = FsyncSeam(delay_s=0.2)
    log = FileLog(tmp_path / "log", fsync_fn=seam)
    off = log.append(0, TS, b"a")
    waiter = threading.Thread(target=log.wait_durable, args=(off,))
    waiter.start()
    deadline = time.monotonic() + 5
    while seam.clock == 0 and time.monotonic() < deadline:
        time.sleep(0.001)  # the waiter's round has started its fsync
    log.append(0, TS, b"b")
    assert not log.sync_if_small(1 << 20)  # never two rounds of one log at once
    waiter.join()
    assert log.sync_if_small(1 << 20)
    assert log.synced_offset == 2
    log.close()


def test_sync_if_small_is_free_without_fsync_always(tmp_path: Path) -> None:
    seam = FsyncSeam()
    log = FileLog(tmp_path / "log", fsync="never", fsync_fn=seam)
    opened = seam.data
    log.append(0, TS, b"a")
    assert log.sync_if_small(0)
    assert seam.data == opened
    log.close()
