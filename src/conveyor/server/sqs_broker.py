"""The broker calls the SQS API makes: :class:`~conveyor.broker.aio.AsyncBroker`'s.

Send, receive (long polls included: they park as futures, not threads), delete and
visibility changes run on the event loop and await their fsync; queue management,
purge and redrive run in a worker thread inside ``AsyncBroker``. This class only fixes
the argument shapes the SQS layer uses in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor import errors
from conveyor.broker.aio import AsyncBroker
from conveyor.types import Message, QueueInfo, SendEntry, SendResult


class SqsBroker:
    def __init__(self, broker: AsyncBroker) -> None:
        self.aio = broker

    def close(self) -> None:
        """Nothing of its own to release (kept for the SQS layer's shutdown)."""

    # --- queues
    async def create_queue(
        self, name: str, config: dict[str, Any], tags: dict[str, str]
    ) -> QueueInfo:
        return await self.aio.create_queue(name, config, tags)

    async def get_queue(self, name: str) -> QueueInfo:
        return await self.aio.get_queue(name)

    async def list_queues(self, prefix: str) -> list[str]:
        return await self.aio.list_queues(prefix)

    async def set_queue(self, name: str, changes: dict[str, Any]) -> QueueInfo:
        return await self.aio.set_queue(name, changes)

    async def delete_queue(self, name: str) -> None:
        await self.aio.delete_queue(name)

    async def purge_queue(self, name: str) -> None:
        await self.aio.purge_queue(name)

    async def tag_queue(self, name: str, tags: dict[str, str], remove: Sequence[str] = ()) -> None:
        await self.aio.tag_queue(name, tags, remove)

    # --- messages
    async def send_batch(
        self, queue: str, entries: Sequence[SendEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        return await self.aio.send_batch(queue, entries)

    async def receive(
        self,
        queue: str,
        max_messages: int,
        *,
        visibility_timeout_s: int | None,
        wait_s: int | None,
        attempt_id: str | None,
    ) -> list[Message]:
        return await self.aio.receive(
            queue,
            max_messages,
            visibility_timeout_s=visibility_timeout_s,
            wait_s=wait_s,
            attempt_id=attempt_id,
        )

    async def delete(self, queue: str, handle: str) -> None:
        await self.aio.delete(queue, handle)

    async def delete_batch(
        self, queue: str, handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        return await self.aio.delete_batch(queue, handles)

    async def change_visibility(self, queue: str, handle: str, timeout_s: int) -> None:
        await self.aio.change_visibility(queue, handle, timeout_s)

    async def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        return await self.aio.change_visibility_batch(queue, entries)

    async def redrive(self, source: str, destination: str | None, max_messages: int) -> int:
        return await self.aio.redrive(source, destination, max_messages)
