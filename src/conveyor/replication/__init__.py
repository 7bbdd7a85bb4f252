"""Primary/backup replication of a partition's log (DESIGN.md §4), without I/O.

:class:`Replica` is the protocol core of one partition replica: configuration, lease,
messages, persistence completions, client appends and ticks go in; effects come out
(``effects.py``). ``docs/replication.md`` describes the protocol and its invariants.
"""

from __future__ import annotations

from conveyor.replication.buggify import Buggify
from conveyor.replication.effects import (
    Apply,
    Effect,
    Persist,
    ProposeConfig,
    Reply,
    ReplyError,
    Role,
    RoleChanged,
    Send,
    Truncate,
)
from conveyor.replication.messages import (
    FetchRequest,
    FetchResponse,
    FetchStatus,
    Message,
    decode,
    encode,
)
from conveyor.replication.records import (
    EPOCH_START,
    EpochHistory,
    LogRecord,
    divergence_point,
    is_control,
)
from conveyor.replication.replica import Entry, Replica, ReplicationInvariantError
from conveyor.replication.settings import ReplicaSettings
from conveyor.replication.state import AppliedState, PartitionApplier, reply_error

__all__ = [
    "EPOCH_START",
    "AppliedState",
    "Apply",
    "Buggify",
    "Effect",
    "Entry",
    "EpochHistory",
    "FetchRequest",
    "FetchResponse",
    "FetchStatus",
    "LogRecord",
    "Message",
    "PartitionApplier",
    "Persist",
    "ProposeConfig",
    "Replica",
    "ReplicaSettings",
    "ReplicationInvariantError",
    "Reply",
    "ReplyError",
    "Role",
    "RoleChanged",
    "Send",
    "Truncate",
    "decode",
    "divergence_point",
    "encode",
    "is_control",
    "reply_error",
]
