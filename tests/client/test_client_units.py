"""The client's parts that need no server: addresses, the retry rule, batch splitting."""

from __future__ import annotations

import random

import msgspec
import pytest

from conveyor import errors
from conveyor.client import calls
from conveyor.client.errors import ClientClosed, ConnectFailed, ConnectionLost, Timeout
from conveyor.client.retry import RetryPolicy, Safety, should_retry
from conveyor.protocol import native as n


def test_parse_address() -> None:
    assert calls.parse_address(None, None, None) == ("127.0.0.1", 9325)
    assert calls.parse_address("example.org:1234", None, None) == ("example.org", 1234)
    assert calls.parse_address("example.org", None, None) == ("example.org", 9325)
    assert calls.parse_address("[::1]:99", None, None) == ("::1", 99)
    assert calls.parse_address("::1", None, None) == ("::1", 9325)
    assert calls.parse_address("a:1", "b", 2) == ("b", 2)
    with pytest.raises(ValueError):
        calls.parse_address("a:0", None, None)


IDEM, U = Safety.IDEMPOTENT, Safety.UNSAFE


@pytest.mark.parametrize(
    ("exc", "idempotent", "unsafe"),
    [
        (ConnectFailed("x"), True, True),  # never sent
        (errors.QueueFull("x"), True, True),  # refused, nothing done
        (errors.Unavailable("x"), True, True),
        (errors.PurgeQueueInProgress("x"), True, True),
        (ConnectionLost("x"), True, False),  # outcome unknown
        (errors.InternalError("x"), True, False),
        (Timeout("x"), False, False),  # the deadline is spent
        (errors.QueueDoesNotExist("x"), False, False),
        (errors.InvalidParameterValue("x"), False, False),
        (ClientClosed("x"), False, False),
        (n.ProtocolError("MalformedFrame"), False, False),
    ],
)
def test_retry_rule(exc: Exception, idempotent: bool, unsafe: bool) -> None:
    assert should_retry(exc, IDEM) is idempotent
    assert should_retry(exc, U) is unsafe


def test_which_calls_are_idempotent() -> None:
    def send(queue: str, dedup: str | None) -> Safety:
        return calls.send(
            queue, b"x", attributes=None, delay_s=None, group_id="g", dedup_id=dedup, system=None
        ).safety

    assert send("q", None) is U and send("q.fifo", None) is U and send("q.fifo", "d") is IDEM
    entries = [n.SendEntry(body=b"a", dedup_id="1"), n.SendEntry(body=b"b")]
    assert calls.send_batch("q.fifo", entries).safety is U
    assert calls.send_batch("q.fifo", entries[:1]).safety is IDEM
    assert calls.delete_queue("q").safety is U and calls.purge_queue("q").safety is U
    assert calls.redrive("q", None, None).safety is U
    for call in (calls.delete("q", "h"), calls.receive("q", 1, None, None, None), calls.ping()):
        assert call.safety is IDEM
    assert calls.receive("q", 1, None, 3.5, None).wait_s == 3.5
    assert calls.receive("q", 1, None, None, None).wait_s == 20  # the queue's: unknown


def test_backoff_is_bounded_and_jittered() -> None:
    policy = RetryPolicy(attempts=10, backoff_s_base=0.1, backoff_s_max=1.0, rng=random.Random(1))
    sleeps = [policy.backoff_s(k) for k in range(1, 10)]
    assert all(0 <= s <= min(1.0, 0.1 * 2 ** (k - 1)) for k, s in enumerate(sleeps, 1))
    assert len(set(sleeps)) == len(sleeps)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_split_batch_by_count_and_bytes() -> None:
    small = [n.SendEntry(body=b"x") for _ in range(2500)]
    assert [len(c) for c in calls.split_batch(small, n.frame_bytes_min)] == [1000, 1000, 500]
    big = [n.SendEntry(body=b"x" * 300_000) for _ in range(20)]
    parts = calls.split_batch(big, n.frame_bytes_min)
    assert sum(len(p) for p in parts) == 20
    assert all(sum(calls.entry_bytes(e) for e in p) <= n.frame_bytes_min for p in parts)
    # and every part really encodes under the frame limit
    for p in parts:
        frame = msgspec.msgpack.encode(n.SendBatchRequest(id=1, queue="q", entries=p))
        assert len(frame) <= n.frame_bytes_min
