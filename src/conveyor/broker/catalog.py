"""The catalog: which queues exist on this node, with their configuration.

On a single node the catalog is one file, ``catalog.json`` in the data directory,
replaced atomically (write a temporary file, fsync it, rename it over the old one,
fsync the directory). A queue is identified by a random ``uid``; its partitions live in
``queues/<uid>/p<index>/``, so a queue re-created under an old name starts empty and the
old one's receipt handles stay invalid. Directories under ``queues/`` that the catalog
does not name are left-overs of an interrupted delete and are removed on open.

In cluster mode the same records live in the coordinator instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import msgspec

from conveyor.queue import QueueConfig


class QueueMeta(msgspec.Struct, kw_only=True):
    name: str
    uid: str  # 16 hex digits
    config: QueueConfig
    created_ms: int
    modified_ms: int
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class _CatalogFile(msgspec.Struct):
    version: int
    queues: list[QueueMeta]


def new_uid() -> str:
    return secrets.token_hex(8)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Catalog:
    """Queue metadata by name; persisted on every change when it has a directory."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.queues: dict[str, QueueMeta] = {}
        if root is not None:
            (root / "queues").mkdir(parents=True, exist_ok=True)
            path = root / "catalog.json"
            if path.exists():
                data = msgspec.json.decode(path.read_bytes(), type=_CatalogFile)
                self.queues = {q.name: q for q in data.queues}
            self._remove_orphans()

    def partition_dir(self, meta: QueueMeta, index: int) -> Path | None:
        if self.root is None:
            return None
        return self.root / "queues" / meta.uid / f"p{index}"

    def save(self) -> None:
        if self.root is None:
            return
        data = _CatalogFile(version=1, queues=sorted(self.queues.values(), key=lambda q: q.name))
        write_atomically(self.root / "catalog.json", msgspec.json.encode(data))

    def put(self, meta: QueueMeta) -> None:
        self.queues[meta.name] = meta
        self.save()

    def remove(self, name: str) -> QueueMeta:
        meta = self.queues.pop(name)
        self.save()
        if self.root is not None:
            shutil.rmtree(self.root / "queues" / meta.uid, ignore_errors=True)
        return meta

    def _remove_orphans(self) -> None:
        assert self.root is not None
        known = {q.uid for q in self.queues.values()}
        for child in (self.root / "queues").iterdir():
            if child.name not in known:
                shutil.rmtree(child, ignore_errors=True)
