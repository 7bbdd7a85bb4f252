"""How SQS's (account, queue name) pairs and SQS-only attributes map onto the broker.

**Accounts.** SQS queues belong to an account; the broker has one flat namespace. The
server's configured account (``Settings.account_id``) owns the plain names, so the native
protocol, the admin API and SQS see the same queues. Any other account is a 12-digit
number (an access key that is one names it) and owns the broker names
``<account>--<name>``::

    SQS queue                          broker queue
    000000000000 / jobs           ->   jobs                (the configured account)
    111122223333 / jobs           ->   111122223333--jobs

The broker's names are 1..80 characters, so a queue of another account may have at most
``80 - 14 = 66`` characters; and the configured account may not create names that look
like another account's (``<12 digits>--...``), which would be ambiguous.

**SQS-only attributes.** ``Policy``, ``RedriveAllowPolicy``, ``KmsMasterKeyId``,
``KmsDataKeyReusePeriodSeconds``, ``SqsManagedSseEnabled`` and ``FifoThroughputLimit``
mean nothing to the broker but must survive a restart. They are kept, as their wire
strings in one JSON object, in the queue's tag :data:`EXTRAS_TAG`. SQS refuses user tag
keys that start with ``aws:``, so the tag cannot collide with a user's; it is hidden
from ListQueueTags and protected from UntagQueue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from conveyor import errors, limits
from conveyor.protocol.sqs.errors import invalid_parameter

ACCOUNT_SEPARATOR = "--"
EXTRAS_TAG = "aws:sqs:attributes"
RESERVED_TAG_PREFIX = "aws:"

_OTHER_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_PREFIXED_RE = re.compile(r"^[0-9]{12}--")
_prefix_length = 12 + len(ACCOUNT_SEPARATOR)

# SQS attribute -> broker config field, for the attributes the broker keeps.
CONFIG_ATTRIBUTES: dict[str, str] = {
    "DelaySeconds": "delay_s",
    "MaximumMessageSize": "max_message_bytes",
    "MessageRetentionPeriod": "retention_s",
    "ReceiveMessageWaitTimeSeconds": "receive_wait_s",
    "VisibilityTimeout": "visibility_timeout_s",
    "ContentBasedDeduplication": "content_dedup",
    "DeduplicationScope": "dedup_scope",
    "FifoQueue": "fifo",
}
EXTRA_ATTRIBUTES = frozenset(
    {
        "Policy",
        "RedriveAllowPolicy",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
        "FifoThroughputLimit",
    }
)
DEDUP_SCOPE_TO_BROKER = {"messageGroup": "message_group", "queue": "queue"}
DEDUP_SCOPE_TO_SQS = {v: k for k, v in DEDUP_SCOPE_TO_BROKER.items()}

_extras_decoder = msgspec.json.Decoder(dict[str, str])
_encoder = msgspec.json.Encoder()


class Accounts:
    """The (account, name) <-> broker name mapping for one server."""

    def __init__(self, default_account: str) -> None:
        self.default = default_account

    def owns(self, account: str) -> bool:
        """Whether ``account`` can hold queues on this server."""
        return account == self.default or bool(_OTHER_ACCOUNT_RE.match(account))

    def broker_name(self, account: str, name: str) -> str | None:
        """The broker's name for ``account``'s queue ``name``; None if there can be none."""
        if account == self.default:
            return None if _PREFIXED_RE.match(name) else name
        if not _OTHER_ACCOUNT_RE.match(account):
            return None
        full = f"{account}{ACCOUNT_SEPARATOR}{name}"
        return full if len(full) <= limits.queue_name_length_max else None

    def name_for_create(self, account: str, name: str) -> str:
        """Like :meth:`broker_name`, with SQS's error when the name cannot be created."""
        full = self.broker_name(account, name)
        if full is None:
            if account == self.default:
                raise invalid_parameter(
                    f"Queue names of the form <12 digits>{ACCOUNT_SEPARATOR}... are reserved "
                    "on this server for the queues of other accounts."
                )
            raise invalid_parameter(
                f"Queue names of account {account} can be at most "
                f"{limits.queue_name_length_max - _prefix_length} characters on this server."
            )
        return full

    def lookup(self, account: str, name: str) -> str:
        """The broker name of an existing-or-not queue; QueueDoesNotExist if impossible."""
        full = self.broker_name(account, name)
        if full is None:
            raise errors.QueueDoesNotExist("The specified queue does not exist.")
        return full

    def split(self, broker_name: str) -> tuple[str, str]:
        """(account, SQS name) of a broker queue."""
        if _PREFIXED_RE.match(broker_name):
            return broker_name[:12], broker_name[_prefix_length:]
        return self.default, broker_name

    def list_prefix(self, account: str, prefix: str) -> str:
        if account == self.default:
            return prefix
        return f"{account}{ACCOUNT_SEPARATOR}{prefix}"

    def in_account(self, account: str, broker_name: str) -> bool:
        if account == self.default:
            return not _PREFIXED_RE.match(broker_name)
        return broker_name.startswith(f"{account}{ACCOUNT_SEPARATOR}")


def read_extras(tags: Mapping[str, str]) -> dict[str, str]:
    text = tags.get(EXTRAS_TAG)
    if not text:
        return {}
    try:
        return _extras_decoder.decode(text)
    except msgspec.DecodeError:
        return {}  # written by someone else; treat as absent rather than fail every call


def write_extras(extras: Mapping[str, str]) -> str:
    return _encoder.encode(dict(sorted(extras.items()))).decode("utf-8")


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(RESERVED_TAG_PREFIX)}


def config_value_to_sqs(field: str, value: Any) -> str:
    if field == "dedup_scope":
        return DEDUP_SCOPE_TO_SQS.get(value, str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
