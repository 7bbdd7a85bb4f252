"""Fixtures of the storage tests: a log of either kind, and an fsync seam that counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.storage import Committer

from .storage_helpers import FsyncSeam, LogFactory


@pytest.fixture
def fsyncs() -> FsyncSeam:
    return FsyncSeam()


@pytest.fixture
def committer() -> Iterator[Committer]:
    c = Committer(threads_max=2, name="test-commit")
    yield c
    c.close(timeout_s=5)


@pytest.fixture(params=["file", "memory"])
def make_log(
    request: pytest.FixtureRequest, tmp_path: Path, committer: Committer
) -> Iterator[LogFactory]:
    factory = LogFactory(request.param, tmp_path / "log", committer)
    yield factory
    factory.close_all()
