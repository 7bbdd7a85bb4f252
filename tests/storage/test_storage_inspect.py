"""inspect: human-readable dumps of segments, indexes, checkpoints and directories."""

from __future__ import annotations

from pathlib import Path

from conveyor.storage import CheckpointStore, FileLog, dump_log, dump_segment, inspect_path

TS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def make(tmp_path: Path) -> Path:
    log = FileLog(tmp_path / "log", segment_bytes_max=4096, fsync="never")
    for i in range(60):
        log.append(i % 3, TS + i, b"payload %d " % i * 10)
    log.close()
    return tmp_path / "log"


def test_dump_segment(tmp_path: Path) -> None:
    path = make(tmp_path)
    first = sorted(path.glob("*.seg"))[0]
    lines = list(dump_segment(first))
    assert lines[0].startswith("segment 00000000000000000000-0.seg: format 1, base offset 0,")
    assert "generation 0, appended" in lines[0]
    rec = lines[2].split()
    assert rec[:4] == ["0", "0", "2023-11-14T22:13:20.000+00:00", "100"]
    assert rec[4] == "ok" and rec[5] == "40"
    assert "b'payload 0 payload 0 payload 0 pa'..." in lines[2]
    assert lines[-1].endswith(f"{first.stat().st_size} of {first.stat().st_size} bytes read")


def test_dump_shows_damage(tmp_path: Path) -> None:
    path = make(tmp_path)
    last = sorted(path.glob("*.seg"))[0]
    data = bytearray(last.read_bytes())
    data[60] ^= 1  # in the first record's payload
    last.write_bytes(bytes(data[:-5]))  # and a torn tail
    lines = list(dump_segment(last))
    assert " BAD " in lines[2]
    assert any(line.startswith("TORN at") for line in lines)
    assert "1 with a bad CRC" in lines[-1]
    data[:4] = b"XXXX"
    last.write_bytes(bytes(data))
    assert "HEADER DAMAGED" in next(iter(dump_segment(last)))


def test_describe_callback(tmp_path: Path) -> None:
    path = make(tmp_path)
    first = sorted(path.glob("*.seg"))[0]
    lines = list(dump_segment(first, describe=lambda t, p: f"kind{t} len={len(p)}"))
    assert lines[3].endswith("kind1 len=100")

    def broken(t: int, p: bytes) -> str:
        raise ValueError("cannot")

    assert "describe failed" in list(dump_segment(first, describe=broken))[2]


def test_dump_log_and_inspect_path(tmp_path: Path) -> None:
    path = make(tmp_path)
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(42, b"snapshot")
    lines = list(dump_log(tmp_path))  # a partition directory: log/ and checkpoints/
    text = "\n".join(lines)
    assert text.count("segment 000") == len(list(path.glob("*.seg")))
    assert "index 00000000000000000000-0.idx: " in text and "(dense)" in text
    assert "checkpoint 00000000000000000001.ckpt: offset 42, 8 bytes, CRC ok" in text
    assert "other file: CLEAN" in text
    idx = sorted(path.glob("*.idx"))[0]
    assert next(iter(inspect_path(idx))).startswith("index ")
    seg = sorted(path.glob("*.seg"))[0]
    assert next(iter(inspect_path(seg))).startswith("segment ")
    idx.write_bytes(b"nonsense")
    assert "DAMAGED" in next(iter(inspect_path(idx)))
