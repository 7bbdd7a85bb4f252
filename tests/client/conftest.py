"""Fixtures for the client tests: a real ``conveyor serve`` subprocess (shared by the
tests of a module; each test uses its own queue names), and unique queue names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing import ServerProcess

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("client") / "data") as proc:
        yield proc


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own (to kill, stop or restart)."""
    with ServerProcess(tmp_path / "data") as proc:
        yield proc


@pytest.fixture
def qname(request: pytest.FixtureRequest) -> str:
    """A queue name unique in the session."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:50]
    return f"{base}-{next(_names)}"
