"""CheckpointStore: atomic saves, the newest two kept, fallback to the older one."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.storage import CheckpointStore, MemoryCheckpointStore

from .storage_helpers import FsyncSeam


@pytest.fixture(params=["file", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> CheckpointStore | MemoryCheckpointStore:
    if request.param == "memory":
        return MemoryCheckpointStore()
    return CheckpointStore(tmp_path / "ckpt")


def test_save_and_latest(store: CheckpointStore | MemoryCheckpointStore) -> None:
    assert store.latest() is None
    store.save(10, b"state at 10")
    assert store.latest() == (10, b"state at 10")
    store.save(20, b"state at 20")
    store.save(5, b"")  # ordered by save, not by offset (a reset can go back)
    assert store.latest() == (5, b"")


def files(path: Path) -> list[Path]:
    return sorted(path.glob("*.ckpt"))


def test_keeps_newest_two_and_survives_reopen(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for i in range(5):
        store.save(i * 100, f"s{i}".encode())
    assert len(files(tmp_path)) == 2
    assert CheckpointStore(tmp_path).latest() == (400, b"s4")


@pytest.mark.parametrize("how", ["flip", "cut", "empty", "header"])
def test_damaged_newest_falls_back(tmp_path: Path, how: str) -> None:
    store = CheckpointStore(tmp_path)
    store.save(1, b"older" * 100)
    store.save(2, b"newer" * 100)
    newest = files(tmp_path)[-1]
    data = bytearray(newest.read_bytes())
    if how == "flip":
        data[-10] ^= 1
    elif how == "cut":
        del data[-3:]
    elif how == "empty":
        data.clear()
    else:
        data[9] ^= 1  # the offset field, covered by the header CRC
    newest.write_bytes(bytes(data))
    store = CheckpointStore(tmp_path)
    assert store.latest() == (1, b"older" * 100)
    store.save(3, b"third")  # the damaged one does not count among the kept two
    assert [CheckpointStore(tmp_path).latest()] == [(3, b"third")]
    files(tmp_path)[-1].write_bytes(b"")
    assert CheckpointStore(tmp_path).latest() == (1, b"older" * 100)


def test_both_damaged(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(1, b"a")
    store.save(2, b"b")
    for f in files(tmp_path):
        f.write_bytes(b"junk")
    assert CheckpointStore(tmp_path).latest() is None


def test_crash_during_save_leaves_the_previous(tmp_path: Path) -> None:
    seam = FsyncSeam()
    store = CheckpointStore(tmp_path, fsync_fn=seam)
    store.save(1, b"good")
    seam.fail = OSError(5, "EIO")
    with pytest.raises(OSError):
        store.save(2, b"never complete")
    assert list(tmp_path.glob("*.tmp"))  # the temp file, never renamed
    seam.fail = None
    store = CheckpointStore(tmp_path, fsync_fn=seam)
    assert not list(tmp_path.glob("*.tmp"))
    assert store.latest() == (1, b"good")


def test_save_is_synced(tmp_path: Path) -> None:
    seam = FsyncSeam()
    store = CheckpointStore(tmp_path, fsync_fn=seam)
    store.save(1, b"x")
    assert seam.data == 1 and seam.dirs >= 1  # the file, then the directory
