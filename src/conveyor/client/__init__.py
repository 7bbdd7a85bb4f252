"""Python clients of a Conveyor server's native protocol.

* :class:`Client` — blocking, thread-safe; plain sockets (see :mod:`.sync` for why).
* :class:`AsyncClient` — asyncio, on an :class:`asyncio.Protocol`.

Both mirror the embedded broker's methods and return its types
(:mod:`conveyor.types`), share one pipelined connection per client, reconnect after it
drops, bound every call with a deadline, and retry only where repeating a request is
harmless (:mod:`.retry`). ``consume()`` and ``producer()`` give the helpers of
:mod:`.consumer` and :mod:`.producer`. docs/clients.md is the guide.
"""

from __future__ import annotations

from conveyor.client.aio import AsyncClient
from conveyor.client.consumer import AsyncConsumer, Consumer
from conveyor.client.errors import ClientClosed, ConnectFailed, ConnectionLost, Timeout
from conveyor.client.producer import AsyncProducer, Producer
from conveyor.client.retry import RetryPolicy
from conveyor.client.sync import Client

__all__ = [
    "AsyncClient",
    "AsyncConsumer",
    "AsyncProducer",
    "Client",
    "ClientClosed",
    "ConnectFailed",
    "ConnectionLost",
    "Consumer",
    "Producer",
    "RetryPolicy",
    "Timeout",
]
