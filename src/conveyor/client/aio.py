"""The asyncio client: :class:`AsyncClient`.

One connection per client, made on first use and made again after it drops. Requests
from any number of tasks share it: each gets a request id and a future, and responses
(in any order) resolve the futures by id. A request on an idle connection (nothing else
in flight) is written at once; one made while others are in flight waits for the end
of the loop iteration, so that the frames of many tasks go out in one write. The I/O is
an :class:`asyncio.Protocol` around the sans-IO codec
(:class:`conveyor.protocol.native.NativeConnection`); the calls, conversions and the
retry rule are shared with the sync client (:mod:`.calls`, :mod:`.retry`).

Deadlines: a call's ``timeout_s`` covers connecting, every attempt and every backoff;
a long-poll receive adds its wait to it. A request that times out stays in flight on
the connection (its answer is dropped when it comes); if nothing at all was received on
the connection while it waited, the connection is presumed dead and closed.

The hot path
============

Most calls find the connection open and a slot free. They are written and awaited with
no ``asyncio.timeout`` scope: the deadline is one timer that fails the request's future
(:func:`_expire`), cancelled when the answer comes, and the loop is the connection's.
That spares a timeout object, a ``current_task()`` lookup and three ``getpid`` system
calls per request (asyncio compares the pid each time it looks up the running loop).
Connecting, and waiting for a free slot, still run under ``asyncio.timeout_at``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, overload

from conveyor import errors
from conveyor.client import calls
from conveyor.client.consumer import AsyncConsumer
from conveyor.client.errors import ClientClosed, ConnectFailed, ConnectionLost, Timeout
from conveyor.client.producer import AsyncProducer
from conveyor.client.retry import should_retry
from conveyor.protocol import native as n
from conveyor.types import BatchEntry, Message, MessageAttribute, QueueInfo, SendResult

__all__ = ["AsyncClient"]

log = logging.getLogger("conveyor.client")
T = TypeVar("T")

read_chunk_bytes = 256 * 1024

# Refusals of a handshake that are not worth retrying: the next attempt gets the same.
_FINAL_REFUSALS = (errors.AccessDenied, errors.InvalidSecurity, n.ProtocolError)


class _Deadline(Exception):
    """A request's deadline passed (turned into Timeout by the caller)."""


def _expire(fut: asyncio.Future[n.Response]) -> None:
    """The timer of a request's deadline: fail its future, unless answered already."""
    if not fut.done():
        fut.set_exception(_Deadline())


def _handshake_error(exc: BaseException) -> BaseException:
    """What a failed handshake raises: ConnectFailed (retried) unless retrying is futile."""
    if isinstance(exc, _FINAL_REFUSALS):
        return exc
    return ConnectFailed(f"handshake failed: {exc}")


