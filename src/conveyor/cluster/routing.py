"""Any node answers any native request: queue operations go to the partition's leader.

:class:`ClusterNativeHandler` is the native protocol's handler in cluster mode. Catalog
requests (create, delete, list) are answered from the coordinator and this node's cache
of it; every request about one queue runs on the node that leads the queue's partition:
here if that is this node, else forwarded as the same frame over a connection to the
leader. A forwarded request that finds the leader gone (it moved while the request was
on its way) fails with a retriable ``Unavailable``, and the client retries against the
new leader.

Replication messages between nodes (``ReplicateRequest``) go to the replicas here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from conveyor import errors
from conveyor.broker.aio import AsyncBroker
from conveyor.client.aio import AsyncClient
from conveyor.client.retry import RetryPolicy
from conveyor.cluster.node import ClusterNode
from conveyor.protocol import native as n
from conveyor.server.native import NativeHandler
from conveyor.types import Message, MessageAttribute, QueueInfo, SendEntry, SendResult

log = logging.getLogger("conveyor.cluster")

leader_wait_s = 10.0  # how long a request waits for a partition to have a leader
leader_poll_s = 0.05


async def wait_for_leader(cluster: ClusterNode, queue: str) -> str:
    """The queue's leader; waits a while when its partition has none right now."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + leader_wait_s
    while True:
        leader = cluster.leader_of(queue)
        if leader is not None:
            return leader
        if loop.time() >= deadline:
            raise errors.Unavailable(f"the queue {queue!r} has no leader right now; retry")
        await asyncio.sleep(leader_poll_s)


