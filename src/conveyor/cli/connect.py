"""Opening a connection for a command: the broker API the CLI uses, as a Protocol.

The CLI talks to a server through :class:`conveyor.Client` (native protocol). It uses
only the methods the embedded :class:`conveyor.Broker` has as well, so the same code
could drive either; :class:`Api` names exactly those.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from conveyor import errors
from conveyor.cli.exits import UsageError
from conveyor.types import BatchEntry, Message, QueueInfo, SendResult

ADDRESS_ENV = "CONVEYOR_ADDRESS"
ADDRESS_DEFAULT = "127.0.0.1:9325"
TIMEOUT_ENV = "CONVEYOR_TIMEOUT"
timeout_s_default = 30.0


class Api(Protocol):
    def create_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> QueueInfo: ...

    def get_queue(self, name: str) -> QueueInfo: ...

    def list_queues(self, prefix: str = "") -> list[str]: ...

    def delete_queue(self, name: str) -> None: ...

    def purge_queue(self, name: str) -> None: ...

    def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]: ...

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
    ) -> list[Message]: ...

    def peek(self, queue: str, max_messages: int = 10) -> list[Message]: ...

    def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]: ...

    def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]: ...

    def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int: ...

    def cluster_status(self) -> dict[str, Any]: ...

    def drain_node(self, node: str, *, cancel: bool = False) -> int: ...

    def close(self) -> None: ...


def default_address() -> str:
    return os.environ.get(ADDRESS_ENV) or ADDRESS_DEFAULT


def default_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return timeout_s_default
    try:
        return float(raw)
    except ValueError:
        return timeout_s_default


def check_address(address: str) -> str:
    """``HOST:PORT``, ``HOST`` (port 9325) or ``[v6]:PORT``; a bad one is a usage error."""
    if address.startswith("["):
        host, _, port = address[1:].partition("]")
        port = port.removeprefix(":")
    elif address.count(":") == 1:
        host, _sep, port = address.partition(":")
    else:
        host, port = address, ""
    if not host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
        raise UsageError(f"--address must be HOST:PORT, got {address!r}")
    return address


def open_client(address: str, timeout_s: float) -> Api:
    """A native-protocol client for ``address``. Imported here so that commands that
    need no server (``storage inspect``, ``serve``, ``--help``) never load it."""
    from conveyor.client import Client

    if timeout_s <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout_s:g}")
    client: Api = Client(check_address(address), timeout_s=timeout_s)
    return client