class _Protocol(asyncio.Protocol):
    """One connection: the codec, a future per request id, and coalesced writes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        hello_name: str,
        token: str | None,
        max_frame_bytes: int,
    ) -> None:
        self.loop = loop
        self.conn = n.NativeConnection("client", max_frame_bytes=max_frame_bytes)
        self.hello_name = hello_name
        self.token = token
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.pending: dict[int, asyncio.Future[n.Response]] = {}
        self.slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed: BaseException | None = None  # why the connection is over
        self.last_rx = loop.time()
        self._out = bytearray()
        self._flush_scheduled = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.conn.send(self.conn.hello(client=self.hello_name, token=self.token)))

    def data_received(self, data: bytes) -> None:
        if self.closed is not None:
            return
        self.last_rx = self.loop.time()
        self.conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        if self.closed is not None:
            return False
        self.conn.receive_data(b"")
        self._pump()
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _pump(self) -> None:
        try:
            # After ConnectionClosed (or an error frame) ``closed`` is set and the codec
            # would return ConnectionClosed for ever: stop there.
            while self.closed is None and (event := self.conn.next_event()) is not n.NEED_DATA:
                self._on_event(event)
        except n.ProtocolError as exc:
            # The server broke the protocol: tell it why and give up the connection.
            if self.conn.state is n.State.ERROR:
                self._write_now(self.conn.send(n.error_response(None, exc)))
            self._fail(exc)

    # -- events
    def _on_event(self, event: n.Event) -> None:
        if isinstance(event, n.Response):
            fut = self.pending.pop(event.id, None)
            if fut is not None and not fut.done():
                fut.set_result(event)
            if self.slot_waiters:
                self._wake_one()
        elif isinstance(event, n.ErrorResponse):
            if event.id is not None:
                fut = self.pending.pop(event.id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(event.to_exception())
                if self.slot_waiters:
                    self._wake_one()
            else:  # the server ends the connection, saying why
                self._fail(event.to_exception())
        elif isinstance(event, n.Welcome):
            if not self.ready.done():
                self.ready.set_result(None)
        elif isinstance(event, n.ConnectionClosed):
            self._fail(ConnectionResetError("the server closed the connection"))

    def _wake_one(self) -> None:
        while self.slot_waiters:
            w = self.slot_waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _fail(self, exc: BaseException) -> None:
        """The connection is over: fail everything waiting on it, close the transport."""
        if self.closed is not None:
            return
        self.closed = exc
        if not self.ready.done():
            self.ready.set_exception(_handshake_error(exc))
            self.ready.exception()  # retrieved: nobody may be awaiting it any more
        if isinstance(exc, ClientClosed):
            lost: BaseException = exc
        else:
            lost = ConnectionLost(f"connection lost with the request in flight: {exc}")
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(lost)
        self.pending.clear()
        for w in self.slot_waiters:
            if not w.done():
                w.set_result(None)
        self.slot_waiters.clear()
        self._out.clear()
        if self.transport is not None:
            self.transport.abort() if not isinstance(exc, ClientClosed) else self.transport.close()

    # -- requests
    @property
    def usable(self) -> bool:
        return self.closed is None

    def _write_now(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.closed is None:
            assert self.transport is not None
            # The buffer is handed over, not copied: a transport may keep a view of it.
            out, self._out = self._out, bytearray()
            self.transport.write(out)

    async def request(self, req: n.Request, checked: bool = False) -> n.Response:
        """Send ``req`` (its id is set here) and wait for its answer. The caller bounds
        the wait (cancelling it leaves the request in flight until answered)."""
        fut = await self.request_future(req, checked)
        return await fut

    async def request_future(
        self, req: n.Request, checked: bool = False
    ) -> asyncio.Future[n.Response]:
        """Wait for a free slot, then send ``req``; its answer comes in the future
        returned. ConnectFailed if the connection closes first (nothing was written)."""
        while self.closed is None and self.conn.inflight >= self.conn.max_inflight:
            w = self.loop.create_future()
            self.slot_waiters.append(w)
            await w
        fut = self.request_nowait(req, checked)
        if fut is None:  # closed: not written, the server never saw it
            raise ConnectFailed(f"the connection closed before the request was sent: {self.closed}")
        return fut

    def request_nowait(
        self, req: n.Request, checked: bool = False
    ) -> asyncio.Future[n.Response] | None:
        """Send ``req`` if a slot is free (its answer comes in the future returned); None
        when the connection is closed or full, and nothing was written. ``checked``: see
        :meth:`NativeConnection.send_into`. LocalProtocolError: nothing was written."""
        conn = self.conn
        if self.closed is not None or conn.inflight >= conn.max_inflight:
            return None
        rid = conn.new_request_id()
        req.id = rid
        conn.send_into(req, self._out, checked=checked)
        fut: asyncio.Future[n.Response] = self.loop.create_future()
        self.pending[rid] = fut
        if not self._flush_scheduled:
            if conn.inflight == 1:  # nothing else in flight: nothing to gather it with
                self._flush()
            else:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
        return fut

    def close(self) -> None:
        self._fail(ClientClosed("the client was closed"))


def _consume(fut: asyncio.Future[n.Response]) -> None:
    """Retrieve a one-way request's outcome, so an error is not reported as unhandled."""
    if not fut.cancelled():
        fut.exception()


