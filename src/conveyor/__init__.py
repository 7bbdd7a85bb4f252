"""Conveyor: a durable, replicated message queue.

``conveyor.open(data_dir)`` gives an embedded broker with the same semantics as the
server: durable queues on a local directory, SQS-style receive/delete/visibility, FIFO
queues with deduplication, dead-letter queues, delays and long polling.
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports: submodules read it

from conveyor import errors, limits
from conveyor.broker import Broker, open
from conveyor.broker.aio import AsyncBroker, open_async
from conveyor.client import AsyncClient, Client
from conveyor.errors import ConveyorError
from conveyor.queue import QueueConfig, RedrivePolicy
from conveyor.types import (
    Message,
    MessageAttribute,
    QueueInfo,
    QueueStats,
    SendEntry,
    SendResult,
)

__all__ = [
    "AsyncBroker",
    "AsyncClient",
    "Broker",
    "Client",
    "ConveyorError",
    "Message",
    "MessageAttribute",
    "QueueConfig",
    "QueueInfo",
    "QueueStats",
    "RedrivePolicy",
    "SendEntry",
    "SendResult",
    "__version__",
    "errors",
    "limits",
    "open",
    "open_async",
]
