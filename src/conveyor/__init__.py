"""Conveyor: a durable, replicated message queue.

``conveyor.open(data_dir)`` gives an embedded broker with the same semantics as the
server: durable queues on a local directory, SQS-style receive/delete/visibility, FIFO
queues with deduplication, dead-letter queues, delays and long polling.
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports: submodules read it

from typing import TYPE_CHECKING, Any

from conveyor import errors, limits
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

if TYPE_CHECKING:
    from conveyor.broker import Broker, open
    from conveyor.broker.aio import AsyncBroker, open_async
    from conveyor.client import AsyncClient, Client

# The broker and the clients load on first use, so `conveyor --help` and other short
# commands do not pay for importing asyncio and the storage engine.
_LAZY = {
    "Broker": "conveyor.broker",
    "open": "conveyor.broker",
    "AsyncBroker": "conveyor.broker.aio",
    "open_async": "conveyor.broker.aio",
    "AsyncClient": "conveyor.client",
    "Client": "conveyor.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
