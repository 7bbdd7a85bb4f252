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
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from conveyor import errors
from conveyor.broker.aio import AsyncBroker
from conveyor.client.aio import AsyncClient
from conveyor.cluster.node import ClusterNode
from conveyor.partition import records as R
from conveyor.protocol import native as n
from conveyor.receipt import partition_of
from conveyor.server.native import NativeHandler
from conveyor.types import BatchEntry, Message, MessageAttribute, QueueInfo, SendResult

log = logging.getLogger("conveyor.cluster")

NODE_CLIENT_PREFIX = "conveyor-node/"  # how nodes name themselves to each other
leader_wait_s = 10.0  # how long a request waits for a partition to have a leader
leader_poll_s = 0.05


async def wait_for_leader(cluster: ClusterNode, queue: str, index: int = 0) -> str:
    """The leader of one partition of the queue; waits a while when it has none now."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + leader_wait_s
    while True:
        leader = cluster.leader_of(queue, index)
        if leader is not None:
            return leader
        if loop.time() >= deadline:
            raise errors.Unavailable(f"the queue {queue!r} has no leader right now; retry")
        await asyncio.sleep(leader_poll_s)


async def wait_until_leading(cluster: ClusterNode, queue: str, index: int | None = 0) -> None:
    """Wait until this node, named leader, has opened the queue and leads the partition
    (any of its partitions with ``index`` None)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + leader_wait_s
    while not cluster.leads(queue, index):
        if loop.time() >= deadline:
            raise errors.Unavailable(f"this node is taking over the queue {queue!r}; retry")
        await asyncio.sleep(leader_poll_s)


