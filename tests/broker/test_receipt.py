"""Receipt handles: issued, checked, tampered with, and the version 1 handles of earlier
releases still accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from conveyor import errors
from conveyor.receipt import HANDLE_BYTES, Receipt, ReceiptSigner, partition_of

SECRET = bytes(range(32))
R1 = Receipt(queue_uid=b"\x01" * 8, partition=3, offset=123_456, receive_count=2)


def _v1_handle(secret: bytes, r: Receipt) -> str:
    """A handle as version 1 issued it: HMAC-SHA256 truncated to 16 bytes."""
    body = struct.pack(">B8sHQI", 1, r.queue_uid, r.partition, r.offset, r.receive_count)
    mac = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def test_a_handle_round_trips_and_names_its_partition() -> None:
    signer = ReceiptSigner(SECRET)
    handle = signer.issue(R1)
    assert len(base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))) == HANDLE_BYTES
    assert set(handle) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert signer.check(handle) == R1
    assert partition_of(handle) == 3
    assert signer.check(signer.issue(R1._replace(receive_count=3))) != R1


def test_version_1_handles_are_still_accepted() -> None:
    assert ReceiptSigner(SECRET).check(_v1_handle(SECRET, R1)) == R1
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        ReceiptSigner(SECRET).check(_v1_handle(b"another secret of 32 bytes......", R1))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h[:-1] + ("A" if h[-1] != "A" else "B"),  # MAC changed
        lambda h: h[:5] + ("A" if h[5] != "A" else "B") + h[6:],  # body changed
        lambda h: h[:-2],  # too short
        lambda h: h + "AAAA",  # too long
        lambda h: h[:10] + "+" + h[11:],  # not URL-safe base64
        lambda h: h[:10] + "é" + h[11:],  # not ASCII
        lambda h: "",
        lambda h: "x" * 10_000,
    ],
)
def test_tampered_handles_are_invalid(mangle: object) -> None:
    signer = ReceiptSigner(SECRET)
    bad = mangle(signer.issue(R1))  # type: ignore[operator]
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        signer.check(bad)


def test_a_handle_of_another_secret_or_not_a_string_is_invalid() -> None:
    handle = ReceiptSigner(b"another secret of 32 bytes......").issue(R1)
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        ReceiptSigner(SECRET).check(handle)
    with pytest.raises(errors.ReceiptHandleIsInvalid, match="must be a string"):
        ReceiptSigner(SECRET).check(12345)  # type: ignore[arg-type]
    assert partition_of(12345) is None  # type: ignore[arg-type]
    assert partition_of("not a handle") is None


def test_recently_issued_handles_are_remembered_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signer remembers the handles it issued last: checking one gives the same
    receipt as decoding it, the oldest are forgotten first (and then decoded as
    before), and what was never issued is still checked in full."""
    monkeypatch.setattr("conveyor.receipt.recent_handles_max", 3)
    signer = ReceiptSigner(SECRET)
    receipts = [R1._replace(offset=i) for i in range(5)]
    handles = [signer.issue(r) for r in receipts]
    assert list(signer._recent) == handles[-3:] == list(signer._recent_order)
    fresh = ReceiptSigner(SECRET)  # remembers nothing: decodes and MACs
    for h, r in zip(handles, receipts, strict=True):
        assert signer.check(h) == fresh.check(h) == r
    forged = handles[-1][:-2] + ("AA" if not handles[-1].endswith("AA") else "BB")
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        signer.check(forged)
    with pytest.raises(errors.ReceiptHandleIsInvalid):
        ReceiptSigner(bytes(32)).check(handles[-1])  # another node's secret


def test_issue_many_gives_the_handles_issue_gives() -> None:
    one, many = ReceiptSigner(SECRET), ReceiptSigner(SECRET)
    deliveries = [(p, off, rc) for p in (0, 7) for off, rc in ((0, 1), (2**40, 3), (5, 9))]
    handles = many.issue_many(R1.queue_uid, deliveries)
    assert handles == [one.issue(Receipt(R1.queue_uid, *d)) for d in deliveries]
    assert [ReceiptSigner(SECRET).check(h) for h in handles] == [
        Receipt(R1.queue_uid, *d) for d in deliveries
    ]
    assert many.issue_many(R1.queue_uid, []) == []
