"""What the replication core asks its driver to do. The driver runs them in order.

=================  ==============================================================
effect             the driver...
=================  ==============================================================
``Send``           sends ``message`` to node ``to`` (best effort: loss is fine)
``Persist``        appends ``records`` (dense, starting at the log end) and, once
                   they are fsynced, calls ``on_persisted(end, log_version)``
``Truncate``       cuts the log to ``next_offset`` records
``Apply``          applies ``records`` (every record below ``commit``, the new
                   commit point, not applied before) to the partition state; control
                   records (``records.is_control``) take an offset and change nothing
``ProposeConfig``  asks the coordinator for ``cas_partition(expected_version,
                   config)`` and hands the configuration it answers with (applied or
                   not) to ``on_config``; retrying is the core's job
``Reply``          answers the client request ``request_id``
``RoleChanged``    informs: routing, metrics, logs
=================  ==============================================================

``log_version`` counts the truncations the core has asked for: a persistence completion
reported under an older version is ignored, since what it made durable may have been
cut off since.
"""

from __future__ import annotations

import enum

import msgspec

from conveyor.coordination.config import PartitionConfig
from conveyor.replication.messages import Message
from conveyor.replication.records import LogRecord


class Role(enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"  # in the ISR, replicating from the leader
    CATCHING_UP = "catching-up"  # replicating, not (yet) in the ISR
    FENCED = "fenced"  # may not act: no configuration, lease lost, stale, or refusing


class ReplyError(enum.Enum):
    """Why a client append was refused. Every one is retriable."""

    NOT_LEADER = "not_leader"  # nothing was written; ask the leader
    NOT_ENOUGH_REPLICAS = "not_enough_replicas"  # ISR below min_insync; nothing written
    OVERLOADED = "overloaded"  # too many requests waiting; nothing written
    UNKNOWN_OUTCOME = "unknown_outcome"  # written, not known to be committed (may be)


class Send(msgspec.Struct, frozen=True):
    to: str
    message: Message


class Persist(msgspec.Struct, frozen=True):
    records: tuple[LogRecord, ...]
    log_version: int


class Truncate(msgspec.Struct, frozen=True):
    next_offset: int
    log_version: int


class Apply(msgspec.Struct, frozen=True):
    records: tuple[LogRecord, ...]
    commit: int


class ProposeConfig(msgspec.Struct, frozen=True):
    expected_version: int
    config: PartitionConfig


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    request_id: int
    offset: int = -1  # the first offset of the appended records, when ok
    error: ReplyError | None = None
    leader: str | None = None  # the leader as this replica knows it, when not ok

    @property
    def ok(self) -> bool:
        return self.error is None


class RoleChanged(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    epoch: int
    leader: str | None
    reason: str


Effect = Send | Persist | Truncate | Apply | ProposeConfig | Reply | RoleChanged
