"""File-system primitives the storage layer builds on: whole reads and writes, writing
zeros, fsync of a directory, atomic replacement of a file.

Every fsync goes through a caller-given function (``fsync_fn``, :func:`os.fsync` in
production) so that tests can count, slow down or fail them without patching :mod:`os`;
so does the fdatasync of a log's append path (``fdatasync_fn``, :data:`fdatasync`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from conveyor.storage import bounds

FsyncFn = Callable[[int], None]

# os.fdatasync where the platform has it (not macOS): the data, and only the metadata
# needed to read it back (a changed size; not the modification time)
fdatasync: FsyncFn = getattr(os, "fdatasync", os.fsync)

TMP_SUFFIX = ".tmp"


def pread_exact(fd: int, size: int, pos: int) -> bytes:
    """Read ``size`` bytes at ``pos``; fewer only if the file ends first."""
    data = os.pread(fd, size, pos)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, pos + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, pos: int) -> None:
    """Write all of ``data`` at ``pos`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        if n <= 0:  # pragma: no cover - the kernel raises instead
            raise OSError("pwrite wrote nothing")
        view = view[n:]
        pos += n


def write_zeros(fd: int, start: int, end: int) -> None:
    """Write zeros over ``[start, end)``: real blocks, not a hole (``ftruncate``) and not
    ``posix_fallocate`` (whose blocks ext4 marks unwritten, and converts in the journal
    at the first write into each)."""
    assert 0 <= start <= end
    zeros = memoryview(bytes(min(end - start, bounds.zero_write_bytes)))
    pos = start
    while pos < end:
        n = min(len(zeros), end - pos)
        pwrite_all(fd, zeros[:n], pos)
        pos += n


def fsync_dir(path: Path, fsync_fn: FsyncFn) -> None:
    """Make the creation, renaming and removal of entries in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fsync_fn(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, fsync_fn: FsyncFn, *, sync: bool = True) -> None:
    """Replace ``path`` by a file holding ``data``: write a temp file, fsync it, rename it
    over ``path``, fsync the directory. A crash leaves the old file or the new one (and
    maybe a ``.tmp`` file, which the owner removes when it opens the directory)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pwrite_all(fd, data, 0)
        if sync:
            fsync_fn(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent, fsync_fn)


def unlink_if_exists(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
