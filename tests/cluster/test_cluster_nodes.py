"""Three Conveyor nodes and a real etcd, as subprocesses on loopback.

A queue with replication factor 3: every node answers (requests go to the leader), a
SIGKILL of the leader under load loses nothing that was acknowledged, and the clients
carry on against the new leader within seconds.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from conveyor import errors
from conveyor.testing import LocalCluster
from conveyor.types import SendEntry

pytestmark = pytest.mark.timeout(180)

LEASE_TTL_MS = 2_000


def _need_etcd() -> None:
    if shutil.which("etcd") is None:
        message = "etcd is not installed (./scripts/install installs Debian's etcd-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


Cluster = LocalCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    _need_etcd()
    with LocalCluster(tmp_path, 3, lease_ttl_ms=LEASE_TTL_MS) as c:
        yield c


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_any_node_answers_and_replicas_agree(cluster: Cluster) -> None:
    addresses = [n.native_address for n in cluster.nodes.values()]
    with conveyor.Client(addresses[0]) as admin:
        admin.create_queue("orders", {"visibility_timeout_s": 30})
    sent = set()
    for i, address in enumerate(addresses * 5):
        with conveyor.Client(address) as client:
            body = f"order {i}"
            client.send("orders", body)
            sent.add(body)
    status = cluster.status("n2")
    (part,) = [p for p in status["partitions"] if p["queue"] == "orders"]
    assert sorted(part["replicas"]) == ["n1", "n2", "n3"]
    assert sorted(part["isr"]) == ["n1", "n2", "n3"]
    got = set()
    with conveyor.Client(addresses[2]) as client:
        while len(got) < len(sent):
            batch = client.receive("orders", max_messages=10, wait_s=1)
            assert batch, f"only {len(got)} of {len(sent)} came back"
            for m in batch:
                got.add(m.text)
                client.delete("orders", m.receipt_handle)
    assert got == sent

    # every replica holds the same committed log
    def caught_up() -> bool:
        ends = set()
        for name in cluster.nodes:
            (p,) = [p for p in cluster.status(name)["partitions"] if p["queue"] == "orders"]
            ends.add((p["local"]["log_end"], p["local"]["commit"]))
        return len(ends) == 1

    _wait(caught_up, 10, "the replicas to agree")


def test_leader_killed_under_load_loses_nothing_acknowledged(cluster: Cluster) -> None:
    names = list(cluster.nodes)
    with conveyor.Client(cluster.nodes[names[0]].native_address) as admin:
        admin.create_queue("jobs", {"visibility_timeout_s": 60})
    leader = cluster.leader("jobs", names[0])
    assert leader is not None
    survivors = [n for n in names if n != leader]

    acked: list[str] = []
    acked_lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []

    def produce(worker: int) -> None:
        address = cluster.nodes[survivors[worker % len(survivors)]].native_address
        with conveyor.Client(address, timeout_s=30) as client:
            i = 0
            while not stop.is_set() and i < 400:
                body = f"job {worker}-{i}"
                try:
                    client.send("jobs", body)
                except errors.ConveyorError:
                    continue  # outcome unknown: not acknowledged, may still arrive
                except Exception as exc:  # pragma: no cover - reported below
                    failures.append(exc)
                    return
                with acked_lock:
                    acked.append(body)
                i += 1

    producers = [threading.Thread(target=produce, args=(w,)) for w in range(3)]
    for t in producers:
        t.start()
    _wait(lambda: len(acked) >= 100, 30, "100 acknowledged sends before the kill")
    killed_at = time.monotonic()
    cluster.nodes[leader].kill()
    count_at_kill = len(acked)
    _wait(lambda: len(acked) >= count_at_kill + 50, 30, "sends acknowledged after the kill")
    recovered_s = time.monotonic() - killed_at
    stop.set()
    for t in producers:
        t.join(60)
    assert not failures, failures
    assert recovered_s < 15, recovered_s

    new_leader = cluster.leader("jobs", survivors[0])
    assert new_leader in survivors
    got: set[str] = set()
    with conveyor.Client(cluster.nodes[survivors[1]].native_address, timeout_s=30) as client:
        empty = 0
        while empty < 2:
            batch = client.receive("jobs", max_messages=10, wait_s=1)
            if not batch:
                empty += 1
                continue
            for m in batch:
                got.add(m.text)
            client.delete_batch("jobs", [m.receipt_handle for m in batch])
    missing = set(acked) - got
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"


def test_sqs_api_on_every_node(cluster: Cluster) -> None:
    import boto3

    clients = {
        name: boto3.client(
            "sqs",
            endpoint_url=node.http_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        for name, node in cluster.nodes.items()
    }
    url = clients["n2"].create_queue(QueueName="emails")["QueueUrl"]
    leader = cluster.leader("emails", "n1")
    others = [name for name in clients if name != leader]
    for name in clients:
        clients[name].send_message(QueueUrl=url, MessageBody=f"from {name}")
    clients[others[0]].set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
    attrs = clients[others[1]].get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "45"
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "3"
    got = []
    while len(got) < 3:
        resp = clients[others[1]].receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for m in resp.get("Messages", []):
            got.append(m["Body"])
            clients[others[0]].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(got) == sorted(f"from {name}" for name in clients)
    # each node names the queue by its own address
    (listed,) = clients["n3"].list_queues()["QueueUrls"]
    assert listed == cluster.nodes["n3"].http_url + "/000000000000/emails"


def test_paused_leader_is_fenced(cluster: Cluster) -> None:
    """SIGSTOP the leader past its lease: a new leader takes over; when the old one
    wakes it acknowledges nothing more, and every acknowledged message is there."""
    import signal

    names = list(cluster.nodes)
    with conveyor.Client(cluster.nodes[names[0]].native_address) as admin:
        admin.create_queue("payments", {"visibility_timeout_s": 60})
    leader = cluster.leader("payments", names[0])
    assert leader is not None
    others = [n for n in names if n != leader]
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(address: str, tag: str) -> None:
        with conveyor.Client(address, timeout_s=20) as client:
            i = 0
            while not stop.is_set():
                body = f"{tag}-{i}"
                i += 1
                try:
                    client.send("payments", body)
                except errors.ConveyorError:
                    continue
                with lock:
                    acked.append(body)

    threads = [
        # one producer talks to the leader itself, one to another node
        threading.Thread(target=produce, args=(cluster.nodes[leader].native_address, "direct")),
        threading.Thread(target=produce, args=(cluster.nodes[others[0]].native_address, "routed")),
    ]
    for t in threads:
        t.start()
    _wait(lambda: len(acked) >= 50, 30, "sends before the pause")
    old = cluster.nodes[leader]
    os.kill(old.pid, signal.SIGSTOP)
    try:
        _wait(lambda: cluster.leader("payments", others[0]) in others, 20, "a new leader")
        count = len(acked)
        _wait(lambda: len(acked) >= count + 20, 30, "sends to the new leader")
    finally:
        os.kill(old.pid, signal.SIGCONT)
    time.sleep(2)  # the old leader wakes up with requests in flight
    stop.set()
    for t in threads:
        t.join(60)
    status = cluster.status(leader)
    (part,) = [p for p in status["partitions"] if p["queue"] == "payments"]
    assert part["local"]["role"] != "leader"
    got: set[str] = set()
    with conveyor.Client(cluster.nodes[others[1]].native_address, timeout_s=30) as client:
        empty = 0
        while empty < 2:
            batch = client.receive("payments", max_messages=10, wait_s=1)
            if not batch:
                empty += 1
                continue
            got.update(m.text for m in batch)
            client.delete_batch("payments", [m.receipt_handle for m in batch])
    missing = set(acked) - got
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"


class _Load:
    """Producers sending through the given nodes until stopped; what was acknowledged."""

    def __init__(self, cluster: Cluster, queue: str, via: list[str]) -> None:
        self.acked: list[str] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(cluster.nodes[name].native_address, i, queue))
            for i, name in enumerate(via)
        ]

    def _run(self, address: str, worker: int, queue: str) -> None:
        with conveyor.Client(address, timeout_s=30) as client:
            i = 0
            while not self._stop.is_set():
                body = f"{queue}-{worker}-{i}"
                i += 1
                try:
                    client.send(queue, body)
                except errors.ConveyorError:
                    with self._lock:
                        self.errors += 1
                    continue
                with self._lock:
                    self.acked.append(body)
                time.sleep(0.005)

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _drain_queue(address: str, queue: str) -> set[str]:
    got: set[str] = set()
    with conveyor.Client(address, timeout_s=30) as client:
        empty = 0
        while empty < 2:
            batch = client.receive(queue, max_messages=10, wait_s=1)
            if not batch:
                empty += 1
                continue
            got.update(m.text for m in batch)
            client.delete_batch(queue, [m.receipt_handle for m in batch])
    return got


def _replicas(cluster: Cluster, via: str) -> dict[str, int]:
    return {n["id"]: n["replicas"] for n in cluster.status(via)["nodes"]}


def test_node_added_under_load_gets_replicas(cluster: Cluster) -> None:
    queues = ["q1", "q2", "q3"]
    with conveyor.Client(cluster.nodes["n1"].native_address) as admin:
        for q in queues:
            admin.create_queue(q)
    with _Load(cluster, "q1", ["n2", "n3"]) as load:
        _wait(lambda: len(load.acked) >= 50, 30, "load before the new node")
        cluster.add("n4").start()
        # 9 replicas over 4 nodes, each partition back to 3 in-sync replicas
        _wait(
            lambda: (
                sorted(_replicas(cluster, "n1").values()) == [2, 2, 2, 3]
                and all(
                    sorted(p["isr"]) == sorted(p["replicas"]) and len(p["replicas"]) == 3
                    for p in cluster.status("n1")["partitions"]
                )
            ),
            60,
            "the moves to finish",
        )
        assert _replicas(cluster, "n1")["n4"] >= 2
        count = len(load.acked)
        _wait(lambda: len(load.acked) >= count + 20, 30, "load after the moves")
    got = _drain_queue(cluster.nodes["n4"].native_address, "q1")
    missing = set(load.acked) - got
    assert not missing, f"{len(missing)} acknowledged messages lost"


def test_drained_node_leaves_with_nothing_lost(cluster: Cluster) -> None:
    cluster.add("n4").start()
    with conveyor.Client(cluster.nodes["n1"].native_address) as admin:
        for q in ("d1", "d2"):
            admin.create_queue(q)
    held = _replicas(cluster, "n1")
    victim = max(held, key=lambda n: (held[n], n))
    assert held[victim] >= 1
    senders = [n for n in cluster.nodes if n != victim][:2]
    with _Load(cluster, "d1", senders) as load:
        _wait(lambda: len(load.acked) >= 50, 30, "load before the drain")
        with conveyor.Client(cluster.nodes[senders[0]].native_address) as admin:
            assert admin.drain_node(victim) >= 1
            _wait(lambda: admin.drain_node(victim) == 0, 90, f"{victim} to hold no replica")
        count = len(load.acked)
        _wait(lambda: len(load.acked) >= count + 20, 30, "load after the drain")
    assert cluster.nodes[victim].terminate() == 0
    got = _drain_queue(cluster.nodes[senders[1]].native_address, "d1")
    missing = set(load.acked) - got
    assert not missing, f"{len(missing)} acknowledged messages lost"


def test_etcd_restart_does_not_stop_the_data_plane(tmp_path: Path) -> None:
    """etcd down for less than a lease: leaders keep their leases and keep serving."""
    _need_etcd()
    c = LocalCluster(tmp_path, 3, lease_ttl_ms=8_000)
    try:
        c.start()
        with conveyor.Client(c.nodes["n1"].native_address) as admin:
            admin.create_queue("steady")
        with _Load(c, "steady", ["n1", "n2", "n3"]) as load:
            _wait(lambda: len(load.acked) >= 30, 30, "load before etcd stops")
            c.etcd.kill()
            count, errors_before = len(load.acked), load.errors
            _wait(lambda: len(load.acked) >= count + 30, 20, "sends while etcd is down")
            assert load.errors == errors_before
            c.etcd.start()
            count = len(load.acked)
            _wait(lambda: len(load.acked) >= count + 30, 30, "sends after etcd is back")
        # the control plane works again: a new queue, served at once
        with conveyor.Client(c.nodes["n2"].native_address) as admin:
            admin.create_queue("after-etcd")
            admin.send("after-etcd", "hello")
        got = _drain_queue(c.nodes["n3"].native_address, "steady")
        assert not set(load.acked) - got
    finally:
        c.stop()


def test_writes_refused_below_min_insync_reads_go_on(cluster: Cluster) -> None:
    with conveyor.Client(cluster.nodes["n1"].native_address) as admin:
        admin.create_queue("strict")
        admin.send("strict", "before")
    leader = cluster.leader("strict", "n1")
    followers = [n for n in cluster.nodes if n != leader]
    for name in followers:
        cluster.nodes[name].kill()
    assert leader is not None
    with conveyor.Client(cluster.nodes[leader].native_address, timeout_s=8) as client:
        # the ISR shrinks to the leader alone: below min_insync 2, sends are refused
        def refused() -> bool:
            try:
                client.send("strict", "after")
            except errors.Unavailable as exc:
                return "min_insync" in str(exc) or "in-sync" in str(exc)
            except errors.ConveyorError:
                return False
            return False

        _wait(refused, 30, "sends to be refused")
        # what was committed can still be read
        (msg,) = client.peek("strict")
        assert msg.text == "before"


def test_queue_with_partitions_led_by_different_nodes(cluster: Cluster) -> None:
    """Three partitions, three leaders: sends land where they are led, receives fan
    out over all of them, deletes follow their handle's partition."""
    with conveyor.Client(cluster.nodes["n1"].native_address) as admin:
        admin.create_queue("wide", {"partitions": 3})
        admin.create_queue(
            "wide.fifo",
            {"partitions": 3, "content_dedup": True, "dedup_scope": "message_group"},
        )
    leaders = {
        p["partition"]: p["leader"]
        for p in cluster.status("n1")["partitions"]
        if p["queue"] == "wide"
    }
    assert sorted(leaders.values()) == ["n1", "n2", "n3"], leaders

    sent = set()
    for name, node in cluster.nodes.items():
        with conveyor.Client(node.native_address) as client:
            for i in range(10):
                client.send("wide", f"{name}-{i}")
                sent.add(f"{name}-{i}")
    got = _drain_queue(cluster.nodes["n2"].native_address, "wide")
    assert got == sent

    # FIFO: every group keeps its order across partitions and leaders
    groups = [f"g{i}" for i in range(6)]
    with conveyor.Client(cluster.nodes["n3"].native_address) as client:
        for i in range(5):
            client.send_batch("wide.fifo", [SendEntry(body=f"{g}:{i}", group_id=g) for g in groups])
    seen: dict[str, list[int]] = {g: [] for g in groups}
    with conveyor.Client(cluster.nodes["n1"].native_address) as client:
        while sum(len(v) for v in seen.values()) < 30:
            batch = client.receive("wide.fifo", max_messages=10, wait_s=2)
            assert batch, seen
            for m in batch:
                g, i = m.text.split(":")
                seen[g].append(int(i))
            errs = client.delete_batch("wide.fifo", [m.receipt_handle for m in batch])
            assert errs == [None] * len(batch)
    assert all(v == list(range(5)) for v in seen.values()), seen


