"""``GET /api/v1/cluster`` and ``conveyor cluster status --json`` on three real nodes
and a real etcd: every node answers with the same nodes, leader and ISR, the answer
matches the admin API's OpenAPI document, and each node reports its own replica."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

import conveyor
from conveyor import errors
from conveyor.testing import LocalCluster, ServerProcess

pytestmark = pytest.mark.timeout(120)

LEASE_TTL_MS = 2_000
NODES = ("n1", "n2", "n3")


def _need_etcd() -> None:
    if shutil.which("etcd") is None:
        message = "etcd is not installed (./scripts/install installs Debian's etcd-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    _need_etcd()
    root = tmp_path_factory.mktemp("cluster-status")
    with LocalCluster(root, len(NODES), lease_ttl_ms=LEASE_TTL_MS) as c:
        yield c.nodes


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())


def status(node: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = get_json(node.http_url + "/api/v1/cluster")
    return body


def partition(body: dict[str, Any], queue: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in body["partitions"] if p["queue"] == queue]
    (p,) = found
    return p


def wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def create_queue(node: ServerProcess, name: str) -> None:
    with conveyor.Client(node.native_address) as client:
        try:
            client.create_queue(name)
        except errors.QueueDoesNotExist:
            pass  # created; this node had not opened it yet when it read it back
        wait(lambda: _settled(name, node), 15, f"{name} to have a leader and a full ISR")
        for i in range(5):
            client.send(name, f"m{i}")


def _settled(queue: str, node: ServerProcess) -> bool:
    parts = [p for p in status(node)["partitions"] if p["queue"] == queue]
    return bool(parts) and parts[0]["leader"] is not None and len(parts[0]["isr"]) == 3


def cli_status(node: ServerProcess) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "conveyor", "--address", node.native_address]
    proc = subprocess.run(
        [*cmd, "cluster", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    body: dict[str, Any] = json.loads(proc.stdout)
    return body


def test_every_node_reports_nodes_leader_and_isr(nodes: dict[str, ServerProcess]) -> None:
    create_queue(nodes["n1"], "orders")
    spec = get_json(nodes["n1"].http_url + "/api/v1/openapi.json")
    schema = {
        "$ref": "#/components/schemas/Cluster",
        "components": spec["components"],
    }

    def replicas_caught_up() -> bool:
        ends = set()
        for node in nodes.values():
            local = partition(status(node), "orders").get("local")
            if local is None:
                return False
            ends.add((local["log_end"], local["commit"]))
        (log_end, commit), *rest = ends
        return not rest and log_end == commit >= 5

    wait(replicas_caught_up, 10, "every replica to commit the same log")
    leader = partition(status(nodes["n1"]), "orders")["leader"]
    assert leader in NODES
    for name, node in nodes.items():
        body = status(node)
        jsonschema.Draft202012Validator(schema).validate(body)
        assert body["node"] == name
        assert body["controller"] in NODES
        assert [n["id"] for n in body["nodes"]] == list(NODES)
        for n in body["nodes"]:
            srv = nodes[n["id"]]
            assert n["http"] == f"127.0.0.1:{srv.port}"
            assert n["native"] == srv.native_address
            assert n["replicas"] == len(body["partitions"])  # replication factor 3
            assert n["lease_hex"] == f"{n['lease']:x}"
        p = partition(body, "orders")
        assert p["partition"] == 0 and p["name"].endswith("-p0")
        assert p["leader"] == leader
        assert sorted(p["replicas"]) == sorted(p["isr"]) == list(NODES)
        assert p["epoch"] >= 1
        local = p["local"]
        assert local["role"] == ("leader" if name == leader else "follower")
        assert local["commit"] == local["log_end"] >= 5  # the five sends, all committed
        assert local["durable_end"] == local["log_end"]


def test_cli_shows_what_the_api_shows(nodes: dict[str, ServerProcess]) -> None:
    create_queue(nodes["n2"], "jobs")
    for name, node in nodes.items():
        api = status(node)
        cli = cli_status(node)
        assert cli["node"] == api["node"]
        assert [(n["id"], n["http"], n["native"]) for n in cli["nodes"]] == [
            (n["id"], n["http"], n["native"]) for n in api["nodes"]
        ]
        a, c = partition(api, "jobs"), partition(cli, "jobs")
        assert (c["leader"], c["epoch"], c["replicas"], c["isr"]) == (
            a["leader"],
            a["epoch"],
            a["replicas"],
            a["isr"],
        )
        assert sorted(c["isr"]) == list(NODES)
        assert c["local"]["role"] == a["local"]["role"]
        assert (c["local"]["role"] == "leader") == (name == a["leader"])