async def wait_until_leading(cluster: ClusterNode, queue: str) -> None:
    """Wait until this node, named leader, has opened the queue and leads it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + leader_wait_s
    while not cluster.leads(queue):
        if loop.time() >= deadline:
            raise errors.Unavailable(f"this node is taking over the queue {queue!r}; retry")
        await asyncio.sleep(leader_poll_s)


class ClusterNativeHandler(NativeHandler):
    def __init__(
        self,
        broker: AsyncBroker,
        cluster: ClusterNode,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(broker, on_request)
        self.cluster = cluster

    async def handle(self, req: n.Request) -> n.Response | n.ErrorResponse:
        if isinstance(req, n.ReplicateRequest):
            self.cluster.on_replicate(req)
            return n.ReplicateResponse(id=req.id)
        try:
            if isinstance(req, n.CreateQueueRequest):
                return await self._create_queue(req)
            if isinstance(req, n.DeleteQueueRequest):
                await asyncio.to_thread(self.cluster.delete_queue, req.name)
                return n.DeleteQueueResponse(id=req.id)
            if isinstance(req, n.ListQueuesRequest):
                return self._list_queues(req)
            if isinstance(req, n.ClusterStatusRequest):
                return n.ClusterStatusResponse(id=req.id, status=self.cluster.status())
            if isinstance(req, n.DrainNodeRequest):
                held = await asyncio.to_thread(self.cluster.set_draining, req.node, not req.cancel)
                return n.DrainNodeResponse(id=req.id, replicas=held)
            queue = getattr(req, "queue", None) or getattr(req, "name", None)
            if isinstance(req, n.RedriveRequest):
                queue = req.source
            if isinstance(req, n.SetQueueRequest | n.TagQueueRequest):
                return await self._update_queue(req)
            if isinstance(queue, str) and queue in self.cluster.queues:
                leader = await wait_for_leader(self.cluster, queue)
                if leader != self.cluster.node_id:
                    return await self._forward(leader, req)
                await wait_until_leading(self.cluster, queue)
        except errors.ConveyorError as exc:
            return n.error_response(req.id, exc)
        return await super().handle(req)

    async def _forward(self, leader: str, req: n.Request) -> n.Response | n.ErrorResponse:
        client = self.cluster._peer(leader)
        if client is None:
            raise errors.Unavailable(f"the leader {leader} is not reachable from this node")
        wait = float(getattr(req, "wait_s", 0) or 0)
        copy = msgspec.structs.replace(req)
        try:
            resp = await client.request(
                copy, timeout_s=self.cluster.settings.forward_timeout_s + wait
            )
        except errors.ConveyorError as exc:
            return n.error_response(req.id, exc)
        except (TimeoutError, OSError) as exc:
            return n.error_response(
                req.id, errors.Unavailable(f"forwarding to the leader {leader} failed: {exc}")
            )
        return msgspec.structs.replace(resp, id=req.id)

    async def _update_queue(self, req: n.SetQueueRequest | n.TagQueueRequest) -> n.Response:
        if isinstance(req, n.SetQueueRequest):
            await asyncio.to_thread(self.cluster.update_queue, req.name, req.config, None, ())
            return n.SetQueueResponse(id=req.id)
        await asyncio.to_thread(self.cluster.update_queue, req.name, None, req.tags, req.remove)
        return n.TagQueueResponse(id=req.id)

    async def _create_queue(self, req: n.CreateQueueRequest) -> n.Response:
        meta, created = await asyncio.to_thread(
            self.cluster.create_queue, req.name, req.config, req.tags
        )
        # answer once this node's cache (and so its routing) knows the queue
        loop = asyncio.get_running_loop()
        deadline = loop.time() + leader_wait_s
        while self.cluster.leader_of(meta.name) is None and loop.time() < deadline:
            await asyncio.sleep(leader_poll_s)
        return n.CreateQueueResponse(id=req.id, name=meta.name, created=created)

    def _list_queues(self, req: n.ListQueuesRequest) -> n.Response:
        names = sorted(name for name in self.cluster.queues if name.startswith(req.prefix))
        if req.after is not None:
            names = [name for name in names if name > req.after]
        page = names[: req.limit]
        more = len(names) > req.limit
        return n.ListQueuesResponse(id=req.id, names=page, next=page[-1] if more else None)


class RoutedBroker(AsyncBroker):
    """The broker the SQS and admin APIs call in cluster mode: the same coroutines as
    :class:`~conveyor.broker.aio.AsyncBroker`, each run where it belongs.

    Message operations run on the queue's leader (here, or through the native client
    against the leader's node, which returns the same types); catalog operations go to
    the coordinator. Reads of a queue's attributes and statistics are answered by the
    leader; node-local views (``sync``: samples for /metrics, the console's history)
    stay local.
    """

    def __init__(self, local: AsyncBroker, cluster: ClusterNode) -> None:
        super().__init__(local.sync)
        self.local = local
        self.cluster = cluster
        self._clients: dict[str, AsyncClient] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self.local.close()

    async def _leader_client(self, queue: str) -> AsyncClient | None:
        """The client of the queue's leader; ``None`` to run the call here."""
        if queue not in self.cluster.queues:
            return None
        leader = await wait_for_leader(self.cluster, queue)
        if leader == self.cluster.node_id:
            await wait_until_leading(self.cluster, queue)
            return None
        client = self._clients.get(leader)
        if client is None:
            addresses = self.cluster.nodes.get(leader)
            if addresses is None:
                raise errors.Unavailable(f"the leader {leader} of {queue!r} is not known here")
            client = AsyncClient(
                addresses.native,
                client_name=f"conveyor-node/{self.cluster.node_id}",
                timeout_s=self.cluster.settings.forward_timeout_s,
                retry=RetryPolicy(attempts=1),
            )
            self._clients[leader] = client
        return client

    async def _call(self, queue: str, method: str, *args: Any, **kwargs: Any) -> Any:
        client = await self._leader_client(queue)
        if client is None:
            return await getattr(self.local, method)(*args, **kwargs)
        # in a task of its own: the HTTP server runs a handler's first step outside any
        # task, and the client's timeouts need one
        return await asyncio.ensure_future(getattr(client, method)(*args, **kwargs))

    # --- the catalog -------------------------------------------------------------------
    async def ensure_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> tuple[QueueInfo, bool]:
        meta, created = await asyncio.to_thread(self.cluster.create_queue, name, config, tags)
        await wait_for_leader(self.cluster, meta.name)
        return await self.get_queue(name), created

    async def create_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> QueueInfo:
        return (await self.ensure_queue(name, config, tags))[0]

    async def list_queues(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self.cluster.queues if name.startswith(prefix))

    async def delete_queue(self, name: str) -> None:
        await asyncio.to_thread(self.cluster.delete_queue, name)

    async def set_queue(self, name: str, changes: dict[str, Any]) -> QueueInfo:
        await asyncio.to_thread(self.cluster.update_queue, name, changes, None, ())
        return await self.get_queue(name)

    async def tag_queue(self, name: str, tags: dict[str, str], remove: Sequence[str] = ()) -> None:
        await asyncio.to_thread(self.cluster.update_queue, name, None, tags, remove)

    async def get_queue(self, name: str) -> QueueInfo:
        info: QueueInfo = await self._call(name, "get_queue", name)
        return info

    # --- messages ----------------------------------------------------------------------
    async def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: dict[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        system: dict[str, str] | None = None,
    ) -> SendResult:
        result: SendResult = await self._call(
            queue,
            "send",
            queue,
            body,
            attributes=attributes,
            delay_s=delay_s,
            group_id=group_id,
            dedup_id=dedup_id,
            system=system,
        )
        return result

    async def send_batch(
        self, queue: str, entries: Sequence[SendEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        results: list[SendResult | errors.ConveyorError] = await self._call(
            queue, "send_batch", queue, entries
        )
        return results

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        messages: list[Message] = await self._call(
            queue,
            "receive",
            queue,
            max_messages,
            visibility_timeout_s=visibility_timeout_s,
            wait_s=wait_s,
            attempt_id=attempt_id,
        )
        return messages

    async def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        messages: list[Message] = await self._call(queue, "peek", queue, max_messages)
        return messages

    async def delete(self, queue: str, receipt_handle: str) -> None:
        await self._call(queue, "delete", queue, receipt_handle)

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        results: list[errors.ConveyorError | None] = await self._call(
            queue, "delete_batch", queue, receipt_handles
        )
        return results

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        await self._call(queue, "change_visibility", queue, receipt_handle, timeout_s)

    async def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        results: list[errors.ConveyorError | None] = await self._call(
            queue, "change_visibility_batch", queue, entries
        )
        return results

    async def purge_queue(self, name: str) -> None:
        await self._call(name, "purge_queue", name)

    async def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        moved: int = await self._call(source, "redrive", source, destination, max_messages)
        return moved
