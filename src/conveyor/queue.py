"""A queue's configuration: what it is called and which attributes it carries.

:class:`QueueConfig` holds every attribute with its unit in the name. It is what the
catalog stores and what the partition state machine reads when it decides. Every value
is checked against :mod:`conveyor.limits` by :func:`validate_config`; a bad value gives
:class:`~conveyor.errors.InvalidAttributeValue` and nothing changes.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from conveyor import errors, limits

Overflow = Literal["reject", "drop_oldest"]
DedupScope = Literal["queue", "message_group"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class RedrivePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where messages go once they have been received ``max_receive_count`` times."""

    dead_letter_queue: str
    max_receive_count: int


class QueueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The attributes of a queue. Defaults follow SQS (see :mod:`conveyor.limits`)."""

    fifo: bool = False
    max_message_bytes: int = limits.message_size_bytes_default
    max_depth_messages: int = 0  # 0: unbounded
    max_depth_bytes: int = 0  # 0: unbounded
    overflow: Overflow = "reject"
    retention_s: int = limits.retention_s_default
    visibility_timeout_s: int = limits.visibility_timeout_s_default
    delay_s: int = limits.delay_s_default
    receive_wait_s: int = limits.receive_wait_s_default
    redrive: RedrivePolicy | None = None
    content_dedup: bool = False
    dedup_scope: DedupScope = "queue"
    partitions: int = limits.partitions_default


CONFIG_FIELDS = frozenset(QueueConfig.__struct_fields__)


def validate_name(name: str) -> None:
    """Queue names follow SQS: 1..80 of ``[A-Za-z0-9_-]``, FIFO queues end in ``.fifo``."""
    if not isinstance(name, str):
        raise errors.InvalidParameterValue("queue name must be a string")
    base = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if len(name) > limits.queue_name_length_max or not _NAME_RE.match(base):
        raise errors.InvalidParameterValue(
            f"invalid queue name {name!r}: use 1 to {limits.queue_name_length_max} "
            "alphanumeric characters, hyphens or underscores (FIFO queues end in .fifo)"
        )


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidAttributeValue(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise errors.InvalidAttributeValue(f"{name} must be between {lo} and {hi}, got {value}")


def validate_config(name: str, config: QueueConfig) -> None:
    """Check every attribute against the limits and against the queue's name."""
    if config.fifo != name.endswith(".fifo"):
        raise errors.InvalidAttributeValue(
            "a FIFO queue's name must end in .fifo, and only a FIFO queue's name may"
        )
    _check_int(
        "max_message_bytes",
        config.max_message_bytes,
        limits.message_size_bytes_min,
        limits.message_size_bytes_max,
    )
    _check_int("max_depth_messages", config.max_depth_messages, 0, limits.queue_depth_messages_max)
    _check_int("max_depth_bytes", config.max_depth_bytes, 0, limits.queue_depth_bytes_max)
    if config.overflow not in ("reject", "drop_oldest"):
        raise errors.InvalidAttributeValue("overflow must be 'reject' or 'drop_oldest'")
    _check_int("retention_s", config.retention_s, limits.retention_s_min, limits.retention_s_max)
    _check_int(
        "visibility_timeout_s",
        config.visibility_timeout_s,
        limits.visibility_timeout_s_min,
        limits.visibility_timeout_s_max,
    )
    _check_int("delay_s", config.delay_s, limits.delay_s_min, limits.delay_s_max)
    _check_int(
        "receive_wait_s",
        config.receive_wait_s,
        limits.receive_wait_s_min,
        limits.receive_wait_s_max,
    )
    _check_int("partitions", config.partitions, limits.partitions_min, limits.partitions_max)
    if config.content_dedup and not config.fifo:
        raise errors.InvalidAttributeValue("content-based deduplication is for FIFO queues only")
    if config.dedup_scope not in ("queue", "message_group"):
        raise errors.InvalidAttributeValue("dedup_scope must be 'queue' or 'message_group'")
    if config.dedup_scope == "message_group" and not config.fifo:
        raise errors.InvalidAttributeValue("dedup_scope applies to FIFO queues only")
    if config.fifo and config.partitions > 1 and config.dedup_scope != "message_group":
        # Message groups hash to partitions; deduplication across the whole queue would
        # need a table shared by all partitions, so a partitioned FIFO queue deduplicates
        # per message group (as SQS's high-throughput FIFO mode does).
        raise errors.InvalidAttributeValue(
            "a FIFO queue with more than one partition needs dedup_scope='message_group'"
        )
    if config.redrive is not None:
        validate_name(config.redrive.dead_letter_queue)
        _check_int(
            "max_receive_count",
            config.redrive.max_receive_count,
            limits.max_receive_count_min,
            limits.max_receive_count_max,
        )
        if config.redrive.dead_letter_queue == name:
            raise errors.InvalidAttributeValue("a queue cannot be its own dead-letter queue")
        if config.redrive.dead_letter_queue.endswith(".fifo") != config.fifo:
            raise errors.InvalidAttributeValue(
                "the dead-letter queue of a FIFO queue must be FIFO, and of a standard "
                "queue standard"
            )


def make_config(name: str, attributes: dict[str, Any] | None = None) -> QueueConfig:
    """Build a validated config for a new queue from keyword attributes."""
    attrs = dict(attributes or {})
    attrs.setdefault("fifo", name.endswith(".fifo"))
    return update_config(name, QueueConfig(fifo=bool(attrs["fifo"])), attrs)


def update_config(name: str, base: QueueConfig, changes: dict[str, Any]) -> QueueConfig:
    """Return ``base`` with ``changes`` applied, validated. Unknown names are an error."""
    unknown = set(changes) - CONFIG_FIELDS
    if unknown:
        raise errors.InvalidAttributeName(
            f"unknown queue attribute(s): {', '.join(sorted(unknown))}"
        )
    data = msgspec.structs.asdict(base)
    if data["redrive"] is not None:
        data["redrive"] = msgspec.structs.asdict(data["redrive"])
    data.update(changes)
    try:
        config = msgspec.convert(data, QueueConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise errors.InvalidAttributeValue(str(exc)) from None
    validate_name(name)
    validate_config(name, config)
    return config
