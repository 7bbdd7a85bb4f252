"""Fixtures for the CLI tests: a real server per module (helpers in cli_harness)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_harness import Cli, Result, run_cli

from conveyor.testing import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("cli-server") / "data"
    with ServerProcess(data) as srv:
        yield srv


@pytest.fixture
def cli(server: ServerProcess) -> Cli:
    """Run ``conveyor ARGS...`` against the module's server."""

    def run(*args: str, input: str | None = None) -> Result:
        return run_cli(*args, address=server.native_address, input=input)

    return run


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue name unique to the test."""
    name: str = request.node.name
    name = name.replace("[", "-").replace("]", "").replace(".", "-")
    return name[-70:]