class ClusterNativeHandler(NativeHandler):
    starts_by_hand = False  # forwarding awaits the peer client under asyncio.timeout
    sends_now = False  # a send may go to another node

    def __init__(
        self,
        broker: AsyncBroker,
        cluster: ClusterNode,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(broker, on_request)
        self.cluster = cluster
        # requests another node forwarded run here, never forwarded again
        local = broker.local if isinstance(broker, RoutedBroker) else broker
        self.local_broker = local.sync
        self.peer_handler = NativeHandler(local, on_request)

    async def handle_from(self, req: n.Request, client: str) -> n.Response | n.ErrorResponse:
        if client.startswith(NODE_CLIENT_PREFIX) and not isinstance(req, _CLUSTER_REQUESTS):
            queue = _queue_of(req)
            if queue is not None:
                # the sender knows the queue and names this node leader; this node's
                # catalog may not have caught up yet (or not opened the queue): wait
                try:
                    await wait_until_leading(self.cluster, queue, None)
                except errors.ConveyorError as exc:
                    return n.error_response(req.id, exc)
            return await self.peer_handler.handle(req)
        return await self.handle(req)

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
            if isinstance(req, n.MoveInRequest):
                records = [R.decode_append(data) for data in req.records]
                name = await asyncio.to_thread(
                    self.local_broker.accept_moves, req.queue_uid, req.partition, records
                )
                return n.MoveInResponse(id=req.id, queue=name)
            if isinstance(req, n.DrainNodeRequest):
                held = await asyncio.to_thread(self.cluster.set_draining, req.node, not req.cancel)
                return n.DrainNodeResponse(id=req.id, replicas=held)
            queue = _queue_of(req)
            if isinstance(req, n.SetQueueRequest | n.TagQueueRequest):
                return await self._update_queue(req)
            if (
                isinstance(queue, str)
                and queue in self.cluster.queues
                and self.cluster.partitions_of(queue) == 1
            ):
                # one partition: pass the frame to its leader as it is (the cheap path);
                # with several, the routed broker splits the work between their leaders
                leader = await wait_for_leader(self.cluster, queue)
                if leader != self.cluster.node_id:
                    return await self._forward(leader, req)
                await wait_until_leading(self.cluster, queue)
        except errors.ConveyorError as exc:
            return n.error_response(req.id, exc)
        return await super().handle(req)

    async def _forward(self, leader: str, req: n.Request) -> n.Response | n.ErrorResponse:
        client = self.cluster.peer(leader)
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
    """The broker the SQS, admin and (for queues with several partitions) native APIs
    call in cluster mode: the same coroutines as :class:`AsyncBroker`, each run on the
    node that leads the partitions it touches.

    * ``send``: a FIFO message goes to the leader of its group's partition; a standard
      one to any node leading a partition of the queue (this one if it does), whose
      broker picks among the partitions it leads. Batches are split by node.
    * ``receive``: asks the nodes leading the queue's partitions, this one first, without
      waiting; if none has a message and the call may wait, long-polls all of them at
      once and answers with the first messages (any extra a late answer brings are
      made visible again at once).
    * ``delete`` and visibility changes: the receipt handle names its partition, whose
      leader checks and applies it. ``purge`` and ``redrive`` run on every leader.
    * attributes, statistics and ``peek`` come from the leader of partition 0 (its
      replicas of the other partitions hold their committed state).

    Calls to other nodes go through the native client (which returns the same types);
    catalog operations go to the coordinator.
    """

    def __init__(self, local: AsyncBroker, cluster: ClusterNode) -> None:
        super().__init__(local.sync)
        self.local = local
        self.cluster = cluster
        self._rr = 0

    async def close(self) -> None:
        await self.local.close()  # the peer clients are the cluster node's to close

    # --- where calls run -----------------------------------------------------------------
    def _client(self, node: str) -> AsyncClient:
        client = self.cluster.peer(node)
        if client is None:
            raise errors.Unavailable(f"the node {node} is not known here; retry")
        return client

    async def _on(self, node: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` on ``node``'s broker (here: the local one)."""
        if node == self.cluster.node_id:
            return await getattr(self.local, method)(*args, **kwargs)
        # in a task of its own: the HTTP server runs a handler's first step outside any
        # task, and the client's timeouts need one
        return await asyncio.ensure_future(getattr(self._client(node), method)(*args, **kwargs))

    async def _partition_leader(self, queue: str, index: int) -> str:
        leader = await wait_for_leader(self.cluster, queue, index)
        if leader == self.cluster.node_id:
            await wait_until_leading(self.cluster, queue, index)
        return leader

    async def _leaders(self, queue: str) -> list[str]:
        """The nodes leading the queue's partitions, this node first, then rotating."""
        nodes: list[str] = []
        for index in range(self.cluster.partitions_of(queue)):
            leader = await self._partition_leader(queue, index)
            if leader not in nodes:
                nodes.append(leader)
        me = self.cluster.node_id
        others = [n for n in nodes if n != me]
        if others:
            self._rr += 1
            k = self._rr % len(others)
            others = others[k:] + others[:k]
        return ([me] if me in nodes else []) + others

    async def _home(self, queue: str) -> str | None:
        """Where a call about the whole queue runs: partition 0's leader (None: here,
        for a queue the catalog does not know, so the local broker says so)."""
        if queue not in self.cluster.queues:
            return None
        return await self._partition_leader(queue, 0)

    async def _call(self, queue: str, method: str, *args: Any, **kwargs: Any) -> Any:
        node = await self._home(queue)
        if node is None:
            return await getattr(self.local, method)(*args, **kwargs)
        return await self._on(node, method, *args, **kwargs)

    def _fifo_partition(self, queue: str, group_id: str | None) -> int:
        n_parts = self.cluster.partitions_of(queue)
        return zlib.crc32((group_id or "").encode()) % n_parts

    def _is_fifo(self, queue: str) -> bool:
        q = self.cluster.queues.get(queue)
        return q is not None and q.meta.config.fifo

    async def _by_handle(self, queue: str, handles: Sequence[str]) -> dict[str | None, list[int]]:
        """Entry positions grouped by the node leading each handle's partition (None:
        not a handle; the local broker rejects it)."""
        groups: dict[str | None, list[int]] = {}
        n_parts = self.cluster.partitions_of(queue)
        for i, handle in enumerate(handles):
            index = partition_of(handle)
            node = None
            if index is not None and index < n_parts:
                node = await self._partition_leader(queue, index)
            groups.setdefault(node, []).append(i)
        return groups

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

    async def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        messages: list[Message] = await self._call(queue, "peek", queue, max_messages)
        return messages

    # --- sends -------------------------------------------------------------------------
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
        if queue not in self.cluster.queues:
            node = None
        elif self._is_fifo(queue):
            node = await self._partition_leader(queue, self._fifo_partition(queue, group_id))
        else:
            node = (await self._leaders(queue))[0]
        kwargs = {
            "attributes": attributes,
            "delay_s": delay_s,
            "group_id": group_id,
            "dedup_id": dedup_id,
            "system": system,
        }
        if node is None:
            result: SendResult = await self.local.send(queue, body, **kwargs)  # type: ignore[arg-type]
        else:
            result = await self._on(node, "send", queue, body, **kwargs)
        return result

    async def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        if queue not in self.cluster.queues or not entries:
            return await self.local.send_batch(queue, entries)
        groups: dict[str, list[int]] = {}
        if self._is_fifo(queue):
            for i, entry in enumerate(entries):
                index = self._fifo_partition(queue, getattr(entry, "group_id", None))
                node = await self._partition_leader(queue, index)
                groups.setdefault(node, []).append(i)
        else:
            groups[(await self._leaders(queue))[0]] = list(range(len(entries)))
        results: list[SendResult | errors.ConveyorError | None] = [None] * len(entries)

        async def part(node: str, positions: list[int]) -> None:
            sub = [entries[i] for i in positions]
            try:
                out = await self._on(node, "send_batch", queue, sub)
            except errors.ConveyorError as exc:
                out = [exc] * len(positions)
            for i, r in zip(positions, out, strict=True):
                results[i] = r

        await asyncio.gather(*(part(node, positions) for node, positions in groups.items()))
        return [r if r is not None else errors.InternalError("no result") for r in results]

    # --- receives ----------------------------------------------------------------------
    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        if queue not in self.cluster.queues:
            return await self.local.receive(
                queue,
                max_messages,
                visibility_timeout_s=visibility_timeout_s,
                wait_s=wait_s,
                attempt_id=attempt_id,
            )
        nodes = await self._leaders(queue)
        kwargs = {"visibility_timeout_s": visibility_timeout_s, "attempt_id": attempt_id}
        if len(nodes) == 1:
            got: list[Message] = await self._on(
                nodes[0], "receive", queue, max_messages, wait_s=wait_s, **kwargs
            )
            return got
        got = []
        for node in nodes:  # without waiting, this node first
            got += await self._on(
                node, "receive", queue, max_messages - len(got), wait_s=0, **kwargs
            )
            if len(got) >= max_messages:
                return got
        if got:
            return got
        wait = wait_s
        if wait is None:
            wait = (
                (await self.local.get_queue(queue)).config.receive_wait_s
                if (self.cluster.node_id in nodes)
                else 0
            )
        if not wait:
            return got
        return await self._receive_any(queue, nodes, max_messages, wait, kwargs)

    async def _receive_any(
        self, queue: str, nodes: list[str], max_messages: int, wait: float, kwargs: dict[str, Any]
    ) -> list[Message]:
        """Long-poll every node at once; answer with the first messages to come."""
        tasks = [
            asyncio.ensure_future(
                self._on(node, "receive", queue, max_messages, wait_s=wait, **kwargs)
            )
            for node in nodes
        ]
        got: list[Message] = []
        taken: set[asyncio.Future[Any]] = set()
        try:
            pending = set(tasks)
            while pending and not got:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    taken.add(task)
                    if not task.cancelled() and task.exception() is None:
                        got += task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:  # answers that came in while the others were cancelled
            if task not in taken and not task.cancelled() and task.exception() is None:
                got += task.result()
        extra = got[max_messages:]
        if extra:
            # more than asked for: let the rest be received again at once
            await self.change_visibility_batch(queue, [(m.receipt_handle, 0) for m in extra])
        return got[:max_messages]

    # --- per handle --------------------------------------------------------------------
    async def delete(self, queue: str, receipt_handle: str) -> None:
        (err,) = await self.delete_batch(queue, [receipt_handle])
        if err is not None:
            raise err

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        return await self._per_handle(queue, "delete_batch", list(receipt_handles), receipt_handles)

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        (err,) = await self.change_visibility_batch(queue, [(receipt_handle, timeout_s)])
        if err is not None:
            raise err

    async def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        handles = [h for h, _ in entries]
        return await self._per_handle(queue, "change_visibility_batch", list(entries), handles)

    async def _per_handle(
        self, queue: str, method: str, items: list[Any], handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        if queue not in self.cluster.queues:
            out: list[errors.ConveyorError | None] = await getattr(self.local, method)(queue, items)
            return out
        groups = await self._by_handle(queue, handles)
        results: list[errors.ConveyorError | None] = [None] * len(items)

        async def part(node: str | None, positions: list[int]) -> None:
            sub = [items[i] for i in positions]
            target = self.cluster.node_id if node is None else node
            try:
                res = await self._on(target, method, queue, sub)
            except errors.ConveyorError as exc:
                res = [exc] * len(positions)
            for i, r in zip(positions, res, strict=True):
                results[i] = r

        await asyncio.gather(*(part(node, pos) for node, pos in groups.items()))
        return results

    # --- every leader ------------------------------------------------------------------
    async def purge_queue(self, name: str) -> None:
        if name not in self.cluster.queues:
            return await self.local.purge_queue(name)
        for node in await self._leaders(name):
            await self._on(node, "purge_queue", name)
        return None

    async def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        if source not in self.cluster.queues:
            return await self.local.redrive(source, destination, max_messages)
        moved = 0
        for node in await self._leaders(source):
            left = None if max_messages is None else max_messages - moved
            if left is not None and left <= 0:
                break
            moved += await self._on(node, "redrive", source, destination, left)
        return moved


# what a node-to-node connection still sends through the cluster handler
_CLUSTER_REQUESTS = (
    n.ReplicateRequest,
    n.MoveInRequest,
    n.CreateQueueRequest,
    n.DeleteQueueRequest,
    n.ListQueuesRequest,
    n.SetQueueRequest,
    n.TagQueueRequest,
    n.ClusterStatusRequest,
    n.DrainNodeRequest,
)


def _queue_of(req: n.Request) -> str | None:
    """The queue a request is about, if it is about one."""
    if isinstance(req, n.RedriveRequest):
        return req.source
    queue = getattr(req, "queue", None) or getattr(req, "name", None)
    return queue if isinstance(queue, str) else None
