"""Receipt handles: what a receive hands out, and what delete/visibility calls present.

A handle names one *delivery* of one message: the queue (by its uid, so a handle outlives
neither its queue nor a queue re-created under the same name), the partition, the
message's offset and the receive count it was delivered with. A later delivery of the same
message has a higher receive count, so a stale handle cannot delete or extend it.

Layout (big-endian), then URL-safe base64 without padding::

    u8   version (1)
    8B   queue uid
    u16  partition
    u64  offset
    u32  receive count
    16B  HMAC-SHA256(secret, all of the above), truncated

The MAC makes handles unforgeable: a handle that was not issued by a node holding the
secret is rejected as ``ReceiptHandleIsInvalid``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import NamedTuple

from conveyor import errors, limits

VERSION = 1
_BODY = struct.Struct(">B8sHQI")
_MAC_BYTES = limits.receipt_handle_mac_bytes
HANDLE_BYTES = _BODY.size + _MAC_BYTES
assert _BODY.size == 23


class Receipt(NamedTuple):
    queue_uid: bytes
    partition: int
    offset: int
    receive_count: int


def partition_of(handle: str) -> int | None:
    """The partition a handle names, unauthenticated (for routing it to the node that
    leads that partition, which then checks it); None if it is not a handle at all."""
    if not isinstance(handle, str) or len(handle) > 2 * HANDLE_BYTES:
        return None
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != HANDLE_BYTES:
        return None
    partition: int = _BODY.unpack(raw[: _BODY.size])[2]
    return partition


class ReceiptSigner:
    """Issues and checks receipt handles with one node secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("receipt secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, receipt: Receipt) -> str:
        body = _BODY.pack(
            VERSION, receipt.queue_uid, receipt.partition, receipt.offset, receipt.receive_count
        )
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def check(self, handle: str) -> Receipt:
        """Decode and authenticate a handle; raise ReceiptHandleIsInvalid otherwise."""
        invalid = errors.ReceiptHandleIsInvalid(
            f"the receipt handle {handle[:64]!r} is not valid"
            if isinstance(handle, str)
            else "the receipt handle must be a string"
        )
        if not isinstance(handle, str) or len(handle) > 2 * HANDLE_BYTES:
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        if len(raw) != HANDLE_BYTES:
            raise invalid
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise invalid
        version, uid, partition, offset, rc = _BODY.unpack(body)
        if version != VERSION:
            raise invalid
        return Receipt(uid, partition, offset, rc)