def test_cluster_with_fsync_never_elects_and_serves(tmp_path: Path) -> None:
    """A weaker fsync policy only makes replicas unclean after a crash, not always."""
    _need_etcd()
    c = LocalCluster(tmp_path, 3, lease_ttl_ms=LEASE_TTL_MS, fsync="never")
    try:
        c.start()
        with conveyor.Client(c.nodes["n1"].native_address) as client:
            client.create_queue("fast")
            client.send("fast", "hello")
        assert _drain_queue(c.nodes["n2"].native_address, "fast") == {"hello"}
        # a clean restart keeps the node eligible
        assert c.nodes["n1"].terminate() == 0
        c.nodes["n1"].start()
        status = c.status("n1")
        assert {n["id"] for n in status["nodes"]} == {"n1", "n2", "n3"}
    finally:
        c.stop()


def test_replicas_of_a_node_gone_for_good_are_rebuilt(tmp_path: Path) -> None:
    _need_etcd()
    c = LocalCluster(tmp_path, 4, lease_ttl_ms=LEASE_TTL_MS, replace_after_s=3)
    try:
        c.etcd.start()
        for name in ("n1", "n2", "n3"):
            c.nodes[name].start()
        with conveyor.Client(c.nodes["n1"].native_address) as client:
            client.create_queue("kept")
            for i in range(20):
                client.send("kept", f"m{i}")
        c.nodes["n4"].start()  # 3 replicas on 4 nodes: balanced, nothing moves
        leader = c.leader("kept", "n1")
        victim = next(n for n in ("n1", "n2", "n3") if n != leader)
        c.nodes[victim].kill()

        def rebuilt() -> bool:
            (p,) = [p for p in c.status(leader)["partitions"] if p["queue"] == "kept"]
            return victim not in p["replicas"] and sorted(p["isr"]) == sorted(p["replicas"])

        _wait(rebuilt, 60, f"{victim}'s replica to be rebuilt on n4")
        survivors = [n for n in c.nodes if n != victim]
        for name in survivors:  # n4 caught up: it has the whole log
            (p,) = [p for p in c.status(name)["partitions"] if p["queue"] == "kept"]
            assert len(p["replicas"]) == 3 and "n4" in p["replicas"]
        got = _drain_queue(c.nodes["n4"].native_address, "kept")
        assert got == {f"m{i}" for i in range(20)}
    finally:
        c.stop()


def test_dead_letter_and_redrive_across_leaders(cluster: Cluster) -> None:
    with conveyor.Client(cluster.nodes["n1"].native_address) as admin:
        admin.create_queue("jobs-dlq")
        admin.create_queue(
            "jobs",
            {
                "visibility_timeout_s": 1,
                "redrive": {"dead_letter_queue": "jobs-dlq", "max_receive_count": 2},
            },
        )
    assert cluster.leader("jobs", "n1") != cluster.leader("jobs-dlq", "n1")
    with conveyor.Client(cluster.nodes["n3"].native_address, timeout_s=30) as client:
        client.send("jobs", "poison")
        for _ in range(2):  # received and never deleted: it comes back
            (msg,) = client.receive("jobs", wait_s=5)
            assert msg.text == "poison"
        # the third receive finds it over the limit and moves it to the other leader's DLQ
        assert client.receive("jobs", wait_s=3) == []
        (dead,) = client.receive("jobs-dlq", wait_s=5)
        assert dead.text == "poison"
        client.change_visibility("jobs-dlq", dead.receipt_handle, 0)
        assert client.redrive("jobs-dlq") == 1
        (back,) = client.receive("jobs", wait_s=5)
        assert back.text == "poison" and back.receive_count == 1
