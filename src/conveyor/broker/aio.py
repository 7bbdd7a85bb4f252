"""The embedded broker for asyncio code.

:class:`AsyncBroker` runs each call of a :class:`~conveyor.broker.Broker` in a worker
thread, so waiting for an fsync or a long poll never blocks the event loop. The
semantics are the broker's; only the calling convention differs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from conveyor import errors
from conveyor.broker.broker import Broker
from conveyor.types import Message, MessageAttribute, QueueInfo, SendEntry, SendResult


class AsyncBroker:
    def __init__(self, broker: Broker) -> None:
        self.sync = broker

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> QueueInfo:
        return await asyncio.to_thread(self.sync.create_queue, name, config, tags)

    async def get_queue(self, name: str) -> QueueInfo:
        return await asyncio.to_thread(self.sync.get_queue, name)

    async def list_queues(self, prefix: str = "") -> list[str]:
        return self.sync.list_queues(prefix)

    async def set_queue(self, name: str, changes: dict[str, Any]) -> QueueInfo:
        return await asyncio.to_thread(self.sync.set_queue, name, changes)

    async def delete_queue(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete_queue, name)

    async def purge_queue(self, name: str) -> None:
        await asyncio.to_thread(self.sync.purge_queue, name)

    async def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: dict[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> SendResult:
        return await asyncio.to_thread(
            lambda: self.sync.send(
                queue,
                body,
                attributes=attributes,
                delay_s=delay_s,
                group_id=group_id,
                dedup_id=dedup_id,
            )
        )

    async def send_batch(
        self, queue: str, entries: Sequence[SendEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        return await asyncio.to_thread(self.sync.send_batch, queue, entries)

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
    ) -> list[Message]:
        return await asyncio.to_thread(
            lambda: self.sync.receive(
                queue, max_messages, visibility_timeout_s=visibility_timeout_s, wait_s=wait_s
            )
        )

    async def delete(self, queue: str, receipt_handle: str) -> None:
        await asyncio.to_thread(self.sync.delete, queue, receipt_handle)

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        return await asyncio.to_thread(self.sync.delete_batch, queue, receipt_handles)

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        await asyncio.to_thread(self.sync.change_visibility, queue, receipt_handle, timeout_s)

    async def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        return await asyncio.to_thread(self.sync.peek, queue, max_messages)

    async def redrive(self, source: str, destination: str | None = None) -> int:
        return await asyncio.to_thread(self.sync.redrive, source, destination)


async def open_async(data_dir: str | os.PathLike[str] | None, **options: Any) -> AsyncBroker:
    """Open an embedded broker for asyncio code."""
    broker = await asyncio.to_thread(Broker, data_dir, **options)
    return AsyncBroker(broker)
