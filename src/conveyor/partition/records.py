"""The records of a partition's log: every change of a partition's state is one of these.

The storage layer frames each record with its type (one byte, the constants below), its
offset, its timestamp (the leader's clock, in milliseconds since the epoch) and a CRC;
the payload is the record's fields as a msgpack array, in the order declared here. New
fields may only be appended, with a default, so older records stay readable.

========  ===============  ===================================================
type      record           meaning
========  ===============  ===================================================
1         Append           a message enters the partition at this offset
2         Deliver          messages are handed to a receiver until visible_at_ms
3         Ack              messages are deleted by a receiver
4         Visibility       in-flight messages get a new visible_at_ms
5         Expire           messages leave: retention passed, or overflow policy
6         Purge            every message below ``upto_offset`` leaves
7         MoveIntent       messages are about to move to another queue (DLQ, redrive)
8         Moved            the move is durable at the destination; messages leave
255       EpochStart       a leader's epoch begins here (replication control record)
========  ===============  ===================================================

``EpochStart`` belongs to the replication layer (``conveyor.replication.records``): its
payload is the epoch as an unsigned 64-bit big-endian integer, not msgpack, and applying
it to a partition changes nothing but the next offset.

``Append`` keeps the body last: :class:`AppendMeta` decodes everything but the body, so
replaying a log does not copy message bodies.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

APPEND: Final = 1
DELIVER: Final = 2
ACK: Final = 3
VISIBILITY: Final = 4
EXPIRE: Final = 5
PURGE: Final = 6
MOVE_INTENT: Final = 7
MOVED: Final = 8
EPOCH_START: Final = 255  # the same number as conveyor.replication.records.EPOCH_START

EXPIRE_RETENTION: Final = 0
EXPIRE_OVERFLOW: Final = 1


class MessageAttribute(msgspec.Struct, array_like=True, frozen=True):
    """A typed message attribute, as SQS has them: String, Number or Binary (+ .suffix)."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None


class AppendMeta(msgspec.Struct, array_like=True, frozen=True):
    """Everything in an ``Append`` record except the body (which follows last)."""

    message_id: str
    body_bytes: int  # size of the body plus attributes, for depth accounting
    delay_until_ms: int = 0
    group_id: str | None = None
    dedup_id: str | None = None
    origin: str | None = None  # "queue_uid:partition:offset" of a moved message
    receive_count: int = 0
    first_receive_ms: int = 0
    sent_ms: int = 0  # 0: the record's own timestamp
    attributes: dict[str, MessageAttribute] | None = None
    system: dict[str, str] | None = None  # e.g. AWSTraceHeader


class Append(msgspec.Struct, array_like=True, frozen=True):
    message_id: str
    body_bytes: int
    delay_until_ms: int = 0
    group_id: str | None = None
    dedup_id: str | None = None
    origin: str | None = None
    receive_count: int = 0
    first_receive_ms: int = 0
    sent_ms: int = 0
    attributes: dict[str, MessageAttribute] | None = None
    system: dict[str, str] | None = None
    body: bytes = b""


class Deliver(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]
    receive_counts: list[int]  # the receive count each message has after this delivery
    visible_at_ms: int
    attempt_id: str | None = None


class Ack(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]


class Visibility(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]
    visible_at_ms: list[int]


class Expire(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]
    reason: int = EXPIRE_RETENTION


class Purge(msgspec.Struct, array_like=True, frozen=True):
    upto_offset: int


class MoveIntent(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]
    destination: str  # the destination queue's uid
    reset_receive_count: bool = False


class Moved(msgspec.Struct, array_like=True, frozen=True):
    offsets: list[int]


class EpochStart(msgspec.Struct, frozen=True):
    epoch: int


_EPOCH = struct.Struct(">Q")

Record = Append | Deliver | Ack | Visibility | Expire | Purge | MoveIntent | Moved

RECORD_TYPES: Final[dict[type[msgspec.Struct], int]] = {
    Append: APPEND,
    Deliver: DELIVER,
    Ack: ACK,
    Visibility: VISIBILITY,
    Expire: EXPIRE,
    Purge: PURGE,
    MoveIntent: MOVE_INTENT,
    Moved: MOVED,
}
TYPE_NAMES: Final[dict[int, str]] = {t: cls.__name__ for cls, t in RECORD_TYPES.items()}
TYPE_NAMES[EPOCH_START] = "EpochStart"

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[int, msgspec.msgpack.Decoder[object]] = {
    t: msgspec.msgpack.Decoder(cls) for cls, t in RECORD_TYPES.items()
}
_decoders[APPEND] = msgspec.msgpack.Decoder(AppendMeta)  # bodies skipped on replay
_append_decoder = msgspec.msgpack.Decoder(Append)


def encode(record: Record) -> tuple[int, bytes]:
    """Return (type, payload) for the storage layer."""
    return RECORD_TYPES[type(record)], _encoder.encode(record)


def decode(rtype: int, payload: bytes) -> object:
    """Decode a payload for replay; ``Append`` comes back as :class:`AppendMeta`."""
    if rtype == EPOCH_START:
        try:
            return EpochStart(_EPOCH.unpack(payload)[0])
        except struct.error:
            raise ValueError(f"EpochStart payload of {len(payload)} bytes") from None
    try:
        decoder = _decoders[rtype]
    except KeyError:
        raise ValueError(f"unknown record type {rtype}") from None
    return decoder.decode(payload)


def decode_append(payload: bytes) -> Append:
    """Decode a whole ``Append`` record, body included (for delivery)."""
    return _append_decoder.decode(payload)


def describe(rtype: int, payload: bytes) -> str:
    """One line for humans (``conveyor storage inspect``)."""
    try:
        rec = decode_append(payload) if rtype == APPEND else decode(rtype, payload)
    except (ValueError, msgspec.DecodeError) as exc:
        return f"type={rtype} undecodable: {exc}"
    name = TYPE_NAMES.get(rtype, str(rtype))
    if isinstance(rec, Append):
        body = rec.body[:32]
        return (
            f"{name} id={rec.message_id} bytes={len(rec.body)} group={rec.group_id} "
            f"dedup={rec.dedup_id} delay_until={rec.delay_until_ms} body={body!r}"
        )
    fields = ", ".join(f"{f}={getattr(rec, f)!r}" for f in rec.__struct_fields__)  # type: ignore[attr-defined]
    return f"{name} {fields}"
