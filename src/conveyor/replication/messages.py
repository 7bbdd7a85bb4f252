"""The messages replicas exchange. Every one carries the sender's leader epoch.

Replication is pull-based (the Kafka ISR shape): a follower asks its leader for the
records after its log end with a :class:`FetchRequest`, which also reports what it has
persisted; the leader answers with a :class:`FetchResponse`. A follower has at most one
fetch it waits for; a newer fetch (``fetch_id`` grows) supersedes an older one.

``FetchRequest``
    ``epoch``         the epoch the follower follows
    ``incarnation``   grows every time the follower's process starts; with ``fetch_id``
                      it orders a follower's fetches across restarts
    ``fetch_offset``  the follower's log end: the first offset it wants
    ``last_epoch``    the epoch of its record at ``fetch_offset - 1`` (0 if empty)
    ``durable_end``   how much of its log is persisted (records below are fsynced)
    ``commit``        the commit point it knows (the leader answers at once if newer)
    ``unclean``       it restarted after an unclean shutdown and has not caught up yet

``FetchResponse`` echoes the request's ``fetch_id``, ``fetch_offset`` and ``last_epoch``
so a follower applies only answers that fit its log as it is now, and has a ``status``:

    ``OK``          ``records`` follow at ``fetch_offset``; ``commit`` is the leader's
    ``DIVERGING``   the follower's log is not a prefix of the leader's; ``history`` and
                    ``log_end`` are the leader's, and the follower truncates to the
                    common prefix (rule 6)
    ``STALE_EPOCH`` the request's epoch is older than the leader's (``epoch`` is the
                    leader's): wait for the coordinator's newer configuration
    ``NOT_LEADER``  the receiver does not lead the request's epoch

The wire form is msgpack (:func:`encode` / :func:`decode`), carried in the native
protocol's frames between nodes.
"""

from __future__ import annotations

import enum

import msgspec

from conveyor.replication.records import LogRecord


class FetchStatus(enum.IntEnum):
    OK = 0
    DIVERGING = 1
    STALE_EPOCH = 2
    NOT_LEADER = 3


class FetchRequest(msgspec.Struct, frozen=True, kw_only=True, tag="fetch", array_like=True):
    partition: str
    epoch: int
    replica: str
    incarnation: int
    fetch_id: int
    fetch_offset: int
    last_epoch: int
    durable_end: int
    commit: int
    unclean: bool = False


class FetchResponse(
    msgspec.Struct, frozen=True, kw_only=True, tag="fetch_response", array_like=True
):
    partition: str
    epoch: int
    leader: str
    incarnation: int
    fetch_id: int
    fetch_offset: int
    last_epoch: int
    status: FetchStatus
    records: tuple[LogRecord, ...] = ()
    commit: int = 0
    log_end: int = 0
    history: tuple[tuple[int, int], ...] = ()


Message = FetchRequest | FetchResponse

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    message: Message = _decoder.decode(data)
    return message
