"""Fixtures: one SQS server for the whole directory, and boto3 clients of both protocols.

The server is ``conveyor serve`` in a subprocess (``conveyor.testing.ServerProcess``)
when that helper exists, else the same HTTP server and SQS API in this process. Tests
share it and keep apart by giving their queues unique names
(:func:`sqs_server_helpers.qname`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqs_server_helpers import InProcessServer, make_client, write_query_model


class _Server:
    """What the tests need of a server: its URL and, for restarts, a way to restart."""

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    @property
    def url(self) -> str:
        return str(self.impl.http_url)


def _start_server(data_dir: Path) -> Any:
    try:
        from conveyor.testing import ServerProcess  # type: ignore[import-not-found]
    except ImportError:
        return InProcessServer(data_dir).start()
    proc = ServerProcess(data_dir=data_dir)
    proc.__enter__()
    return proc


def _stop_server(impl: Any) -> None:
    if isinstance(impl, InProcessServer):
        impl.stop()
    else:
        impl.__exit__(None, None, None)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    impl = _start_server(tmp_path_factory.mktemp("sqs-server-data"))
    try:
        yield _Server(impl)
    finally:
        _stop_server(impl)


@pytest.fixture(scope="session")
def query_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_query_model(tmp_path_factory.mktemp("botocore-query-model"))


ClientFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def client_for(server: _Server, query_dir: Path) -> ClientFactory:
    """``client_for("json" | "query", **options)``: a boto3 client on the server."""

    def make(protocol: str = "json", **options: Any) -> Any:
        return make_client(server.url, protocol, query_dir, **options)

    return make


@pytest.fixture(scope="session", params=["json", "query"])
def sqs(request: pytest.FixtureRequest, client_for: ClientFactory) -> Any:
    """A boto3 client in each protocol (tests using it run twice)."""
    return client_for(request.param)


@pytest.fixture(scope="session")
def sqs_json(client_for: ClientFactory) -> Any:
    return client_for("json")