class AsyncClient(calls.ClientOptions):
    """A client of a Conveyor server's native protocol, for asyncio code.

    ``AsyncClient("127.0.0.1:9325")`` or ``AsyncClient(host=..., port=...)``. Its
    methods mirror :class:`conveyor.AsyncBroker` and return the same types. It connects
    on first use; use it from one event loop. ``timeout_s`` bounds each call (connect,
    attempts and backoff; a long poll adds its wait), ``connect_timeout_s`` each
    connection attempt, ``retry`` says how many attempts a call gets (the rule in
    :mod:`conveyor.client.retry`).
    """

    def _setup(self) -> None:
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    def __repr__(self) -> str:
        return f"<AsyncClient {self.host}:{self.port}{' closed' if self._closed else ''}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; calls in flight fail with ClientClosed."""
        self._closed = True
        if self._proto is not None:
            self._proto.close()
            self._proto = None

    # ------------------------------------------------------------------ connection
    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()

        def factory() -> _Protocol:
            return _Protocol(loop, self._client_name, self._token, self._max_frame_bytes)

        try:
            async with asyncio.timeout(self.connect_timeout_s):
                try:
                    _, proto = await loop.create_connection(factory, self.host, self.port)
                except OSError as exc:
                    raise ConnectFailed(
                        f"cannot connect to {self.host}:{self.port}: {exc}"
                    ) from exc
                try:
                    await proto.ready
                except BaseException:
                    proto.close()
                    raise
        except TimeoutError:
            raise ConnectFailed(
                f"no connection to {self.host}:{self.port} within {self.connect_timeout_s} s"
            ) from None
        self.connections_made += 1
        return proto

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.usable:
            return proto
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._connecting is None:  # one connect at a time; the others wait for it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            proto = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        if self._closed:
            proto.close()
            raise ClientClosed("the client is closed")
        self._proto = proto
        return proto

    @property
    def peer_max_frame_bytes(self) -> int:
        p = self._proto
        return p.conn.peer_max_frame_bytes if p is not None else n.frame_bytes_min

    async def request(self, req: n.Request, timeout_s: float | None = None) -> n.Response:
        """Send one request frame as it is (its id is replaced) and return the answer; an
        error answer raises its ConveyorError. No retries: for nodes forwarding requests
        and replication messages to each other."""
        async with asyncio.timeout(self.timeout_s if timeout_s is None else timeout_s):
            proto = await self._connection()
            return await proto.request(req)

    def send_nowait(self, req: n.Request) -> bool:
        """Write one request on the open connection without waiting for its answer (a
        one-way message: nodes' replication traffic). False when there is no open
        connection or no free slot; the caller then uses :meth:`request`."""
        proto = self._proto
        if proto is None or not proto.usable:
            return False
        fut = proto.request_nowait(req)
        if fut is None:
            return False
        fut.add_done_callback(_consume)
        return True

    # ------------------------------------------------------------------ running calls
    async def _run(self, call: calls.Call[T]) -> T:
        proto = self._proto
        loop = proto.loop if proto is not None else asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s + call.wait_s
        attempt = 0
        while True:
            proto = self._proto
            started = loop.time()
            try:
                # The hot path (module docstring): open, a slot free, written at once.
                fut = None if proto is None else proto.request_nowait(call.request, call.checked)
                if fut is None:
                    proto = None  # until connected
                    async with asyncio.timeout_at(deadline):
                        proto = await self._connection()
                        fut = await proto.request_future(call.request, call.checked)
                timer = loop.call_at(deadline, _expire, fut)
                try:
                    resp = await fut
                finally:
                    timer.cancel()
                return call.convert(resp)
            except (TimeoutError, _Deadline):
                if proto is not None and proto.last_rx < started:
                    # Nothing came back while we waited: the connection looks dead.
                    log.warning(
                        "no answer from %s:%s; closing the connection", self.host, self.port
                    )
                    proto._fail(Timeout("no data from the server"))
                raise Timeout(
                    f"{call.request.OP} got no answer within {self.timeout_s + call.wait_s:.3g} s"
                ) from None
            except (errors.ConveyorError, n.ProtocolError) as exc:
                attempt += 1
                if (
                    self._closed
                    or attempt >= self.retry.attempts
                    or not should_retry(exc, call.safety)
                ):
                    raise
                delay = self.retry.backoff_s(attempt)
                if loop.time() + delay >= deadline:
                    raise
                log.debug("retrying %s after %r in %.3f s", call.request.OP, exc, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ queues
    async def ping(self) -> None:
        """One round trip to the server."""
        await self._run(calls.ping())

    async def cluster_status(self) -> dict[str, Any]:
        """Cluster mode: nodes, partitions, leaders, ISR and lag, as the server sees them."""
        return await self._run(calls.cluster_status())

    async def drain_node(self, node: str, *, cancel: bool = False) -> int:
        """Cluster mode: move every replica off ``node`` (``cancel``: stop). Returns how
        many replicas the node still holds; it may leave once that is 0."""
        return await self._run(calls.drain_node(node, cancel))

    async def create_queue(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> QueueInfo:
        """Create a queue; creating it again with identical attributes is a no-op."""
        await self._run(calls.create_queue(name, config, tags))
        return calls.without_stats(await self._run(calls.get_queue(name)))

    async def get_queue(self, name: str) -> QueueInfo:
        return await self._run(calls.get_queue(name))

    async def list_queues(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        after: str | None = None
        while True:
            page = await self._run(calls.list_queues_page(prefix, after))
            names.extend(page.names)
            if page.next is None or not page.names:
                return names
            after = page.next

    async def set_queue(self, name: str, changes: Mapping[str, Any]) -> QueueInfo:
        await self._run(calls.set_queue(name, changes))
        return calls.without_stats(await self._run(calls.get_queue(name)))

    async def tag_queue(
        self, name: str, tags: Mapping[str, str], remove: Sequence[str] = ()
    ) -> None:
        await self._run(calls.tag_queue(name, tags, remove))

    async def delete_queue(self, name: str) -> None:
        await self._run(calls.delete_queue(name))

    async def purge_queue(self, name: str) -> None:
        await self._run(calls.purge_queue(name))

    # ------------------------------------------------------------------ messages
    async def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: Mapping[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        system: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one message; returns once the server has made it durable."""
        return await self._run(
            calls.send(
                queue,
                body,
                attributes=attributes,
                delay_s=delay_s,
                group_id=group_id,
                dedup_id=dedup_id,
                system=system,
            )
        )

    async def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        """Send many messages; a result or an error per entry, in order. Batches above
        the protocol's entry or frame limit are split and the parts sent pipelined."""
        wire = calls.wire_batch(entries)
        if not wire.entries:
            return await self._run(calls.send_batch(queue, []))
        await self._connection_quietly()
        parts = calls.send_batch_calls(queue, wire, self.peer_max_frame_bytes)
        if len(parts) == 1:
            return await self._run(parts[0])
        done = await asyncio.gather(*(self._run(p) for p in parts))
        return [r for part in done for r in part]

    async def _connection_quietly(self) -> None:
        """Connect if possible, to learn the server's frame limit; errors are left for
        the call to meet (and retry)."""
        proto = self._proto
        if proto is not None and proto.usable:
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self._connection()
        except (errors.ConveyorError, n.ProtocolError, TimeoutError):
            pass

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        """Receive up to ``max_messages``; with ``wait_s`` > 0, wait for one to arrive
        (``None``: the queue's receive wait time)."""
        return await self._run(
            calls.receive(queue, max_messages, visibility_timeout_s, wait_s, attempt_id)
        )

    async def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        return await self._run(calls.peek(queue, max_messages))

    async def delete(self, queue: str, receipt_handle: str) -> None:
        await self._run(calls.delete(queue, receipt_handle))

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        parts = calls.chunks(receipt_handles)
        if len(parts) == 1:
            return await self._run(calls.delete_batch(queue, parts[0]))
        done = await asyncio.gather(*(self._run(calls.delete_batch(queue, p)) for p in parts))
        return [r for part in done for r in part]

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        await self._run(calls.change_visibility(queue, receipt_handle, timeout_s))

    async def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        parts = calls.chunks(entries)
        if len(parts) == 1:
            return await self._run(calls.change_visibility_batch(queue, parts[0]))
        done = await asyncio.gather(
            *(self._run(calls.change_visibility_batch(queue, p)) for p in parts)
        )
        return [r for part in done for r in part]

    async def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        return await self._run(calls.redrive(source, destination, max_messages))

    # ------------------------------------------------------------------ helpers
    @overload
    def consume(self, queue: str, handler: None = None, **options: Any) -> AsyncConsumer: ...
    @overload
    def consume(
        self, queue: str, handler: Callable[[Message], Awaitable[object]], **options: Any
    ) -> Coroutine[Any, Any, None]: ...
    def consume(
        self,
        queue: str,
        handler: Callable[[Message], Awaitable[object]] | None = None,
        **options: Any,
    ) -> AsyncConsumer | Coroutine[Any, Any, None]:
        """An :class:`~conveyor.client.consumer.AsyncConsumer` of ``queue`` (use
        ``async with`` / ``async for``), or, with ``handler``, a coroutine that runs it
        (until stopped or ``limit`` messages)."""
        consumer = AsyncConsumer(self, queue, **options)
        if handler is None:
            return consumer
        return consumer.run(handler)

    def producer(self, queue: str, **options: Any) -> AsyncProducer:
        """An :class:`~conveyor.client.producer.AsyncProducer` that batches sends."""
        return AsyncProducer(self, queue, **options)
