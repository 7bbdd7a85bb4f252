"""The public values Conveyor's APIs take and return."""

from __future__ import annotations

import msgspec

from conveyor.partition.records import MessageAttribute
from conveyor.queue import QueueConfig

__all__ = [
    "BatchEntry",
    "Message",
    "MessageAttribute",
    "QueueInfo",
    "QueueStats",
    "SendEntry",
    "SendResult",
]


class SendEntry(msgspec.Struct, kw_only=True):
    """One message of a batch send."""

    body: bytes | str
    attributes: dict[str, MessageAttribute] | None = None
    delay_s: int | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    system: dict[str, str] | None = None


# What ``send_batch`` takes per message: a SendEntry, or a bare body (bytes or str) for a
# message with nothing but a body.
BatchEntry = SendEntry | bytes | str


def entry_of(e: object) -> SendEntry:
    """The entry a batch item stands for: a bare body becomes a SendEntry; anything else
    with a ``body`` passes as it is (entries are duck-typed: a cluster node forwards the
    wire entries it received); TypeError for the rest."""
    if isinstance(e, bytes | str):
        return SendEntry(body=e)
    if not hasattr(e, "body"):
        raise TypeError(f"a batch entry is a SendEntry, bytes or str, not {type(e).__name__}")
    return e  # type: ignore[return-value]  # duck-typed, see above


class SendResult(msgspec.Struct, kw_only=True, frozen=True):
    message_id: str
    sequence_number: str | None = None
    duplicate: bool = False  # a FIFO resend inside the deduplication window


class Message(msgspec.Struct, kw_only=True, frozen=True):
    """A received (or peeked) message."""

    queue: str
    message_id: str
    body: bytes
    receipt_handle: str  # empty for peeked messages
    attributes: dict[str, MessageAttribute]
    system: dict[str, str]  # e.g. AWSTraceHeader, DeadLetterQueueSourceQueue
    sent_ms: int
    receive_count: int
    first_receive_ms: int
    group_id: str | None = None
    dedup_id: str | None = None
    sequence_number: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class QueueStats(msgspec.Struct, kw_only=True, frozen=True):
    messages: int  # live: visible + in flight + delayed
    bytes: int
    visible: int
    inflight: int
    delayed: int
    oldest_age_s: float | None


class QueueInfo(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    uid: str
    config: QueueConfig
    created_ms: int
    modified_ms: int
    tags: dict[str, str]
    stats: QueueStats | None = None
