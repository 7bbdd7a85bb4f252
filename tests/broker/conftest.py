from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor


class FakeClock:
    """Milliseconds since the epoch that move only when a test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def broker(data_dir: Path, clock: FakeClock) -> Iterator[conveyor.Broker]:
    b = conveyor.open(data_dir, clock=clock, maintenance_interval_s=None)
    yield b
    b.close()
