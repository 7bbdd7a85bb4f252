"""The real server as a subprocess: health, the native port spoken raw, shutdown, crash."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conveyor.protocol import native as n
from conveyor.testing import ServerProcess, free_port


class Raw:
    """A bare native-protocol connection over a blocking socket."""

    def __init__(self, address: str, max_frame_bytes: int = n.frame_bytes_default) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.conn = n.NativeConnection("client", max_frame_bytes=max_frame_bytes)
        self.sock.sendall(self.conn.send(self.conn.hello(client="test")))
        welcome = self.next()
        assert isinstance(welcome, n.Welcome)
        self.welcome = welcome

    def next(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not n.NEED_DATA:
                return event
            data = self.sock.recv(65536)
            self.conn.receive_data(data)

    def call(self, req: n.Request) -> object:
        self.sock.sendall(self.conn.send(req))
        return self.next()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> object:
    with ServerProcess(tmp_path / "data") as srv:
        yield srv


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_health_and_readiness(server: ServerProcess) -> None:
    assert get(server.http_url + "/healthz") == (200, b'{"status":"ok"}')
    assert get(server.http_url + "/readyz") == (200, b'{"status":"ready"}')


def test_native_round_trip_and_pipelining(server: ServerProcess) -> None:
    raw = Raw(server.native_address)
    assert raw.welcome.node_id
    created = raw.call(n.CreateQueueRequest(id=1, name="jobs"))
    assert created == n.CreateQueueResponse(id=1, name="jobs", created=True)
    again = raw.call(n.CreateQueueRequest(id=2, name="jobs"))
    assert again == n.CreateQueueResponse(id=2, name="jobs", created=False)
    # a long poll in flight does not hold up the sends pipelined behind it
    raw.sock.sendall(raw.conn.send(n.ReceiveRequest(id=10, queue="jobs", wait_s=5)))
    for i in range(20, 25):
        raw.sock.sendall(raw.conn.send(n.SendRequest(id=i, queue="jobs", body=b"m%d" % i)))
    answers = {}
    while 10 not in answers:
        ev = raw.next()
        answers[ev.id] = ev  # type: ignore[attr-defined]
    assert isinstance(answers[10], n.ReceiveResponse)
    assert len(answers[10].messages) == 1
    missing = set(range(20, 25)) - set(answers)
    while missing:
        ev = raw.next()
        missing.discard(ev.id)  # type: ignore[attr-defined]
    got = raw.call(n.ReceiveRequest(id=30, queue="jobs", max_messages=10))
    assert isinstance(got, n.ReceiveResponse) and len(got.messages) == 4
    handles = [m.receipt_handle for m in got.messages] + [answers[10].messages[0].receipt_handle]
    deleted = raw.call(n.DeleteBatchRequest(id=31, queue="jobs", receipt_handles=handles))
    assert deleted == n.DeleteBatchResponse(id=31, results=[None] * 5)
    info = raw.call(n.GetQueueRequest(id=32, name="jobs"))
    assert isinstance(info, n.GetQueueResponse) and info.stats["messages"] == 0
    missing_q = raw.call(n.SendRequest(id=33, queue="nope", body=b"x"))
    assert isinstance(missing_q, n.ErrorResponse)
    assert (missing_q.id, missing_q.code, missing_q.retriable) == (33, "QueueDoesNotExist", False)
    raw.close()


def test_send_batch_entries_with_and_without_attributes(server: ServerProcess) -> None:
    """A batch without attributes is handed to the broker as decoded from the wire; one
    with them is converted: both keep every field, and per-entry errors."""
    raw = Raw(server.native_address)
    raw.call(n.CreateQueueRequest(id=1, name="jobs"))
    attr = n.MessageAttribute(data_type="String", string_value="v")
    plain = [
        n.SendEntry(body=b"a", system={"AWSTraceHeader": "Root=1"}),
        n.SendEntry(body=b"", delay_s=0),  # empty body: an error of its own
        n.SendEntry(body=b"b", delay_s=0),
    ]
    mixed = [n.SendEntry(body=b"c", attributes={"k": attr}), n.SendEntry(body=b"d")]
    answers = [
        raw.call(n.SendBatchRequest(id=10 + i, queue="jobs", entries=batch))
        for i, batch in enumerate((plain, mixed))
    ]
    kinds = [[type(r).__name__ for r in a.results] for a in answers]  # type: ignore[attr-defined]
    assert kinds == [["SendResult", "ErrorInfo", "SendResult"], ["SendResult"] * 2], kinds
    assert answers[0].results[1].code == "MissingParameter"  # type: ignore[attr-defined]
    out = raw.call(n.ReceiveRequest(id=20, queue="jobs", max_messages=10))
    assert isinstance(out, n.ReceiveResponse)
    by_body = {m.body: m for m in out.messages}
    assert sorted(by_body) == [b"a", b"b", b"c", b"d"] and len(out.messages) == 4
    assert by_body[b"a"].system == {"AWSTraceHeader": "Root=1"} and not by_body[b"a"].attributes
    assert by_body[b"c"].attributes == {"k": attr} and not by_body[b"d"].attributes
    raw.close()


def test_garbage_closes_the_connection_not_the_server(server: ServerProcess) -> None:
    rng = random.Random(7)
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.native_port), timeout=5)
        sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):  # the server closes
            data += chunk
        sock.close()
    raw = Raw(server.native_address)
    assert raw.call(n.PingRequest(id=1)) == n.PingResponse(id=1)
    raw.close()


def test_sigterm_answers_long_polls_flushes_and_exits_0(server: ServerProcess) -> None:
    raw = Raw(server.native_address)
    raw.call(n.CreateQueueRequest(id=1, name="q"))
    for i in range(50):
        assert isinstance(raw.call(n.SendRequest(id=i + 2, queue="q", body=b"x")), n.SendResponse)
    poller = Raw(server.native_address)
    poller.call(n.CreateQueueRequest(id=1, name="empty"))
    poller.sock.sendall(poller.conn.send(n.ReceiveRequest(id=2, queue="empty", wait_s=20)))
    time.sleep(0.2)
    started = time.monotonic()
    assert server.terminate() == 0
    assert time.monotonic() - started < 5
    answer = poller.next()
    assert answer == n.ReceiveResponse(id=2, messages=[])
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    msgs = [line["msg"] for line in lines]
    assert "conveyor started" in msgs and "conveyor stopped" in msgs
    assert any(line.get("queue") == "q" and line["msg"] == "queue created" for line in lines)
    assert len(lines) < 30  # no line per message
    server.start()
    raw = Raw(server.native_address)
    info = raw.call(n.GetQueueRequest(id=1, name="q"))
    assert isinstance(info, n.GetQueueResponse) and info.stats["messages"] == 50


def test_sigkill_under_load_keeps_every_acknowledged_send(server: ServerProcess) -> None:
    raw = Raw(server.native_address)
    raw.call(n.CreateQueueRequest(id=1, name="q"))
    raw.close()
    acked: list[set[bytes]] = [set() for _ in range(3)]
    stop = threading.Event()

    def produce(k: int) -> None:
        try:
            c = Raw(server.native_address)
            i = 0
            while not stop.is_set():
                body = b"%d-%d" % (k, i)
                resp = c.call(n.SendRequest(id=i, queue="q", body=body))
                if isinstance(resp, n.SendResponse):
                    acked[k].add(body)
                i += 1
        except (OSError, n.ProtocolError):
            return  # the server died under us

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    for t in threads:
        t.join(10)
    total = set().union(*acked)
    assert len(total) > 50
    server.start()
    c = Raw(server.native_address)
    seen: set[bytes] = set()
    while True:
        resp = c.call(n.ReceiveRequest(id=1, queue="q", max_messages=1000))
        assert isinstance(resp, n.ReceiveResponse)
        if not resp.messages:
            break
        seen.update(m.body for m in resp.messages)
    assert total <= seen, f"lost {len(total - seen)} acknowledged messages"


def test_settings_from_env_and_toml(tmp_path: Path) -> None:
    port, native = free_port(), free_port()
    config = tmp_path / "conveyor.toml"
    config.write_text(f'[conveyor]\nport = {port}\nlog_format = "text"\n')
    env = dict(os.environ, CONVEYOR_NATIVE_PORT=str(native), CONVEYOR_FSYNC="never")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.server", "--config", str(config), "--data-dir", "d"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        raw = Raw(f"127.0.0.1:{native}")
        assert raw.call(n.PingRequest(id=1)) == n.PingResponse(id=1)
        raw.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "fsync=never" in err and f"http=127.0.0.1:{port}" in err
    assert (tmp_path / "d" / "node.json").exists()


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor.server", "--fsync", "sometimes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "fsync" in proc.stderr


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_ten_thousand_parked_receivers_cost_no_cpu_and_wake_fast(server: ServerProcess) -> None:
    setup = Raw(server.native_address)
    setup.call(n.CreateQueueRequest(id=1, name="q"))
    rss_before = _rss_bytes(server.pid)
    pollers = [Raw(server.native_address) for _ in range(10)]
    for p in pollers:
        data = b"".join(
            p.conn.send(n.ReceiveRequest(id=i, queue="q", wait_s=20)) for i in range(1000)
        )
        p.sock.sendall(data)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the server has parked them all
        cpu = _cpu_s(server.pid)
        time.sleep(0.3)
        if _cpu_s(server.pid) - cpu < 0.02:
            break
    cpu = _cpu_s(server.pid)
    time.sleep(1.0)
    idle_cpu = _cpu_s(server.pid) - cpu
    rss_growth = _rss_bytes(server.pid) - rss_before
    assert idle_cpu < 0.05, f"parked receivers used {idle_cpu:.3f} s of CPU in 1 s"
    assert rss_growth < 64 * 1024 * 1024, f"10,000 parked receivers took {rss_growth} bytes"
    # one send wakes one receiver, at once rather than at the end of its wait
    for p in pollers:
        p.sock.setblocking(False)
    sent_at = time.monotonic()
    setup.call(n.SendRequest(id=2, queue="q", body=b"hello"))
    answered: list[tuple[float, object]] = []
    while time.monotonic() - sent_at < 5.0 and not answered:
        for p in pollers:
            try:
                p.conn.receive_data(p.sock.recv(65536))
            except BlockingIOError:
                continue
            ev = p.conn.next_event()
            if ev is not n.NEED_DATA:
                answered.append((time.monotonic() - sent_at, ev))
    assert answered, "no receiver woke"
    woke_s, ev = answered[0]
    assert isinstance(ev, n.ReceiveResponse) and ev.messages[0].body == b"hello"
    assert woke_s < 1.0, woke_s
    assert server.terminate() == 0  # and the other 9,999 are answered on the way out


def test_a_receive_too_large_for_the_client_releases_its_messages(server: ServerProcess) -> None:
    raw = Raw(server.native_address, max_frame_bytes=n.frame_bytes_min)
    raw.call(n.CreateQueueRequest(id=1, name="big", config={"max_message_bytes": 1024 * 1024}))
    for i in range(3):
        sent = raw.call(n.SendRequest(id=2 + i, queue="big", body=b"x" * 1_000_000))
        assert isinstance(sent, n.SendResponse)
    too_big = raw.call(n.ReceiveRequest(id=9, queue="big", max_messages=3))
    assert isinstance(too_big, n.ErrorResponse) and too_big.code == "InvalidParameterValue"
    time.sleep(0.2)
    info = raw.call(n.GetQueueRequest(id=10, name="big"))
    assert isinstance(info, n.GetQueueResponse)
    assert info.stats["visible"] == 3 and info.stats["inflight"] == 0
    one = raw.call(n.ReceiveRequest(id=11, queue="big", max_messages=1))
    assert isinstance(one, n.ReceiveResponse) and len(one.messages) == 1
