"""Fixtures: one etcd for the directory, and the coordinator under test (both kinds)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from etcd_harness import Env, EtcdEnv, MemoryEnv, require_etcd

from conveyor.coordination.etcd import EtcdCoordinator
from conveyor.coordination.etcd_server import EtcdServer


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One throwaway etcd on loopback; tests that stop or kill etcd start their own."""
    binary = require_etcd()
    with EtcdServer(binary=binary) as server:
        yield server


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> Iterator[EtcdCoordinator]:
    """An etcd coordinator under a prefix of its own, so tests do not see each other."""
    with EtcdCoordinator(
        [etcd_server.endpoint], prefix=f"/test-{uuid.uuid4().hex[:10]}/", timeout_s=2.0
    ) as coordinator:
        yield coordinator


@pytest.fixture(params=["memory", "etcd"])
def env(request: pytest.FixtureRequest) -> Env:
    if request.param == "memory":
        return MemoryEnv()
    return EtcdEnv(request.getfixturevalue("etcd"))
