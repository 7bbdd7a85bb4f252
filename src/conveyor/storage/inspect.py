"""Print segments, logs and checkpoints for humans (``conveyor storage inspect``).

Nothing here trusts the files: a damaged header, a torn frame or a bad checksum is
printed as such, and the dump goes on as far as it can. Records print one a line::

    offset  type  time (UTC, ISO 8601)       bytes  crc  position  payload

``describe(type, payload) -> str`` (optional) renders a payload; the partition layer
passes its own (``conveyor.partition.records.describe``). Without it the first bytes
are shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from crc32c import crc32c

from conveyor.storage import bounds
from conveyor.storage import format as fmt
from conveyor.storage.checkpoint import CHECKPOINT_SUFFIX
from conveyor.storage.fsutil import pread_exact
from conveyor.storage.segment import INDEX_SUFFIX, SEGMENT_SUFFIX, first_nonzero, parse_name

Describe = Callable[[int, bytes], str]


def format_ts(ts_ms: int) -> str:
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"ts_ms={ts_ms}"


def _preview(rtype: int, payload: bytes, describe: Describe | None) -> str:
    if describe is not None:
        try:
            return describe(rtype, payload)
        except Exception as exc:
            return f"(describe failed: {exc!r}) {payload[: bounds.inspect_preview_bytes]!r}"
    more = "..." if len(payload) > bounds.inspect_preview_bytes else ""
    return f"{payload[: bounds.inspect_preview_bytes]!r}{more}"


def dump_segment(path: str | os.PathLike[str], describe: Describe | None = None) -> Iterator[str]:
    """A segment file: its header, then one line per record, then a summary."""
    p = Path(path)
    fd = os.open(p, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = pread_exact(fd, fmt.SEGMENT_HEADER_BYTES, 0)
        try:
            h = fmt.decode_segment_header(head)
            kind = (
                f"compacted, replaces generation {h.replaces_generation}, end offset {h.end_offset}"
                if h.compacted
                else "appended"
            )
            yield (
                f"segment {p.name}: format {fmt.SEGMENT_FORMAT_VERSION}, base offset "
                f"{h.base_offset}, generation {h.generation}, {kind}, {size} bytes"
            )
        except fmt.FormatError as exc:
            yield f"segment {p.name}: HEADER DAMAGED ({exc}), {size} bytes; frames follow"
        yield f"{'offset':>12}  {'type':>4}  {'time (UTC)':<29}  {'bytes':>7}  crc  {'pos':>10}  payload"
        pos = fmt.SEGMENT_HEADER_BYTES
        records = bad = 0
        while pos < size:
            fixed = pread_exact(fd, fmt.FRAME_HEADER_BYTES, pos)
            try:
                view = fmt.peek_frame(fixed, 0)
            except fmt.TornFrame:
                yield f"TORN at {pos}: {size - pos} bytes, less than a frame header"
                break
            if view.length == 0 and first_nonzero(fd, b"", 0, pos, size) is None:
                yield (
                    f"PREALLOCATED at {pos}: {size - pos} bytes of zeros to the end of the "
                    "file (written ahead of the appends; cut when the segment is sealed)"
                )
                break
            if not fmt.FRAME_LENGTH_MIN <= view.length <= fmt.FRAME_LENGTH_MAX:
                yield f"GARBAGE at {pos}: frame length {view.length} out of bounds; stop"
                break
            end = pos + fmt.FRAME_LENGTH_FIELD_BYTES + view.length
            if end > size:
                yield f"TORN at {pos}: frame of {end - pos} bytes, {size - pos} present"
                break
            frame = pread_exact(fd, end - pos, pos)
            ok = crc32c(memoryview(frame)[8:]) == view.crc
            payload = frame[fmt.FRAME_HEADER_BYTES :]
            records += 1
            bad += not ok
            version = "" if view.version == fmt.RECORD_FORMAT_VERSION else f" (v{view.version})"
            yield (
                f"{view.offset:>12}  {view.type:>4}  {format_ts(view.ts_ms):<29}  "
                f"{len(payload):>7}  {'ok ' if ok else 'BAD'}  {pos:>10}  "
                f"{_preview(view.type, payload, describe)}{version}"
            )
            pos = end
        yield f"{records} records, {bad} with a bad CRC, {pos} of {size} bytes read"
    finally:
        os.close(fd)


def dump_index(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        idx = fmt.decode_index(p.read_bytes())
    except fmt.FormatError as exc:
        return f"index {p.name}: DAMAGED ({exc}); the segment is scanned on open"
    kind = "sparse" if idx.offsets is not None else "dense"
    return (
        f"index {p.name}: {len(idx.positions)} records ({kind}), offsets "
        f"{idx.base_offset}..{idx.end_offset}, describes {idx.data_bytes} bytes of "
        f"generation {idx.generation}"
    )


def dump_checkpoint(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        offset, data = fmt.decode_checkpoint(p.read_bytes())
    except fmt.FormatError as exc:
        return f"checkpoint {p.name}: DAMAGED ({exc})"
    return f"checkpoint {p.name}: offset {offset}, {len(data)} bytes, CRC ok"


def dump_log(path: str | os.PathLike[str], describe: Describe | None = None) -> Iterator[str]:
    """Every file of a log directory (or a partition directory holding ``log/`` and
    ``checkpoints/``): segments in offset order, with their index files, then anything
    else found there."""
    root = Path(path)
    for sub in ("log", "checkpoints"):
        if (root / sub).is_dir():
            yield f"== {root / sub}"
            yield from dump_log(root / sub, describe)
    entries = sorted(os.listdir(root))
    for entry in entries:
        p = root / entry
        parsed = parse_name(entry)
        if parsed is not None and entry.endswith(SEGMENT_SUFFIX):
            yield from dump_segment(p, describe)
            idx = p.with_name(entry[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX)
            yield dump_index(idx) if idx.exists() else f"index {idx.name}: none"
            yield ""
        elif entry.endswith(CHECKPOINT_SUFFIX):
            yield dump_checkpoint(p)
        elif parsed is None and p.is_file():
            yield f"other file: {entry} ({p.stat().st_size} bytes)"


def inspect_path(path: str | os.PathLike[str], describe: Describe | None = None) -> Iterator[str]:
    """Dump a segment, index or checkpoint file, or a log or partition directory."""
    p = Path(path)
    if p.is_dir():
        yield from dump_log(p, describe)
    elif p.name.endswith(INDEX_SUFFIX):
        yield dump_index(p)
    elif p.name.endswith(CHECKPOINT_SUFFIX):
        yield dump_checkpoint(p)
    else:
        yield from dump_segment(p, describe)
