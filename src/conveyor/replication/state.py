"""What a driver applies committed records to, and how refusals become client errors.

The partition state (``conveyor.partition.state.PartitionState``) is a deterministic
function of the records. The replication layer only needs this much of it, so the
simulator can run a small state machine of its own and the real one plugs in with an
adapter that decodes the payload (``records.decode(type, payload)``) before applying.
"""

from __future__ import annotations

from typing import Protocol

from conveyor import errors
from conveyor.partition import records as partition_records
from conveyor.partition.state import PartitionState
from conveyor.replication.effects import Reply, ReplyError


class AppliedState(Protocol):
    def apply(self, offset: int, record_type: int, ts_ms: int, payload: bytes) -> None:
        """Fold the committed record at ``offset`` into the state. Reads no clock."""
        ...

    def digest(self) -> bytes:
        """A fingerprint of the whole state: equal on replicas that applied the same records."""
        ...


class PartitionApplier:
    """Applies committed records to the real partition state (an :class:`AppliedState`)."""

    def __init__(self, state: PartitionState) -> None:
        self.state = state

    def apply(self, offset: int, record_type: int, ts_ms: int, payload: bytes) -> None:
        # Control records (EPOCH_START) decode to partition_records.EpochStart, which
        # the partition state applies as a record that only takes its offset.
        self.state.apply(offset, ts_ms, partition_records.decode(record_type, payload))

    def digest(self) -> bytes:
        return self.state.digest()


_MESSAGES = {
    ReplyError.NOT_LEADER: "not the partition leader",
    ReplyError.NOT_ENOUGH_REPLICAS: "fewer in-sync replicas than min_insync",
    ReplyError.OVERLOADED: "too many appends waiting for replication",
    ReplyError.UNKNOWN_OUTCOME: "not known to be committed: it may still be",
}


def reply_error(reply: Reply) -> errors.ConveyorError:
    """The client-facing error for a refused append (all are retriable ``Unavailable``)."""
    assert reply.error is not None
    detail = _MESSAGES[reply.error]
    if reply.leader is not None:
        detail += f" (leader: {reply.leader})"
    return errors.Unavailable(f"{reply.error.value}: {detail}")
