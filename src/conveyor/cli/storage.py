"""``conveyor storage inspect``: print a node's files for people, offline.

Works on files, not on a server: a segment (``.seg``), index (``.idx``) or checkpoint
(``.ckpt``) file, a partition or log directory, a queue directory
(``queues/<uid>/``) or a whole data directory, whose ``catalog.json`` names each
queue's directory. Nothing is written, so it is safe on the data directory of a
running node (the last record of an active segment may show as torn while it is
being written).

People get :mod:`conveyor.storage.inspect`'s lines. ``--json`` prints one JSON line per
record of every segment (``{"kind": "record", "file", "queue", "partition", "offset",
"type", "type_name", "ts_ms", "bytes", "crc_ok", "position", "describe"}``) and one per
other fact (``{"kind": "segment" | "problem" | "file", ..., "text"}``; ``"preallocated"``
with ``position`` and ``bytes`` for the zeros an active segment holds ahead of its
appends).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crc32c import crc32c

from conveyor.cli.exits import CliError, Exit
from conveyor.cli.output import Output
from conveyor.partition.records import TYPE_NAMES, describe
from conveyor.storage import format as fmt
from conveyor.storage import inspect
from conveyor.storage.fsutil import pread_exact
from conveyor.storage.segment import SEGMENT_SUFFIX, first_nonzero

_PARTITION_RE = re.compile(r"^p(\d+)$")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = sub.add_parser(
        "storage",
        help="inspect a node's files (offline)",
        description="Look at a node's storage files. Needs no server.",
        parents=[common],
    )
    ssub = sp.add_subparsers(dest="storage_command", metavar="ACTION")
    ssub.required = True
    i = ssub.add_parser(
        "inspect",
        help="print the records of a segment, partition or data directory",
        description="Print every record of a segment file, or of every segment under a "
        "partition, queue or data directory, one line each: offset, record type, time, "
        "size, CRC check, file position and what the record says. Damaged or torn data "
        "is reported and the dump goes on. Read-only; needs no server.",
        parents=[common],
    )
    i.add_argument("path", help="a .seg/.idx/.ckpt file, or a partition, queue or data directory")
    i.add_argument("--queue", metavar="NAME", help="data directory: only this queue")
    i.add_argument("--partition", type=int, metavar="N", help="only partition N")
    i.set_defaults(func=cmd_inspect)


# ------------------------------------------------------------------ what a path holds
class _Target:
    def __init__(self, path: Path, queue: str | None, partition: int | None) -> None:
        self.path = path
        self.queue = queue
        self.partition = partition

    @property
    def title(self) -> str:
        parts = []
        if self.queue is not None:
            parts.append(f"queue {self.queue}")
        if self.partition is not None:
            parts.append(f"partition {self.partition}")
        return ", ".join(parts) + f" ({self.path})" if parts else str(self.path)


def _catalog_names(data_dir: Path) -> dict[str, str]:
    """uid -> queue name, read from ``catalog.json`` (tolerating its absence)."""
    try:
        doc = json.loads((data_dir / "catalog.json").read_bytes())
        return {q["uid"]: q["name"] for q in doc.get("queues", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _partitions(queue_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for entry in os.listdir(queue_dir):
        m = _PARTITION_RE.match(entry)
        if m and (queue_dir / entry).is_dir():
            out.append((int(m.group(1)), queue_dir / entry))
    return sorted(out)


def targets(path: Path, queue: str | None = None, partition: int | None = None) -> list[_Target]:
    """The partitions (or the single file or log) that ``path`` names."""
    if not path.exists():
        raise CliError(Exit.NOT_FOUND, "NotFound", f"no such file or directory: {path}")
    if path.is_dir() and (path / "queues").is_dir():  # a data directory
        names = _catalog_names(path)
        out = []
        for uid in sorted(os.listdir(path / "queues"), key=lambda u: (names.get(u, "~"), u)):
            name = names.get(uid, f"(uid {uid}, not in the catalog)")
            if queue is not None and name != queue:
                continue
            for index, pdir in _partitions(path / "queues" / uid):
                if partition is None or index == partition:
                    out.append(_Target(pdir, name, index))
        if queue is not None and not out:
            raise CliError(Exit.NOT_FOUND, "NotFound", f"no queue {queue!r} in {path}")
        return out
    if path.is_dir() and _partitions(path):  # a queue directory
        return [
            _Target(pdir, None, index)
            for index, pdir in _partitions(path)
            if partition is None or index == partition
        ]
    return [_Target(path, None, None)]


# ------------------------------------------------------------------ JSON records
def segment_records(path: Path) -> Iterator[dict[str, Any]]:
    """The frames of a segment file as dicts, verified, never trusting the file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        try:
            h = fmt.decode_segment_header(pread_exact(fd, fmt.SEGMENT_HEADER_BYTES, 0))
            yield {
                "kind": "segment",
                "base_offset": h.base_offset,
                "generation": h.generation,
                "compacted": bool(h.compacted),
                "bytes": size,
            }
        except fmt.FormatError as exc:
            yield {"kind": "problem", "position": 0, "text": f"header damaged: {exc}"}
        pos = fmt.SEGMENT_HEADER_BYTES
        while pos < size:
            try:
                view = fmt.peek_frame(pread_exact(fd, fmt.FRAME_HEADER_BYTES, pos), 0)
            except fmt.TornFrame:
                yield {"kind": "problem", "position": pos, "text": "torn frame header"}
                return
            if view.length == 0 and first_nonzero(fd, b"", 0, pos, size) is None:
                yield {"kind": "preallocated", "position": pos, "bytes": size - pos}
                return
            if not fmt.FRAME_LENGTH_MIN <= view.length <= fmt.FRAME_LENGTH_MAX:
                yield {"kind": "problem", "position": pos, "text": f"frame length {view.length}"}
                return
            end = pos + fmt.FRAME_LENGTH_FIELD_BYTES + view.length
            if end > size:
                yield {"kind": "problem", "position": pos, "text": "torn frame"}
                return
            frame = pread_exact(fd, end - pos, pos)
            payload = frame[fmt.FRAME_HEADER_BYTES :]
            try:
                text = describe(view.type, payload)
            except Exception as exc:  # a damaged payload is reported, not fatal
                text = f"undecodable: {exc!r}"
            yield {
                "kind": "record",
                "offset": view.offset,
                "type": view.type,
                "type_name": TYPE_NAMES.get(view.type, str(view.type)),
                "ts_ms": view.ts_ms,
                "bytes": len(payload),
                "crc_ok": crc32c(memoryview(frame)[8:]) == view.crc,
                "version": view.version,
                "position": pos,
                "describe": text,
            }
            pos = end
    finally:
        os.close(fd)


def _segment_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.name.endswith(SEGMENT_SUFFIX) else []
    found: list[Path] = []
    for root, _dirs, files in os.walk(path):
        found.extend(Path(root) / f for f in files if f.endswith(SEGMENT_SUFFIX))
    return sorted(found)


def cmd_inspect(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.path)
    found = targets(path, args.queue, args.partition)
    if out.json_mode:
        for t in found:
            for seg in _segment_files(t.path):
                for item in segment_records(seg):
                    out.json_line(
                        {"file": str(seg), "queue": t.queue, "partition": t.partition, **item}
                    )
        return Exit.OK
    write = sys.stdout.write
    try:
        for t in found:
            if len(found) > 1 or t.queue is not None:
                write(f"=== {t.title}\n")
            for line in inspect.inspect_path(t.path, describe):
                write(line + "\n")
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise CliError(Exit.ERROR, "StorageError", f"reading {path}: {exc}") from None
    sys.stdout.flush()
    if not found:
        out.note(f"no partitions under {path}")
    return Exit.OK
